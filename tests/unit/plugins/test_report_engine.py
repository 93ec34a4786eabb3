"""The report engine (module_utils/report.py, report_html.py): what hosts return is data, validated and grouped.

Expected values follow from the fixture events (what a host would have logged) and from docs/report.md,
never from the engine's output.
"""
import base64
import hashlib
import json
import re

import pytest
import yaml

from ansible_collections.armada.apparmor.plugins.filter import fleet_report
from ansible_collections.armada.apparmor.plugins.module_utils import answers as answers_mod
from ansible_collections.armada.apparmor.plugins.module_utils import report as rep
from ansible_collections.armada.apparmor.plugins.module_utils import report_html

TOKEN = "aac1.0123456789abcdef.eNqrVkrOz0nJLC7JTEnNUbJSSs7PS8tMLUrNTFGyUqqtBQA"


def ev(path="/etc/shadow", mode="DENIED", profile="/usr/bin/app", comm="app", count=1, t=1700000000.0, **kw):
    out = {"id": "x" * 16, "kind": "file", "profile": profile, "parent": profile.split("//")[0],
           "child": profile.split("//", 1)[1] if "//" in profile else None, "operations": ["open"], "modes": [mode],
           "path": path, "mask": {"requested": "r", "denied": "r" if mode == "DENIED" else ""}, "owner": True,
           "count": count, "first_seen": t, "last_seen": t + 10, "pids": [1], "comms": [comm]}
    out.update(kw)
    return out


def host(events=(), loaded=None, files=None, record=None, failed=False, position=TOKEN, processes=None):
    status = {"kernel": {"enabled": True}, "loaded": loaded if loaded is not None else {"/usr/bin/app": "enforce"},
              "files": files if files is not None else {"usr.bin.app": {
                  "path": "/etc/apparmor.d/usr.bin.app", "mtime": 1700000000,
                  "profiles": {"/usr/bin/app": {"mode": "enforce"}}}},
              "drift": {}, "processes": processes or {}}
    data = {"status": status, "denials": {"events": list(events), "position": position}, "backups": []}
    if record is not None:
        data["convergence_b64"] = base64.b64encode(json.dumps({"version": 1, "profiles": record}).encode()).decode()
    if failed:
        data = {"failed": True, "error": "unreachable"}
    return data


def test_same_access_on_two_hosts_is_one_group_with_per_host_counts():
    built = rep.build({"web1": host([ev(count=3, comm="app"), ev("/etc/gshadow")]),
                       "web2": host([ev(count=2, comm="sh", t=1600000000.0)])})
    r = built["report"]
    groups = {g["target"]: g for g in r["intrusions"]}
    assert set(groups) == {"/etc/shadow", "/etc/gshadow"}
    shadow = groups["/etc/shadow"]
    assert shadow["hosts"] == {"web1": 3, "web2": 2} and shadow["count"] == 5
    assert shadow["comms"] == ["app", "sh"] and shadow["operations"] == ["open"]
    assert shadow["first_seen"] == "2020-09-13T12:26:40Z" and shadow["last_seen"] == "2023-11-14T22:13:30Z"
    assert shadow["profile_mode"] == {"web1": "enforce", "web2": "enforce"}
    assert r["summary"]["intrusions"] == 2 and r["summary"]["intrusion_records"] == 6
    assert r["summary"]["needs_attention"] is True
    assert built["positions"] == {"web1": TOKEN, "web2": TOKEN}


def test_answer_snippet_is_an_allow_answer_that_produces_the_rule():
    g = fleet_report.fleet_report({"web1": host([ev("/srv/data/file.txt")])})["report"]["intrusions"][0]
    assert g["answer"].startswith("- !unsafe\n")  # host data: Ansible never templates it once pasted
    answer = yaml.safe_load(g["answer"].replace("!unsafe", ""))
    assert answer == [{"profile": "/usr/bin/app", "match": {"kind": "file", "path": "/srv/data/file.txt", "mask": "r"},
                       "answer": "allow", "owner": True}]
    assert g["rule"] == "owner /srv/data/file.txt r,"
    # the snippet, used as an inventory answer, decides the access: nothing is pending any more
    res = answers_mod.to_rules([dict(ev("/srv/data/file.txt"), hosts={"web1": 1})], answer)
    assert res["stats"]["allowed"] == 1 and res["stats"]["pending"] == 0


def test_forgeable_denials_go_to_unverified_only():
    r = rep.build({"web1": host([ev("/etc/shadow"), ev("/etc/forged", forgeable=True, sources=["syslog"])])})["report"]
    assert [g["target"] for g in r["intrusions"]] == ["/etc/shadow"]
    assert [(g["target"], g["sources"]) for g in r["unverified"]] == [("/etc/forged", ["syslog"])]
    assert r["summary"]["unverified"] == 1 and r["summary"]["intrusions"] == 1


