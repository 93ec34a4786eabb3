"""The answers filters through a real ansible-playbook run: hostvars in, rules and a pending block out.

Inventory: web1, web2, db1 (local connection) whose ``denials`` results are host vars (as a registered
``armada.apparmor.denials`` result would be); answers split over ``apparmor_answers`` (all),
``apparmor_answers_web`` (group web) and ``apparmor_answers_host`` (host web1) and concatenated the way
the roles do it. Expected rules are written from docs/answers.md.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml
from aa_playbook import load_like_inventory, templatable_strings
from aa_support import FEATURES, HOSTILE_SYNTAX
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import answers as engine
from ansible_collections.armada.apparmor.plugins.module_utils import suggest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLL_ROOT = os.path.join(ROOT, "build", "collections")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
NGINX = "/usr/sbin/nginx"


def fev(path, mask="r", host="web1", owner=False, kind="file", profile=NGINX, count=1):
    return {"kind": kind, "profile": profile, "parent": profile.split("//")[0], "host": host, "path": path,
            "owner": owner, "mask": {"requested": mask, "denied": mask}, "count": count, "operations": ["open"],
            "modes": ["DENIED"], "pids": [10], "comms": ["nginx"], "first_seen": 1.0, "last_seen": 2.0,
            "id": "%s-%s-%s" % (host, path, mask)}


HOST_EVENTS = {
    "web1": [fev("/var/log/nginx/access.log", "w", "web1", count=3), fev("/etc/ssl/certs/ca.pem", "r", "web1"),
             fev("/home/bob/.ssh/id_rsa", "r", "web1"), fev("/srv/www/index.html", "r", "web1"),
             fev("/usr/bin/logger", "x", "web1", kind="exec")],
    "web2": [fev("/var/log/nginx/access.log", "w", "web2"), fev("/etc/ssl/certs/ca.pem", "r", "web2"),
             fev("/srv/www/index.html", "r", "web2"), fev("/srv/www/only-web2.html", "r", "web2")],
    "db1": [fev("/var/lib/postgresql/x", "rw", "db1", profile="/usr/lib/postgresql/bin/postgres")],
}

ANSWERS_ALL = [{"profile": "*", "match": {"kind": "file", "path": "/home/*/.ssh/**"}, "answer": "deny"}]
ANSWERS_WEB = [
    {"profile": NGINX, "match": {"kind": "file", "path": "/var/log/nginx/*.log"}, "answer": "allow",
     "glob": "/var/log/nginx/*.log"},
    {"profile": NGINX, "match": {"kind": "file", "path": "/etc/ssl/**"}, "answer": "allow",
     "include": "abstractions/ssl_certs"},
]
ANSWERS_WEB1 = [{"profile": NGINX, "match": {"kind": "exec", "path": "/usr/bin/logger"}, "answer": "allow",
                 "exec_mode": "Px"}]

COMBINE = "{{ query('ansible.builtin.vars', *(query('ansible.builtin.varnames', '^apparmor_answers') | sort)) " \
          "| flatten(levels=1) }}"


def compile_rules(tmp_path, rule_texts):
    """Compile rule lines (ABI 3.0) in a throwaway profile with the real apparmor_parser -QK (never loads)."""
    from ansible_collections.armada.apparmor.plugins.module_utils import host
    try:
        parser = host.find_parser()
    except host.HostError:
        pytest.skip("apparmor_parser is not installed (make apt installs it)")
    path = tmp_path / "compile.aa"
    path.write_text("abi <abi/3.0>,\nprofile armada_filter_test {\n" + "".join("  %s\n" % t for t in rule_texts)
                    + "}\n")
    err = host.validate(str(path), parser, features_file=FEATURES)
    assert err is None, err


def run_playbook(tmp_path, tasks):
    inv = tmp_path / "inventory"
    (inv / "host_vars").mkdir(parents=True)
    (inv / "group_vars").mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "web": {"hosts": {"web1": None, "web2": None}}, "db": {"hosts": {"db1": None}}}}}))
    (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump({
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "apparmor_answers": ANSWERS_ALL}))
    (inv / "group_vars" / "web.yml").write_text(yaml.safe_dump({"apparmor_answers_web": ANSWERS_WEB}))
    for host, evs in HOST_EVENTS.items():
        data = {"denials": {"events": evs, "changed": False}}
        if host == "web1":
            data["apparmor_answers_host"] = ANSWERS_WEB1
        (inv / "host_vars" / ("%s.yml" % host)).write_text(yaml.safe_dump(data))
    out = tmp_path / "out.json"
    # the controller-side tasks run in the context of web1 (its group and host answers apply)
    play = [{"hosts": "web1", "gather_facts": False, "tasks": tasks + [
        {"name": "collect", "run_once": True, "ansible.builtin.copy": {
            "dest": str(out), "content": "{{ collected | to_json }}"}}]}]
    pb = tmp_path / "play.yml"
    pb.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0")
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inv / "hosts.yml"), str(pb)], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), check=False)
    assert out.exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(out.read_text()), proc


def test_fleet_rules_and_pending_block_through_ansible(tmp_path):
    pending_file = tmp_path / "apparmor_answers_pending.yml"
    tasks = [
        {"name": "combine answers, merge, to_rules, pending", "run_once": True, "ansible.builtin.set_fact": {
            "answers_all": COMBINE,
            "fleet": "{{ hostvars | armada.apparmor.merge_events(var='denials') }}"}},
        {"name": "rules", "run_once": True, "ansible.builtin.set_fact": {
            "rules": "{{ fleet | armada.apparmor.to_rules(answers_all, min_hosts=2) }}"}},
        {"name": "pending block", "run_once": True, "ansible.builtin.copy": {
            "dest": str(pending_file), "content": "{{ rules | armada.apparmor.pending_answers }}"}},
        {"name": "bad answers fail with the offending answer", "run_once": True, "ignore_errors": True,
         "register": "bad", "ansible.builtin.debug": {
             "msg": "{{ fleet | armada.apparmor.to_rules([{'profile': 'x', 'match': {'kind': 'file', 'pth': '/'}, "
                    "'answer': 'allow'}]) }}"}},
        {"name": "collected", "run_once": True, "ansible.builtin.set_fact": {
            "collected": {"answers": "{{ answers_all }}", "fleet": "{{ fleet }}", "rules": "{{ rules }}",
                          "bad": "{{ bad }}"}}},
    ]
    got, _proc = run_playbook(tmp_path, tasks)
    # the roles' concatenation: apparmor_answers, apparmor_answers_host (web1 only), apparmor_answers_web
    assert [a["answer"] for a in got["answers"]] == ["deny", "allow", "allow", "allow"]
    fleet = {(e["profile"], e["path"]): e for e in got["fleet"]}
    assert fleet[(NGINX, "/var/log/nginx/access.log")]["hosts"] == {"web1": 3, "web2": 1}
    assert fleet[(NGINX, "/var/log/nginx/access.log")]["count"] == 4
    nginx = got["rules"]["profiles"][NGINX]
    assert sorted(r["text"] for r in nginx["rules"]) == ["/var/log/nginx/*.log w,", "include <abstractions/ssl_certs>"]
    assert [r["text"] for r in nginx["deny"]] == ["deny /home/*/.ssh/** r,"]
    compile_rules(tmp_path, [r["text"] for r in nginx["rules"] + nginx["deny"]])
    assert nginx["hosts"] == ["web1", "web2"]
    pending = {(e["path"], e["reason"].split(":")[0]) for e in nginx["pending"]}
    # logger: allowed by web1's answer but seen by 1 of 2 hosts (min_hosts=2); index/only-web2: no answer
    assert ("/usr/bin/logger", "consensus") in pending
    assert ("/srv/www/index.html", "no answer matches") in pending
    assert got["rules"]["profiles"]["/usr/lib/postgresql/bin/postgres"]["pending"][0]["hosts"] == {"db1": 1}
    assert got["bad"]["failed"] is True
    assert "answer #0" in got["bad"]["msg"] and "pth" in got["bad"]["msg"]

    # the pending block is valid YAML in the answers schema and pastes back as is (read by Ansible's loader)
    block = load_like_inventory(tmp_path, pending_file.read_text(), "pasted.yml")
    entries = block["apparmor_answers_pending"]
    assert all(e["answer"] == "pending" for e in entries)
    engine.validate_answers(entries)
    logger = [e for e in entries if e["match"].get("path") == "/usr/bin/logger"][0]
    assert logger["hosts"] == ["web1"] and logger["counts"] == {"web1": 1}
    assert logger["suggestions"]["exec_modes"][0] == "ix"
    # reviewed: allow the web content with a suggested glob, paste back, the events become rules
    for e in entries:
        if e["match"].get("path", "").startswith("/srv/www/"):
            e["answer"] = "allow"
            e["glob"] = "/srv/www/*"
            assert "/srv/www/*" in e["suggestions"]["globs"]
    again = engine.to_rules(got["fleet"], got["answers"] + entries)
    assert "/srv/www/* r," in [r["text"] for r in again["profiles"][NGINX]["rules"]]
    compile_rules(tmp_path, [r["text"] for r in again["profiles"][NGINX]["rules"] + again["profiles"][NGINX]["deny"]])
    # /srv/www/index.html is covered by ubuntu-browsers.d/user-files (/srv/** r): never suggested
    index = [e for e in entries if e["match"].get("path") == "/srv/www/index.html"][0]
    assert not any("user-files" in i for i in index["suggestions"].get("includes", []))


def test_filters_render_with_ansible_doc():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")
    doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    for name in ("to_rules", "merge_events", "pending_answers"):
        proc = subprocess.run([doc, "-t", "filter", "--json", "armada.apparmor." + name], capture_output=True,
                              text=True, env=env, check=False)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)["armada.apparmor." + name]
        assert data["doc"]["name"] == name and data["examples"] and data["return"]


# ---- YAML round trip of hostile names (PyYAML is the reader Ansible uses) -----------------------------

HOSTILE = HOSTILE_SYNTAX + list(":&|>%'` -") + ["\u00e9", "\u2028", "\x85", "\t", "\x00", "\U0001f600", "\udcff",
                                                  "yes", "null", "~", "0x1", "1e3"]


@settings(max_examples=int(os.environ.get("ARMADA_FUZZ_EXAMPLES", "100")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(path=st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=12).map("".join),
       host=st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=6).map("".join),
       profile=st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=8).map("".join))
def test_fuzz_pending_yaml_reads_back_exactly(tmp_path_factory, path, host, profile):
    from ansible_collections.armada.apparmor.plugins.filter.pending_answers import pending_text
    event = fev("/" + path, host=host, profile=profile)
    event["hosts"] = {host: 2}
    result = engine.to_rules([event], [])
    entries = suggest.pending_list(result)
    text = pending_text(entries)
    loaded = load_like_inventory(tmp_path_factory.mktemp("fuzz"), text)["apparmor_answers_pending"]
    if any("\ud800" <= c <= "\udfff" for c in path + host + profile):
        # a byte that is not UTF-8 cannot be carried by YAML: a comment says so, the file still loads
        assert loaded == [] and "# NOT WRITTEN: a file question" in text
        return
    # ISO timestamps in the text, epoch seconds in the data; everything else reads back exactly
    assert [dict(e, first_seen=None, last_seen=None) for e in loaded] == [
        dict(e, first_seen=None, last_seen=None) for e in entries]
    assert loaded[0]["first_seen"] == "1970-01-01T00:00:01Z" and loaded[0]["last_seen"] == "1970-01-01T00:00:02Z"
    # and nothing a host wrote is a template Ansible would render
    assert templatable_strings(loaded) == []
    assert entries[0]["counts"] == {host: 2}
    # the match written for the event matches exactly that event when pasted back
    answer = dict(entries[0], answer="ignore")
    if profile.split("//")[0]:
        again = engine.to_rules([event], [answer])
        label_entry = again["profiles"][profile.split("//")[0]]
        children = list(label_entry["children"].values())
        ignored = label_entry["ignored"] + [i for c in children for i in c["ignored"]]
        assert len(ignored) == 1, again


@pytest.mark.parametrize("bad", [{"profiles": "x"}, [], "text"])
def test_pending_answers_filter_rejects_what_is_not_a_result(bad):
    from ansible.errors import AnsibleFilterError

    from ansible_collections.armada.apparmor.plugins.filter.pending_answers import pending_answers_filter
    with pytest.raises(AnsibleFilterError):
        pending_answers_filter(bad, abstractions_dir="")


def test_relative_names_are_unsupported_and_a_relative_glob_fails_through_ansible(tmp_path):
    """Issue 12, item 3: a file event named ``include`` (or ``x y``) is never a rule; a glob that is not an
    absolute pattern fails the task naming the answer."""
    # complain-mode records: default allow applies only to those (enforce-mode denials stay pending)
    evs = [dict(fev(p, "r"), modes=["ALLOWED"]) for p in ("include", "x y", "/srv/ok")]
    tasks = [
        {"name": "to_rules", "run_once": True, "ansible.builtin.set_fact": {
            "rules": "{{ %s | armada.apparmor.to_rules([], default='allow') }}" % json.dumps(evs)}},
        {"name": "relative glob", "run_once": True, "ignore_errors": True, "register": "bad",
         "ansible.builtin.debug": {"msg": "{{ %s | armada.apparmor.to_rules([{'profile': '%s', 'match': "
                                          "{'kind': 'file'}, 'answer': 'allow', 'glob': 'include'}]) }}"
                                          % (json.dumps(evs), NGINX)}},
        {"name": "collected", "run_once": True, "ansible.builtin.set_fact": {
            "collected": {"rules": "{{ rules }}", "bad": "{{ bad }}"}}},
    ]
    got, _proc = run_playbook(tmp_path, tasks)
    nginx = got["rules"]["profiles"][NGINX]
    assert [r["text"] for r in nginx["rules"]] == ["/srv/ok r,"]
    assert sorted(u["path"] for u in nginx["unsupported"]) == ["include", "x y"]
    assert all("is not an absolute path" in u["reason"] for u in nginx["unsupported"])
    assert got["bad"]["failed"] is True
    assert "answer #0" in got["bad"]["msg"] and "'include' is not an absolute path" in got["bad"]["msg"]


def test_logprof_knowledge_through_ansible(tmp_path):
    """Mode default, exec qualifiers (shipped + inventory), hats and breadth through the filters in a real play."""
    pending_file = tmp_path / "pending.yml"
    shell = dict(fev("/usr/bin/dash", "x", kind="exec"), modes=["ALLOWED"])
    logger = dict(fev("/usr/bin/logger", "x", kind="exec"), modes=["ALLOWED"])
    secret = dict(fev("/etc/armada-secret", "r"), modes=["DENIED"])  # enforce mode refused it
    conf = dict(fev("/etc/nginx/nginx.conf", "r"), modes=["ALLOWED"])  # complain mode logged it
    hat = {"kind": "change_hat", "profile": NGINX, "host": "web1", "target": NGINX + "//UPLOAD", "modes": ["ALLOWED"],
           "operations": ["change_hat"], "count": 1, "id": "hat1"}
    bash_px = [{"profile": NGINX, "match": {"kind": "exec", "path": "/usr/bin/bash"}, "answer": "allow",
                "exec_mode": "Px"}]
    everything = [{"profile": "*", "match": {}, "answer": "allow"}]
    tasks = [
        {"name": "rules", "run_once": True, "vars": {"evs": [shell, logger, secret, conf, hat]},
         "ansible.builtin.set_fact": {"rules": "{{ evs | armada.apparmor.to_rules([], default='allow', "
                                               "exec_qualifiers={'/usr/bin/logger': 'ic'}) }}"}},
        {"name": "pending block", "run_once": True, "ansible.builtin.copy": {
            "dest": str(pending_file), "content": "{{ rules | armada.apparmor.pending_answers }}"}},
        {"name": "bash Px", "run_once": True, "ignore_errors": True, "register": "bad_mode", "vars": {"a": bash_px},
         "ansible.builtin.debug": {"msg": "{{ [] | armada.apparmor.to_rules(a) }}"}},
        {"name": "broad", "run_once": True, "ignore_errors": True, "register": "broad", "vars": {"a": everything},
         "ansible.builtin.debug": {"msg": "{{ [] | armada.apparmor.to_rules(a) }}"}},
        {"name": "typo in the table", "run_once": True, "ignore_errors": True, "register": "typo",
         "ansible.builtin.debug": {
             "msg": "{{ [] | armada.apparmor.to_rules([], exec_qualifiers={'/usr/bin/x': 'ipx'}) }}"}},
        {"name": "collected", "run_once": True, "ansible.builtin.set_fact": {
            "collected": {"rules": "{{ rules }}", "bad_mode": "{{ bad_mode }}", "broad": "{{ broad }}",
                          "typo": "{{ typo }}"}}},
    ]
    got, _proc = run_playbook(tmp_path, tasks)
    nginx = got["rules"]["profiles"][NGINX]
    # complain-mode access allowed by default; the enforce-mode denial is not, and is flagged
    assert [r["text"] for r in nginx["rules"]] == ["/etc/nginx/nginx.conf r,"]
    assert list(nginx["children"]) == ["UPLOAD"] and nginx["children"]["UPLOAD"]["add_hat"]["events"] == ["hat1"]
    block = yaml.safe_load(pending_file.read_text().replace("!unsafe", ""))  # the writer tags entries !unsafe
    entries = {e["match"]["path"]: e for e in block["apparmor_answers_pending"]}
    assert sorted(entries) == ["/etc/armada-secret", "/usr/bin/dash", "/usr/bin/logger"]
    assert entries["/etc/armada-secret"]["possible_intrusion"] is True
    assert entries["/etc/armada-secret"]["suggestions"]["default_answer"] == "deny"
    # logprof.conf: /usr/bin/dash = icnu; inventory: /usr/bin/logger = ic
    assert entries["/usr/bin/dash"]["suggestions"]["exec_modes"] == ["ix", "Cx", "Cix", "cx", "cix", "Ux", "ux"]
    assert entries["/usr/bin/logger"]["suggestions"]["exec_modes"] == ["ix", "Cx", "Cix", "cx", "cix"]
    engine.validate_answers(list(entries.values()))
    assert got["bad_mode"]["failed"] and "exec mode Px is not allowed for /usr/bin/bash" in got["bad_mode"]["msg"]
    assert got["broad"]["failed"] and "broad: true" in got["broad"]["msg"]
    assert got["typo"]["failed"] and "letters out of" in got["typo"]["msg"]
