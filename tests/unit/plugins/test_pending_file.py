"""The pending file (apparmor-pending.yml): fewer, inert questions (issue 12 item 2, issue 14).

- one question per profile and access, the requested masks united (aa-logprof asks once per path);
- an exec question covers the program's own read (``/usr/bin/tar r`` by ``P//null-/usr/bin/tar``);
- every entry is ``!unsafe``: pasted into inventory and read by the update role's own task file, a host
  string holding ``{{ lookup('pipe', ...) }}`` runs nothing (positive control: without the tag it runs);
- the profile is glob-escaped: a forged label ``tracked//*`` answered matches only itself;
- measured: the fixture log of a service-like shell script recorded in the lab (tests/fixtures/pending-file,
  docs/benchmarks.md) asks 21 questions where aa-logprof asked 26, for the same or a narrower profile.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml
from aa_playbook import ANSIBLE_PLAYBOOK, COLL_ROOT, load_like_inventory, make_tree, run_tasks, templatable_strings

from ansible_collections.armada.apparmor.plugins.filter.pending_answers import pending_answers_filter
from ansible_collections.armada.apparmor.plugins.module_utils import answers as engine
from ansible_collections.armada.apparmor.plugins.module_utils import coverage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "pending-file")
AGENT = "/usr/local/bin/armada-agent"
# aa-logprof 3.0.8 on the same log, in the lab guest (tests/bench/aa_logprof_questions.py; docs/benchmarks.md)
AA_LOGPROF_QUESTIONS = 26


def ev(path, mask="r", kind="file", profile=AGENT, owner=True, host="web1", comm="agent", mode="ALLOWED", t=10.0):
    evt = {"kind": kind, "profile": profile, "path": path, "owner": owner, "host": host, "count": 1,
           "mask": {"requested": mask, "denied": mask if mode == "DENIED" else ""}, "operations": ["open"],
           "modes": [mode], "comms": [comm], "first_seen": t, "last_seen": t + 5,
           "id": "%s-%s-%s-%s" % (profile, kind, path, mask)}
    return evt


def questions(events, answers=()):
    return pending_answers_filter(engine.to_rules(events, list(answers)), abstractions_dir="", format="list")


def allowed(entry, **extra):
    return dict(entry, answer="allow", **extra)


# ---- one question per access ---------------------------------------------------------------------

def test_three_masks_of_a_path_are_one_question_with_their_union():
    events = [ev("/etc/agent.conf", "wc"), ev("/etc/agent.conf", "c"), ev("/etc/agent.conf", "r", comm="cat"),
              ev("/var/log/agent.log", "a")]
    qs = questions(events)
    assert [(q["match"]["path"], q["match"]["mask"]) for q in qs] == [("/etc/agent.conf", "rwc"),
                                                                      ("/var/log/agent.log", "a")]
    conf = qs[0]
    assert conf["rule"] == "owner /etc/agent.conf rw,"  # what allow writes (c is written as w)
    assert conf["comm"] == ["agent", "cat"] and conf["logged"] == ["ALLOWED"]
    assert conf["counts"] == {"web1": 3} and len(conf["id"]) == 3
    # the one answer covers the three events: nothing stays pending, one rule
    result = engine.to_rules(events, [allowed(conf)])
    prof = result["profiles"][AGENT]
    assert [r["text"] for r in prof["rules"]] == ["owner /etc/agent.conf rw,"]
    assert [p["path"] for p in prof["pending"]] == ["/var/log/agent.log"]
    # a later write the reviewer never saw is not covered by the answer (mask is still a bound)
    later = engine.to_rules(events + [ev("/etc/agent.conf", "k")], [allowed(conf)])
    assert sorted((p["path"], p["mask"]["requested"]) for p in later["profiles"][AGENT]["pending"]) == [
        ("/etc/agent.conf", "k"), ("/var/log/agent.log", "a")]


def test_mixed_owner_events_make_a_non_owner_question():
    qs = questions([ev("/var/backups/a.tgz", "w", owner=True), ev("/var/backups/a.tgz", "wc", owner=False)])
    assert len(qs) == 1 and qs[0]["owner"] is False and qs[0]["rule"] == "/var/backups/a.tgz w,"


def test_other_kinds_unite_their_mask_words():
    base = {"kind": "dbus", "profile": AGENT, "bus": "system", "dbus_path": "/org/x", "interface": "org.x.I",
            "member": "M", "dbus_name": "org.x", "peer": "unconfined", "host": "web1", "count": 1,
            "modes": ["ALLOWED"], "comms": ["agent"]}
    qs = questions([dict(base, mask={"requested": "send"}, id="a"), dict(base, mask={"requested": "receive"}, id="b")])
    assert len(qs) == 1 and qs[0]["match"]["mask"] == "send receive"


# ---- an exec answer covers the program's own read ------------------------------------------------

TAR_EVENTS = [ev("/usr/bin/tar", "x", kind="exec", owner=False),
              ev("/usr/bin/tar", "r", profile=AGENT + "//null-/usr/bin/tar", comm="tar"),
              ev("/usr/bin/tar", "rm", profile=AGENT + "//null-/usr/bin/tar", comm="tar"),
              ev("/etc/tar.conf", "r", profile=AGENT + "//null-/usr/bin/tar", comm="tar")]


def test_the_exec_question_stands_for_the_programs_own_read():
    qs = questions(TAR_EVENTS)
    assert [(q["match"]["kind"], q["match"]["path"]) for q in qs] == [("exec", "/usr/bin/tar"),
                                                                      ("file", "/etc/tar.conf")]
    tar = qs[0]
    assert tar["rule"] == "/usr/bin/tar mrix," and tar["comm"] == ["agent", "tar"] and len(tar["id"]) == 3


@pytest.mark.parametrize("mode, text, child", [("ix", "/usr/bin/tar mrix,", AGENT),
                                               ("Px", "/usr/bin/tar Px,", "/usr/bin/tar")])
def test_an_exec_answer_allows_or_makes_unneeded_the_read(mode, text, child):
    tar = questions(TAR_EVENTS)[0]
    result = engine.to_rules(TAR_EVENTS, [allowed(tar, exec_mode=mode)])
    prof = result["profiles"][AGENT]
    # ix: mr comes with the exec; Px: the program runs under its own profile, which gets tar's own accesses
    # (issue 16: the question about /etc/tar.conf is asked for that profile)
    assert [r["text"] for r in prof["rules"]] == [text]
    owner = result["profiles"][child]
    assert [p["path"] for p in owner["pending"]] == ["/etc/tar.conf"]
    assert sorted(i["mask"]["requested"] for i in owner["ignored"]) == ["r", "rm"]
    assert all(i["answer"] == 0 and "covered by the exec answer #0" in i["reason"] for i in owner["ignored"])


def test_only_the_programs_own_read_is_covered():
    # the parent reading the binary (a checksum) and the child writing it are a question of their own
    events = TAR_EVENTS[:1] + [ev("/usr/bin/tar", "r", comm="sha256sum"),
                               ev("/usr/bin/tar", "w", profile=AGENT + "//null-/usr/bin/tar", comm="tar")]
    qs = questions(events)
    assert [(q["match"]["kind"], q["match"].get("mask")) for q in qs] == [("exec", None), ("file", "rw")]
    result = engine.to_rules(events, [allowed(qs[0], exec_mode="Px")])
    assert sorted(p["mask"]["requested"] for p in result["profiles"][AGENT]["pending"]) == ["r"]
    # the child's write runs under tar's own profile (Px, issue 16): asked there
    assert sorted(p["mask"]["requested"] for p in result["profiles"]["/usr/bin/tar"]["pending"]) == ["w"]


def test_a_denied_exec_leaves_no_question_about_its_read():
    tar = questions(TAR_EVENTS)[0]
    result = engine.to_rules(TAR_EVENTS, [dict(tar, answer="deny")])
    prof = result["profiles"][AGENT]
    assert [r["text"] for r in prof["deny"]] == ["deny /usr/bin/tar x,"]
    assert [p["path"] for p in prof["pending"]] == ["/etc/tar.conf"]


# ---- forged labels ----------------------------------------------------------------------------------

def test_a_forged_label_answered_matches_only_itself():
    forged = ev("/etc/shadow", profile="tracked//*")
    q = questions([forged])[0]
    assert q["profile"] == "tracked//\\*"
    other_child = ev("/etc/shadow", profile="tracked//webapp")
    result = engine.to_rules([forged, other_child], [allowed(q)])
    tracked = result["profiles"]["tracked"]["children"]
    assert [r["text"] for r in tracked["*"]["rules"]] == ["owner /etc/shadow r,"]
    assert [p["path"] for p in tracked["webapp"]["pending"]] == ["/etc/shadow"]


# ---- the YAML text --------------------------------------------------------------------------------

def test_the_text_is_grouped_by_profile_and_made_for_review(tmp_path):
    events = [ev("/etc/agent.conf", "wc"), ev("/etc/agent.conf", "r"), ev("/srv/a/b/c.txt", mode="DENIED"),
              ev("/etc/x", profile="/usr/sbin/other")]
    text = pending_answers_filter(engine.to_rules(events, []), abstractions_dir="")
    lines = text.splitlines()
    assert "  # ---- profile /usr/local/bin/armada-agent: 2 question(s)" in lines
    assert "  # ---- profile /usr/sbin/other: 1 question(s)" in lines
    assert lines.count("  - !unsafe") == 3
    assert "    answer: pending  # allow | deny | ignore | pending" in lines
    assert "    rule: owner /etc/agent.conf rw," in lines and "    logged: [DENIED]" in lines
    assert "    first_seen: '1970-01-01T00:00:10Z'" in lines and "    last_seen: '1970-01-01T00:00:15Z'" in lines
    # long suggestion lists one per line
    i = lines.index("      - /srv/a/b/c.txt")
    assert lines[i - 1:i + 3] == ["      globs:", "      - /srv/a/b/c.txt", "      - /srv/a/b/*.txt",
                                  "      - /srv/a/b/*"]
    loaded = load_like_inventory(tmp_path, text)["apparmor_answers_pending"]
    engine.validate_answers(loaded)
    assert templatable_strings(loaded) == []


def test_empty_and_bad_names():
    from ansible_collections.armada.apparmor.plugins.filter.pending_answers import pending_text
    assert pending_text([], header=False) == "apparmor_answers_pending: []\n"
    assert pending_text([], var_name=None, header=False) == "[]\n"
    with pytest.raises(ValueError):
        pending_text([], var_name="bad name")


# ---- pasted into inventory and read by the update role: nothing runs --------------------------------

def hostile_events(marker):
    cmd = "{{ lookup('pipe', 'touch %s') }}" % marker
    return [ev("/srv/" + cmd, "r", comm=cmd, profile=AGENT),
            ev("/etc/x", "r", profile="/usr/bin/" + cmd),
            dict(ev("/usr/bin/" + cmd, "x", kind="exec"), id=cmd)]


def run_update_answers(tmp_path, name, events_file, group_vars=None):
    """The update role's own answers task file on localhost; the events come in as host output (a command's
    stdout, from_json), as they do from the kept events.json of a managed host."""
    inv = tmp_path / ("inv-" + name)
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"web1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    if group_vars is not None:
        (inv / "group_vars" / "all" / "apparmor_answers_pending.yml").write_text(group_vars)
    out = tmp_path / ("out-%s.json" % name)
    pending = tmp_path / ("pending-%s.yml" % name)
    play = [{"hosts": "all", "gather_facts": False, "tasks": [
        {"name": "host output", "ansible.builtin.command": {"argv": ["cat", str(events_file)]},
         "register": "host_out", "changed_when": False},
        {"name": "events", "ansible.builtin.set_fact": {"update_events": "{{ host_out.stdout | from_json }}"}},
        {"name": "the role's answers", "ansible.builtin.include_role": {
            "name": "armada.apparmor.update", "tasks_from": "answers.yml"}, "vars": {"apparmor_update_abi": "3.0"}},
        {"name": "pending file", "ansible.builtin.copy": {
            "dest": str(pending), "mode": "0644",
            "content": "{{ update_result | armada.apparmor.pending_answers(abstractions_dir='') }}"}},
        {"name": "out", "ansible.builtin.copy": {"dest": str(out), "mode": "0644", "content": "{{ {'result': "
                                                 "update_result, 'answers': update_answers_count} | to_json }}"}},
    ]}]
    pb = tmp_path / ("play-%s.yml" % name)
    pb.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inv / "hosts.yml"), str(pb)], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path), check=False)
    assert out.exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(out.read_text()), pending.read_text()


def test_pasted_pending_file_runs_no_command_when_the_update_role_reads_it(tmp_path):
    marker = tmp_path / "MARKER"
    events_file = tmp_path / "events.json"
    events_file.write_text(json.dumps(hostile_events(marker)))
    # 1. a pass writes the pending file from hostile host output
    got, text = run_update_answers(tmp_path, "first", events_file)
    assert int(got["answers"]) == 0 and got["result"]["stats"]["pending"] == 3
    assert not marker.exists(), "host output was templated on the controller"
    # the strings are there, as data (comm and id as they came; profile and paths glob-escaped: \\{\\{)
    loaded = load_like_inventory(tmp_path, text)["apparmor_answers_pending"]
    cmd = hostile_events(marker)[0]["comms"][0]
    assert [q["comm"] for q in loaded if q["match"].get("path", "").startswith("/srv/")] == [[cmd]]
    assert templatable_strings(loaded) == []
    # 2. the reviewer answers (ignore the forged-looking ones) and pastes the block into group_vars
    reviewed = text.replace("answer: pending  #", "answer: ignore  #")
    got, _ = run_update_answers(tmp_path, "pasted", events_file, group_vars=reviewed)
    assert not marker.exists(), "a pasted pending file ran a command on the controller"
    assert int(got["answers"]) == 3 and got["result"]["stats"]["ignored"] == 3  # the answers were read and applied
    # positive control: the same block without the !unsafe tags is templated by Ansible - the marker appears
    run_update_answers(tmp_path, "control", events_file, group_vars=reviewed.replace("- !unsafe", "-"))
    assert marker.exists(), "the control did not template: this test could not see an injection"


# ---- measured: the service-like script's log, against aa-logprof ---------------------------------------

def fixture_questions(tmp_path):
    """The lab-recorded log through the denials module (real ansible-playbook; covered events skipped
    against the complain profile the log was recorded with), to_rules and the pending_answers filter."""
    tree = make_tree(tmp_path)
    with open(os.path.join(FIXTURES, "usr.local.bin.armada-agent")) as src:
        (tmp_path / "apparmor.d" / "usr.local.bin.armada-agent").write_text(src.read())
    r = run_tasks(tmp_path, [
        {"armada.apparmor.denials": {"sources": [os.path.join(FIXTURES, "round1.audit.log")], "host": "lab1",
                                     "apparmor_d": tree}},
        {"ansible.builtin.set_fact": {"qs": "{{ r0.events | armada.apparmor.to_rules([]) | armada.apparmor"
                                            ".pending_answers(abstractions_dir='', format='list') }}"}},
    ], name="fixture")
    assert not r[0].get("failed"), r[0].get("msg")
    return r[0]["events"], r[1]["ansible_facts"]["qs"]


def test_the_service_script_asks_fewer_questions_than_aa_logprof_for_a_narrower_profile(tmp_path):
    events, qs = fixture_questions(tmp_path)
    kinds = sorted((q["match"]["kind"], q["match"].get("path") or q["match"].get("capname")) for q in qs)
    assert len(qs) == 21 < AA_LOGPROF_QUESTIONS, kinds
    assert ("file", "/usr/bin/tar") not in kinds and ("exec", "/usr/bin/tar") in kinds
    conf = [q for q in qs if q["match"].get("path") == "/etc/armada-agent/agent.conf"]
    assert len(conf) == 1 and conf[0]["match"]["mask"] == "rwc", conf
    # answer every question as the aa-logprof run did (allow the exact path, exec ix): nothing stays pending
    answers = [allowed(q, exec_mode="ix") if q["match"]["kind"] == "exec" else allowed(q) for q in qs]
    result = engine.to_rules(events, answers)
    assert result["stats"]["pending"] == 0 and result["errors"] == []
    rules = result["profiles"][AGENT]["rules"]
    from test_filter_answers import compile_rules
    compile_rules(tmp_path, [r["text"] for r in rules])
    # same or narrower: every rule written is allowed by the profile aa-logprof wrote from the same log, but
    # the two execs tar makes (sh -c gzip) that aa-logprof never asked about (without them tar -z fails)
    aa_dir = tmp_path / "aa.d"
    make_tree(aa_dir)
    with open(os.path.join(FIXTURES, "aa-logprof-round1.profile")) as src:
        (aa_dir / "apparmor.d" / "usr.local.bin.armada-agent").write_text(src.read())
    index = coverage.ProfileIndex.load(str(aa_dir / "apparmor.d"))
    wider = []
    for rule in rules:
        if rule["kind"] == "capability":
            probe = {"kind": "capability", "capname": rule["capabilities"][0]}
        elif rule.get("exec_mode"):
            probe = {"kind": "exec", "path": rule["path"]}
        else:
            probe = {"kind": "file", "path": rule["path"], "owner": rule["owner"],
                     "mask": {"requested": "".join(sorted(rule["perms"])), "denied": ""}}
        if index.decision(dict(probe, profile=AGENT)) != "allow":
            wider.append(rule["text"])
    assert wider == ["/usr/bin/dash mrix,", "/usr/bin/gzip mrix,"], wider