def test_complain_accesses_listed_until_an_inventory_answer_decides_them():
    events = [ev("/etc/app.conf", mode="ALLOWED"), ev("/var/lib/app/state", mode="ALLOWED")]
    loaded = {"/usr/bin/app": "complain"}
    r = rep.build({"web1": host(events, loaded=loaded)})["report"]
    assert [(p["profile"], sorted(g["target"] for g in p["items"])) for p in r["unanswered"]] == [
        ("/usr/bin/app", ["/etc/app.conf", "/var/lib/app/state"])]
    answers = [{"profile": "/usr/bin/app", "match": {"kind": "file", "path": "/etc/app.conf"}, "answer": "allow"}]
    r = rep.build({"web1": host(events, loaded=loaded)}, answers=answers)["report"]
    assert [g["target"] for p in r["unanswered"] for g in p["items"]] == ["/var/lib/app/state"]
    assert r["intrusions"] == [] and r["summary"]["unanswered"] == 1


def test_rows_modes_drift_state_processes_backups():
    files = {"usr.bin.app": {"path": "/etc/apparmor.d/usr.bin.app", "mtime": 1700000000,
                             "profiles": {"/usr/bin/app": {"mode": "enforce"}, "/usr/bin/new": {"mode": "complain"},
                                          "/usr/bin/old": {"mode": "enforce"}}}}
    data = host(loaded={"/usr/bin/app": "complain", "/usr/bin/new": "complain", "/usr/bin/app//null-x": "complain"},
                files=files, processes={"/usr/sbin/appd": {"confined": 2, "unconfined": 1}},
                record={"/usr/bin/app": {"converged": True, "pending": 0, "passes": 3},
                        "/usr/bin/new": {"converged": False, "pending": 2, "passes": 1}})
    data["status"]["drift"] = {"mode_mismatch": [{"profile": "/usr/bin/app"}]}
    data["backups"] = [{"id": "a", "epoch": 1600000000}, {"id": "b", "epoch": 1700000000}]
    entry = rep.build({"web1": data}, programs=[{"path": "/usr/sbin/appd", "profile": "/usr/bin/app"}])["report"]
    rows = {r["profile"]: r for r in entry["hosts"][0]["profiles"]}
    assert sorted(rows) == ["/usr/bin/app", "/usr/bin/new"]  # children are not rows; file-only profiles not listed
    app = rows["/usr/bin/app"]
    assert (app["mode_kernel"], app["mode_file"], app["drift"], app["state"]) == ("complain", "enforce",
                                                                                  ["mode_mismatch"], "converged")
    assert app["processes"] == {"confined": 2, "unconfined": 1} and app["last_update"] == "2023-11-14T22:13:20Z"
    assert (rows["/usr/bin/new"]["state"], rows["/usr/bin/new"]["pending"]) == ("pending", 2)
    assert entry["hosts"][0]["backups"] == {"count": 2, "latest": "b", "latest_time": "2023-11-14T22:13:20Z"}
    with_all = rep.build({"web1": data}, all_loaded=True)["report"]["hosts"][0]["profiles"]
    assert "/usr/bin/old" in [r["profile"] for r in with_all]
    assert [r["state"] for r in with_all if r["profile"] == "/usr/bin/old"] == ["never exercised"]
    assert entry["summary"]["drifted"] == 1


def test_unreachable_host_keeps_its_position_and_is_shown():
    built = rep.build({"web1": host([ev()]), "web2": host(failed=True)})
    assert built["positions"] == {"web1": TOKEN}
    hosts = {h["host"]: h for h in built["report"]["hosts"]}
    assert hosts["web2"]["reachable"] is False and hosts["web2"]["error"] == "unreachable"
    assert built["report"]["summary"]["hosts_unreachable"] == 1


@pytest.mark.parametrize("junk", [
    None, "text", 5, [1, 2], {"kind": 5}, {"kind": "file"},
    {"kind": "file", "profile": "/p", "modes": ["DENIED"], "count": "lots", "first_seen": "yesterday",
     "comms": "not-a-list", "hosts": {"evil": "x"}, "mask": "r", "path": ["a"]},
    {"kind": "file", "profile": "/p", "modes": ["DENIED"], "count": -5, "first_seen": 1e30, "path": "x" * 100000},
])
def test_hostile_event_shapes_are_dropped_or_coerced(junk):
    r = rep.build({"web1": host([junk, ev()])})["report"]
    assert "/etc/shadow" in [g["target"] for g in r["intrusions"]]
    for g in r["intrusions"]:
        assert isinstance(g["count"], int) and g["count"] >= 1
        assert len(g["target"]) <= rep.MAX_TEXT + len("...(cut)")
        assert set(g["hosts"]) == {"web1"}  # the host is the inventory name, never what the event claims
    json.dumps(r)


