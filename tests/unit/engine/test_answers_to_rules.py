"""to_rules: what each decision writes, consensus, folding, conflicts, errors (docs/answers.md).

Expected rule texts are written from docs/answers.md and AppArmor's profile syntax (apparmor.d(5)),
e.g. aa-logprof's ``/bin/ping mrix,`` for an inherited exec. Every ABI 3.0 rule these tests produce is
compiled with the real apparmor_parser (-QK, never loaded) at the end of each test via ``compiled``.
"""
import os
import tempfile

import pytest
from aa_support import FEATURES

from ansible_collections.armada.apparmor.plugins.module_utils import host
from ansible_collections.armada.apparmor.plugins.module_utils.answers import AnswersError, to_rules
from ansible_collections.armada.apparmor.plugins.module_utils.fleet import merge_events

HERE = os.path.dirname(os.path.abspath(__file__))
P = "/usr/sbin/nginx"


def parser_or_none():
    try:
        return host.find_parser()
    except host.HostError:
        return None


def compiled(result):
    """Compile every rule of a to_rules result (ABI 3.0) inside a throwaway profile; return the result."""
    parser = parser_or_none()
    if parser is None or result["abi"] != "3.0":
        return result
    lines = ["abi <abi/3.0>,", "profile armada_answers_test {"]
    for entry in result["profiles"].values():
        lines.extend("  " + r["text"] for r in entry["rules"] + entry["deny"])
        for j, centry in enumerate(entry["children"].values()):
            lines.append("  ^hat_%d {" % j)
            lines.extend("    " + r["text"] for r in centry["rules"] + centry["deny"])
            lines.append("  }")
    lines.append("}")
    with tempfile.NamedTemporaryFile("w", suffix=".aa", delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        path = fh.name
    try:
        err = host.validate(path, parser, features_file=FEATURES)
    finally:
        os.unlink(path)
    assert err is None, "\n".join(lines) + "\n" + err
    return result


def fev(path, mask="r", owner=False, profile=P, host_name="web1", kind="file", **kw):
    e = {"kind": kind, "profile": profile, "host": host_name, "path": path, "owner": owner,
         "mask": {"requested": mask, "denied": mask}, "count": 1,
         "id": "%s|%s|%s|%s" % (profile, path, mask, host_name)}
    e.update(kw)
    return e


def texts(result, profile=P, key="rules"):
    return sorted(r["text"] for r in result["profiles"][profile][key])


def allow(match, **kw):
    a = {"profile": P, "match": match, "answer": "allow"}
    a.update(kw)
    return a


# ---- what is written ---------------------------------------------------------------------------------

def test_allow_writes_the_event_path_with_its_permissions_and_owner_from_the_event():
    r = compiled(to_rules([fev("/var/log/nginx/a.log", "w", owner=True), fev("/etc/nginx/nginx.conf", "r")],
                          [allow({"kind": "file"})]))
    assert texts(r) == ["/etc/nginx/nginx.conf r,", "owner /var/log/nginx/a.log w,"]
    rule = [x for x in r["profiles"][P]["rules"] if x["path"] == "/etc/nginx/nginx.conf"][0]
    assert rule["kind"] == "file" and rule["perms"] == "r" and rule["hosts"] == ["web1"] and rule["answers"] == [0]


def test_owner_and_audit_from_the_answer_override():
    r = compiled(to_rules([fev("/srv/a", "r", owner=True)], [allow({"path": "/srv/*"}, owner=False, audit=True)]))
    assert texts(r) == ["audit /srv/a r,"]


def test_glob_is_written_instead_of_the_path_and_covers_several_events():
    evs = [fev("/var/log/nginx/a.log", "w"), fev("/var/log/nginx/b.log", "w"), fev("/var/log/nginx/c.log", "a")]
    r = compiled(to_rules(evs, [allow({"kind": "file", "path": "/var/log/nginx/*.log"}, glob="/var/log/nginx/*.log")]))
    # one rule; append is included in w (apparmor_parser rejects "wa")
    assert texts(r) == ["/var/log/nginx/*.log w,"]
    assert len(r["profiles"][P]["rules"][0]["events"]) == 3


def test_glob_not_covering_the_event_is_an_error_and_the_event_stays_pending():
    # the answer's match has no path, so the glob can only be checked per event
    r = to_rules([fev("/etc/passwd")], [allow({"kind": "file"}, glob="/var/**")])
    assert r["profiles"][P]["rules"] == []
    assert len(r["errors"]) == 1 and "does not cover" in r["errors"][0]["message"]
    assert r["profiles"][P]["pending"][0]["reason"].startswith("answer error")


def test_exec_inherit_writes_mr_like_aa_logprof():
    r = compiled(to_rules([fev("/bin/ping", "x", kind="exec")],
                          [allow({"kind": "exec", "path": "/bin/ping"}, exec_mode="ix")]))
    assert texts(r) == ["/bin/ping mrix,"]


def test_exec_transition_is_written_bare_with_the_named_target():
    evs = [fev("/usr/bin/logger", "x", kind="exec", owner=True), fev("/usr/bin/mail", "x", kind="exec")]
    r = compiled(to_rules(evs, [allow({"kind": "exec", "path": "/usr/bin/logger"}, exec_mode="Px -> logger"),
                                allow({"kind": "exec", "path": "/usr/bin/mail"}, exec_mode="Cx",
                                      exec_target="mailer")]))
    # exec rules carry no owner unless the answer says so (aa-logprof writes them without)
    assert texts(r) == ["/usr/bin/logger Px -> logger,", "/usr/bin/mail Cx -> mailer,"]


def test_exec_without_an_exec_mode_stays_pending_even_with_default_allow():
    r = to_rules([fev("/bin/sh", "x", kind="exec")], [], default="allow")
    assert r["profiles"][P]["rules"] == []
    assert "exec_mode" in r["profiles"][P]["pending"][0]["reason"]


def test_deny_writes_its_glob_else_the_match_pattern_else_the_path():
    evs = [fev("/home/bob/.ssh/id_rsa", "r"), fev("/root/.gnupg/x", "rw"), fev("/etc/shadow", "r")]
    answers = [
        {"profile": "*", "match": {"path": "/home/*/.ssh/**"}, "answer": "deny", "glob": "/home/*/.ssh/**"},
        {"profile": "*", "match": {"path": "/root/.gnupg/**"}, "answer": "deny"},
        {"profile": "*", "match": {"kind": "file", "path": "/etc/shadow"}, "answer": "deny", "audit": True},
    ]
    r = compiled(to_rules(evs, answers))
    assert texts(r, key="deny") == ["audit deny /etc/shadow r,", "deny /home/*/.ssh/** r,", "deny /root/.gnupg/** rw,"]
    assert r["profiles"][P]["rules"] == []


def test_deny_of_an_exec_writes_x():
    r = compiled(to_rules([fev("/usr/bin/nc", "x", kind="exec")],
                          [{"profile": P, "match": {"kind": "exec"}, "answer": "deny"}]))
    assert texts(r, key="deny") == ["deny /usr/bin/nc x,"]


def test_deny_wins_and_the_conflict_is_reported():
    answers = [allow({"kind": "file", "path": "/home/bob/.ssh/known_hosts"}),
               {"profile": "*", "match": {"path": "/home/*/.ssh/**"}, "answer": "deny"}]
    r = compiled(to_rules([fev("/home/bob/.ssh/known_hosts")], answers))
    assert texts(r, key="deny") == ["deny /home/*/.ssh/** r,"]
    assert texts(r) == []
    assert r["stats"]["conflicts"] == 1
    c = r["conflicts"][0]
    assert c["deny"]["index"] == 1 and c["allow"]["index"] == 0 and c["path"] == "/home/bob/.ssh/known_hosts"


def test_ignore_writes_nothing_and_lists_the_event():
    r = to_rules([fev("/proc/1/stat")], [{"profile": "*", "match": {"path": "/proc/**"}, "answer": "ignore"}],
                 default="allow")
    assert texts(r) == []
    assert r["profiles"][P]["ignored"][0]["answer"] == 0


def test_include_answer_writes_the_abstraction_once():
    evs = [fev("/etc/ssl/certs/a.pem"), fev("/etc/ssl/certs/b.pem")]
    r = compiled(to_rules(evs, [allow({"kind": "file", "path": "/etc/ssl/**"}, include="abstractions/ssl_certs")]))
    assert texts(r) == ["include <abstractions/ssl_certs>"]


def test_other_kinds_use_the_rule_the_event_needs():
    cap = {"kind": "capability", "profile": P, "host": "web1", "capability": 7, "capname": "setuid", "count": 1,
           "id": "c"}
    r = compiled(to_rules([cap], [allow({"kind": "capability", "capability": "setuid"}, audit=True)]))
    assert texts(r) == ["audit capability setuid,"]


def test_permissions_of_one_path_merge_and_covered_rules_are_dropped():
    evs = [fev("/var/lib/x/db", "r"), fev("/var/lib/x/db", "w"), fev("/var/lib/x/db", "k"),
           fev("/var/cache/x/a", "r"), fev("/var/cache/x/b", "r")]
    answers = [allow({"path": "/var/lib/**"}), allow({"path": "/var/cache/x/b"}),
               allow({"path": "/var/cache/x/a"}, glob="/var/cache/x/*")]
    r = compiled(to_rules(evs, answers))
    assert texts(r) == ["/var/cache/x/* r,", "/var/lib/x/db rwk,"]
    star = [x for x in r["profiles"][P]["rules"] if x["text"].startswith("/var/cache")][0]
    assert len(star["events"]) == 2  # the covered rule's event moved to the covering one


def test_hostile_path_is_written_as_one_literal_rule():
    evil = "/tmp/x, /** rwx,\n/etc/shadow r"
    r = compiled(to_rules([fev(evil, "r")], [allow({"kind": "file"})]))
    rules = r["profiles"][P]["rules"]
    assert len(rules) == 1 and rules[0]["path"] != "/**"
    assert "\n" not in rules[0]["text"]


# ---- defaults, pending, consensus --------------------------------------------------------------------

def test_default_pending_keeps_unanswered_events_with_hosts():
    r = to_rules([fev("/etc/x")], [])
    p = r["profiles"][P]["pending"][0]
    assert p["reason"] == "no answer matches" and p["hosts"] == {"web1": 1} and p["label"] == P
    assert r["stats"]["pending"] == 1


def test_default_allow_is_a_learning_run():
    r = compiled(to_rules([fev("/etc/x")], [], default="allow"))
    assert texts(r) == ["/etc/x r,"] and r["profiles"][P]["rules"][0]["answers"] == ["default"]


def test_explicit_pending_answer_beats_default_allow():
    r = to_rules([fev("/etc/x")], [{"profile": P, "match": {"path": "/etc/x"}, "answer": "pending"}],
                 default="allow")
    assert texts(r) == [] and "explicitly pending" in r["profiles"][P]["pending"][0]["reason"]


def test_min_hosts_consensus_over_hosts_that_reported_the_profile():
    per_host = [[fev("/etc/common", host_name=h)] for h in ("a", "b", "c")] + [[fev("/etc/only-a", host_name="a")]]
    merged = merge_events(per_host)
    r = compiled(to_rules(merged, [allow({"kind": "file"})], min_hosts=2))
    assert texts(r) == ["/etc/common r,"]
    pend = r["profiles"][P]["pending"]
    assert len(pend) == 1 and pend[0]["path"] == "/etc/only-a" and pend[0]["hosts"] == {"a": 1}
    assert "seen by 1 of the 3 host(s)" in pend[0]["reason"] and "min_hosts is 2" in pend[0]["reason"]
    assert r["profiles"][P]["hosts"] == ["a", "b", "c"]
    # deny is never delayed by consensus
    d = to_rules(merged, [{"profile": P, "match": {"path": "/etc/only-a"}, "answer": "deny"}], min_hosts=3)
    assert texts(d, key="deny") == ["deny /etc/only-a r,"]


def test_to_rules_accepts_per_host_input_and_merges_it():
    r = to_rules({"a": [fev("/etc/x", host_name=None)], "b": [fev("/etc/x", host_name=None)]},
                 [allow({"kind": "file"})], min_hosts=2)
    assert texts(r) == ["/etc/x r,"] and r["profiles"][P]["rules"][0]["hosts"] == ["a", "b"]


# ---- children --------------------------------------------------------------------------------------

def test_null_children_fold_by_default_and_hats_stay():
    evs = [fev("/etc/a", profile=P + "//null-/usr/bin/helper"), fev("/etc/b", profile=P + "//worker")]
    r = compiled(to_rules(evs, [], default="allow"))
    assert texts(r) == ["/etc/a r,"]
    assert sorted(r["profiles"][P]["children"]) == ["worker"]
    kept = compiled(to_rules(evs, [], default="allow", fold_children=False))
    assert texts(kept) == []
    assert sorted(kept["profiles"][P]["children"]) == ["null-/usr/bin/helper", "worker"]
    assert kept["profiles"][P]["children"]["worker"]["hat"] is True


def test_answers_match_the_label_written_to():
    evs = [fev("/etc/b", profile=P + "//worker")]
    r = to_rules(evs, [allow({"kind": "file"})])  # profile P exactly: not the hat
    assert r["profiles"][P]["children"]["worker"]["pending"]
    r = to_rules(evs, [{"profile": P + "//worker", "match": {}, "answer": "allow"}])
    assert [x["text"] for x in r["profiles"][P]["children"]["worker"]["rules"]] == ["/etc/b r,"]


# ---- ABI and options -----------------------------------------------------------------------------------

def test_rules_an_abi_cannot_express_are_listed_as_unsupported():
    mq = {"kind": "mqueue", "profile": P, "host": "h", "path": "/q", "class": "posix_mqueue",
          "mask": {"requested": "read", "denied": "read"}, "count": 1, "id": "m"}
    r3 = to_rules([mq], [], default="allow", abi="3.0")
    r5 = to_rules([mq], [], default="allow", abi="5.0")
    assert r5["profiles"][P]["rules"] and r5["stats"]["unsupported"] == 0
    assert r3["profiles"][P]["rules"] == [] and r3["stats"]["unsupported"] == 1
    assert "ABI 3.0" in r3["profiles"][P]["unsupported"][0]["reason"]


def nev(i, access, sock_type="stream", host_name="web1", **kw):
    e = {"kind": "network", "profile": P, "host": host_name, "family": "inet", "sock_type": sock_type,
         "mask": {"requested": access, "denied": access}, "count": 1, "id": "net-%d" % i}
    e.update(kw)
    return e


def test_rules_written_identically_for_the_abi_fold_into_one():
    # ABI 3.0 network rules name only domain and type (apparmor.d(5)): six stream accesses and three dgram
    # accesses with local addresses need two lines, not nine; every event, host and answer stays listed.
    stream = [nev(i, a, host_name="web%d" % (i % 2 + 1))
              for i, a in enumerate(("create", "connect", "send", "receive", "getattr", "setopt"))]
    dgram = [nev(10 + i, a, "dgram", laddr="10.0.0.%d" % i, lport=53) for i, a in enumerate(("create", "send",
                                                                                            "receive"))]
    answers = [allow({"kind": "network", "sock_type": "dgram"}), allow({"kind": "network"})]
    r = compiled(to_rules(stream + dgram, answers, abi="3.0"))
    rules = {d["text"]: d for d in r["profiles"][P]["rules"]}
    assert sorted(rules) == ["network inet dgram,", "network inet stream,"]
    assert rules["network inet stream,"]["events"] == ["net-%d" % i for i in range(6)]
    assert rules["network inet stream,"]["hosts"] == ["web1", "web2"]
    assert rules["network inet stream,"]["answers"] == [1]
    assert rules["network inet dgram,"]["events"] == ["net-10", "net-11", "net-12"]
    assert rules["network inet dgram,"]["answers"] == [0]
    # the structured fields describe the line written, not one of the accesses folded into it
    assert rules["network inet dgram,"]["access"] is None and rules["network inet dgram,"]["ip"] is None
    assert r["stats"]["allowed"] == 9
    # ABI 4.0 writes each access (and address) apart: nothing is folded there
    r4 = to_rules(stream + dgram, answers, abi="4.0")
    assert len(texts(r4)) == 9 and len(set(texts(r4))) == 9
    # answers of different events folded into one line are all listed, in order of first use
    both = to_rules([nev(0, "send"), nev(1, "receive")],
                    [allow({"kind": "network", "mask": "receive"}), allow({"kind": "network"})], abi="3.0")
    assert [(d["text"], d["answers"]) for d in both["profiles"][P]["rules"]] == [("network inet stream,", [1, 0])]


@pytest.mark.parametrize("kw, fragment", [
    ({"default": "deny"}, "default"), ({"min_hosts": 0}, "min_hosts"), ({"min_hosts": True}, "min_hosts"),
    ({"abi": "2.7"}, "abi"), ({"abi": "x"}, "ABI"),
])
def test_bad_options_fail_before_anything_is_computed(kw, fragment):
    with pytest.raises(ValueError) as info:
        to_rules([fev("/x")], [], **kw)
    assert fragment in str(info.value)


def test_invalid_answers_raise_with_every_problem():
    with pytest.raises(AnswersError) as info:
        to_rules([fev("/x")], [{"profile": P, "match": {"kind": "file"}, "answer": "allow", "exec_mode": "ix"},
                               {"profile": P, "match": {}, "answer": "yes"}])
    assert len(info.value.problems) == 2


def test_input_events_are_not_modified():
    e = fev("/etc/x")
    before = repr(e)
    to_rules([e], [allow({"kind": "file"})])
    assert repr(e) == before


def test_file_and_exec_events_of_one_program_merge_into_one_rule():
    evs = [fev("/usr/bin/helper", "r"), fev("/usr/bin/helper", "x", kind="exec")]
    r = compiled(to_rules(evs, [allow({"kind": "exec"}, exec_mode="ix"), allow({"kind": "file"})]))
    assert texts(r) == ["/usr/bin/helper mrix,"]


def test_conflicting_exec_transitions_for_one_path_are_not_both_written():
    # owner is part of an exec event's identity: two events, and answers that give them different modes
    evs = [fev("/usr/bin/helper", "x", kind="exec", owner=True), fev("/usr/bin/helper", "x", kind="exec")]
    answers = [allow({"kind": "exec", "owner": True}, exec_mode="Px"), allow({"kind": "exec", "owner": False},
                                                                              exec_mode="Cx")]
    r = compiled(to_rules(evs, answers))
    assert len(texts(r)) == 1
    pend = r["profiles"][P]["pending"]
    assert len(pend) == 1 and "conflicting exec transitions" in pend[0]["reason"]
    assert r["errors"] and "conflicting" in r["errors"][0]["message"]