def test_hostile_position_and_record_are_not_used():
    bad = rep.build({"web1": host([ev()], position="../../etc/passwd"), "web2": host([ev()])})
    assert bad["positions"] == {"web2": TOKEN}
    data = host()
    data["convergence_b64"] = "not base64 {{ }}"
    row = rep.build({"web1": data})["report"]["hosts"][0]["profiles"][0]
    assert row["state"] == "never exercised"


def test_positions_file_round_trip_and_damage():
    text = rep.dump_positions({"web1": TOKEN, "web2": TOKEN}, {"web2": TOKEN[:-1] + "B", "web3": "junk"})
    assert rep.load_positions(text) == {"web1": TOKEN, "web2": TOKEN[:-1] + "B"}
    assert rep.load_positions("") == {}
    for damaged, why in (("{", "not JSON"), ('{"version": 2, "positions": {}}', "version 1"),
                         ('{"version": 1, "positions": {"h": "x"}}', "not a token")):
        with pytest.raises(rep.ReportError, match=why):
            rep.load_positions(damaged)


def test_html_escapes_every_value_and_allows_only_its_own_inline_code():
    hostile = "/tmp/<script>alert(1)</script>\"'{{ x }}\n&amp;"
    r = rep.build({"web<1>": host([ev(hostile, comm="<b>c</b>")])})["report"]
    page = report_html.render(r)
    assert page.count("<script") == 1 and "<b>c</b>" not in page and "web<1>" not in page
    assert "/tmp/&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;{{ x }}\\n&amp;amp;" in page
    # the CSP allows exactly the inline style and script of the page, by their sha256
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page).group(1)
    assert policy.startswith("default-src &#x27;none&#x27;;")
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    for src in (style, script):
        digest = base64.b64encode(hashlib.sha256(src.encode()).digest()).decode()
        assert "sha256-%s" % digest in policy
    assert "http://" not in page and "https://" not in page and " src=" not in page


def test_summary_text_and_notice_are_one_line_per_group():
    r = rep.build({"web1": host([ev("/a\nFAKE LINE: all clear")])})["report"]
    text = rep.summary_text(r, "/srv/report/index.html")
    assert "report: /srv/report/index.html" in text
    assert "\nFAKE LINE" not in text and "/a\\nFAKE LINE: all clear" in text
    body = rep.notice(r, "/srv/report/index.html")
    assert body["summary"]["intrusions"] == 1 and body["intrusions"][0]["target"] == "/a\nFAKE LINE: all clear"
    json.dumps(body)


def test_pass_table_counts_rules_children_and_converged_hosts():
    result = {"profiles": {"/usr/bin/app": {"rules": [1, 2], "deny": [1], "pending": [],
                                             "children": {"hat": {"rules": [1], "deny": [], "pending": [1, 2]}},
                                             "hosts": ["web1", "web2"]}}}
    records = {"web1": {"profiles": {"/usr/bin/app": {"converged": True}, "/usr/bin/quiet": {"converged": True}}},
               "web2": {"profiles": {"/usr/bin/app": {"converged": False}}}}
    lines = rep.pass_table(result, records)
    assert [line.split() for line in lines] == [
        ["profile", "hosts", "allowed", "denied", "pending", "converged"],
        ["/usr/bin/app", "2", "3", "1", "2", "1/2"],
        ["/usr/bin/quiet", "1", "0", "0", "0", "1/1"]]


def test_status_scope_page_says_the_logs_were_not_read():
    r = rep.build({"web1": {"status": host()["status"]}}, scope="status")["report"]
    assert r["scope"] == "status" and r["intrusions"] == []
    assert r["hosts"][0]["profiles"][0]["profile"] == "/usr/bin/app"
    assert "the logs were not read" in report_html.render(r)
    with pytest.raises(rep.ReportError):
        rep.build({}, scope="other")


def test_enforce_summary_page_escapes_host_data_and_lists_unknown_hosts():
    reports = [{"host": "web1", "status": "enforced", "outcome": {"status": "enforced"},
                "profiles": [{"profile": "/usr/bin/<script>x", "action": "enforce", "reason": "converged"}]},
               {"host": "web2", "status": "rolled back", "outcome": {"reason": "new DENIED records: <b>x</b>"},
                "profiles": [{"profile": "/usr/bin/y", "action": "enforce", "reason": "forced"}]}]
    page = report_html.enforce_summary(reports, ["web3"])
    assert page.count("<script") == 1 and "<b>x</b>" not in page
    assert "/usr/bin/&lt;script&gt;x" in page and "new DENIED records: &lt;b&gt;x&lt;/b&gt;" in page
    assert "<td>web3</td><td>unknown</td>" in page
    for n, label in ((1, "enforced"), (1, "rolled back"), (1, "unknown")):
        assert '<span class="n">%d</span>%s' % (n, label) in page
