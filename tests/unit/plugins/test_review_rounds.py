"""Review rounds add up (issue 16): run, review, paste, run - three times, through ansible-playbook.

Two fixture hosts (local connection) run the update role's own task files - answers.yml (every
``apparmor_answers*`` variable), converge.yml (the kept events written to each host's state directory) and
report.yml (the pending file) - with the events coming in as host output. Between runs the "reviewer" edits
the newest pending file and saves it in group_vars/all/ under its own name, as the README says. Checked:

- each round's file and variable carry the pass id, so round 1's answers survive round 2's paste;
- the events an answer settled leave the hosts' events.json and stop coming back as pending;
- a question two rounds answer differently fails the pass, naming both rounds; nothing is written.
"""
import glob
import json
import os
import subprocess
import sys

import yaml
from aa_playbook import ANSIBLE_PLAYBOOK, COLL_ROOT, load_like_inventory

from ansible_collections.armada.apparmor.plugins.module_utils import events as events_model

AGENT = "/usr/local/bin/armada-agent"
HOSTS = ("web1", "web2")


def host_event(host, path, mask="r"):
    ev = {"kind": "file", "profile": AGENT, "path": path, "owner": False, "host": host, "count": 1,
          "mask": {"requested": mask, "denied": ""}, "operations": ["open"], "modes": ["ALLOWED"],
          "comms": ["agent"], "first_seen": 10.0, "last_seen": 20.0, "sources": ["auditd:/var/log/audit/audit.log"]}
    ev["id"] = events_model.event_id(events_model.identity(ev))
    return ev


class Fleet:
    """A controller working directory with an inventory of two local hosts, each with its state directory."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.inv = tmp_path / "inventory"
        self.group_vars = self.inv / "group_vars" / "all"
        self.group_vars.mkdir(parents=True)
        hosts = {}
        for h in HOSTS:
            (tmp_path / ("state-" + h)).mkdir()
            hosts[h] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                        "apparmor_update_state_dir": str(tmp_path / ("state-" + h))}
        (self.inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
        self.runs = 0

    def kept(self, host):
        path = self.tmp / ("state-" + host) / "events.json"
        return sorted(e["path"] for e in json.loads(path.read_text())) if path.exists() else []

    def run(self, new_paths, pass_id):
        """One pass: every host reports ``new_paths`` as new events; returns (rc, output, result, pending file)."""
        self.runs += 1
        for h in HOSTS:
            (self.tmp / ("new-%s.json" % h)).write_text(json.dumps([host_event(h, p) for p in new_paths]))
        out = self.tmp / ("out-%d.json" % self.runs)
        state = "{{ apparmor_update_state_dir }}/events.json"
        play = [{"hosts": "all", "gather_facts": False, "tasks": [
            # what main.yml does before answers.yml: kept events from the host's state, plus the new ones
            {"name": "kept events (host output)", "ansible.builtin.shell": "cat %s 2>/dev/null || echo '[]'" % state,
             "register": "kept_out", "changed_when": False},
            {"name": "new events (host output)",
             "ansible.builtin.command": {"argv": ["cat", str(self.tmp / "new-{{ inventory_hostname }}.json")]},
             "register": "new_out", "changed_when": False},
            {"name": "events as main.yml joins them", "ansible.builtin.set_fact": {
                "update_events": "{{ stored + (new | rejectattr('id', 'in', stored | map(attribute='id') | list)"
                                 " | list) }}",
                "update_new_count": "{{ (new | rejectattr('id', 'in', stored | map(attribute='id') | list) | list)"
                                    " | length }}",
                "update_host_files": {AGENT: "/etc/apparmor.d/usr.local.bin.armada-agent"},
                "update_tracked": [AGENT], "update_record_old": {}, "update_rules": {"results": []},
                "update_fetch_path": "", "update_pending_path": str(self.tmp / "apparmor-pending.yml")},
             "vars": {"stored": "{{ kept_out.stdout | from_json }}", "new": "{{ new_out.stdout | from_json }}"}},
            {"name": "answers", "ansible.builtin.include_role": {"name": "armada.apparmor.update",
                                                                 "tasks_from": "answers.yml"}},
            {"name": "converge", "ansible.builtin.include_role": {"name": "armada.apparmor.update",
                                                                  "tasks_from": "converge.yml"}},
            {"name": "report", "ansible.builtin.include_role": {"name": "armada.apparmor.update",
                                                                "tasks_from": "report.yml"}},
            {"name": "out", "ansible.builtin.copy": {"dest": str(out), "mode": "0644", "content": "{{ {'result': "
                                                     "update_result, 'answers': update_answers_count} | to_json }}"},
             "run_once": True},
        ]}]
        pb = self.tmp / ("play-%d.yml" % self.runs)
        pb.write_text(yaml.safe_dump(play))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
        before = dict((f, os.stat(f).st_mtime_ns) for f in glob.glob(str(self.tmp / "apparmor-pending*.yml")))
        proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(self.inv / "hosts.yml"), str(pb),
                               "-e", "apparmor_update_abi=3.0 apparmor_update_abstractions_dir=''",
                               "-e", "apparmor_update_pass_id=" + pass_id],
                              capture_output=True, text=True, env=env, cwd=str(self.tmp), check=False)
        written = sorted(f for f in glob.glob(str(self.tmp / "apparmor-pending*.yml"))
                         if before.get(f) != os.stat(f).st_mtime_ns)
        result = json.loads(out.read_text()) if out.exists() else None
        return proc.returncode, proc.stdout + proc.stderr, result, written

    def review(self, pending_file, answers):
        """Edit the pending file as text ({path: answer}) and save it in group_vars/all/ under its own name."""
        with open(pending_file) as fh:
            text = fh.read()
        var, = load_like_inventory(self.tmp, text).keys()
        entries = load_like_inventory(self.tmp, text)[var]
        blocks = text.split("\n  - !unsafe\n")
        for path, answer in answers.items():
            hit = [i for i, b in enumerate(blocks) if "path: %s," % path in b or "path: %s}" % path in b]
            assert len(hit) == 1, (path, text)
            blocks[hit[0]] = blocks[hit[0]].replace("answer: pending  #", "answer: %s  #" % answer)
        (self.group_vars / os.path.basename(pending_file)).write_text("\n  - !unsafe\n".join(blocks))
        return var, entries


def pending_paths(entries):
    return sorted(e["match"]["path"] for e in entries)


def test_three_review_rounds_add_up_and_settled_events_stop_coming_back(tmp_path):
    fleet = Fleet(tmp_path)
    # round 1: two accesses, nothing answered yet
    rc, log, got, written = fleet.run(["/etc/agent/a.conf", "/etc/agent/b.conf"], "20261206T100000Z")
    assert rc == 0, log[-3000:]
    assert len(written) == 1
    var1, entries = fleet.review(written[0], {"/etc/agent/a.conf": "allow"})  # b stays pending
    assert pending_paths(entries) == ["/etc/agent/a.conf", "/etc/agent/b.conf"]

    # round 2: round 1's answer applies; a new access appears; a.conf is settled and leaves the kept events
    rc, log, got, written = fleet.run(["/etc/agent/c.conf"], "20261206T110000Z")
    assert rc == 0, log[-3000:]
    prof = got["result"]["profiles"][AGENT]
    assert [r["text"] for r in prof["rules"]] == ["/etc/agent/a.conf r,"]
    assert sorted(p["path"] for p in prof["pending"]) == ["/etc/agent/b.conf", "/etc/agent/c.conf"]
    for h in HOSTS:
        assert fleet.kept(h) == ["/etc/agent/b.conf", "/etc/agent/c.conf"], h
    var2, entries = fleet.review(written[0], {"/etc/agent/b.conf": "deny", "/etc/agent/c.conf": "allow"})
    assert pending_paths(entries) == ["/etc/agent/b.conf", "/etc/agent/c.conf"]  # a.conf asked no more

    # round 3: both rounds' answers are read (round 1's b.conf placeholder defers to round 2's deny)
    rc, log, got, written = fleet.run(["/etc/agent/d.conf"], "20261206T120000Z")
    assert rc == 0, log[-3000:]
    assert int(got["answers"]) == 4  # a allow, b pending (round 1), b deny, c allow (round 2)
    prof = got["result"]["profiles"][AGENT]
    assert [r["text"] for r in prof["rules"]] == ["/etc/agent/c.conf r,"]
    assert [r["text"] for r in prof["deny"]] == ["deny /etc/agent/b.conf r,"]
    assert [p["path"] for p in prof["pending"]] == ["/etc/agent/d.conf"]
    var3, entries = fleet.review(written[0], {})
    assert pending_paths(entries) == ["/etc/agent/d.conf"]
    for h in HOSTS:
        assert fleet.kept(h) == ["/etc/agent/d.conf"], h
    # each round's file and variable carry its pass id: that is what lets them sit side by side
    assert (var1, var2, var3) == ("apparmor_answers_pending_20261206T100000Z",
                                  "apparmor_answers_pending_20261206T110000Z",
                                  "apparmor_answers_pending_20261206T120000Z")
    assert [os.path.basename(w) for w in written] == ["apparmor-pending-20261206T120000Z.yml"]
    assert sorted(os.listdir(fleet.group_vars)) == ["apparmor-pending-20261206T100000Z.yml",
                                                    "apparmor-pending-20261206T110000Z.yml",
                                                    "apparmor-pending-20261206T120000Z.yml"]


def test_a_question_two_rounds_answer_differently_fails_naming_both(tmp_path):
    fleet = Fleet(tmp_path)
    rc, log, _, written = fleet.run(["/etc/agent/a.conf"], "20261206T100000Z")
    assert rc == 0, log[-3000:]
    fleet.review(written[0], {"/etc/agent/a.conf": "allow"})
    # the same question pasted again in a later round, answered deny
    with open(written[0]) as fh:
        first = fh.read()
    later = first.replace("answer: pending  #", "answer: deny  #").replace(
        "apparmor_answers_pending_20261206T100000Z", "apparmor_answers_pending_20261206T110000Z")
    (fleet.group_vars / "apparmor-pending-20261206T110000Z.yml").write_text(later)
    kept_before = fleet.kept("web1")
    rc, log, got, written = fleet.run([], "20261206T120000Z")
    assert rc != 0 and got is None and written == []
    assert "apparmor_answers_pending_20261206T100000Z and apparmor_answers_pending_20261206T110000Z" in log, log[-3000:]
    assert "/etc/agent/a.conf" in log and "answer: pending" in log
    assert fleet.kept("web1") == kept_before == ["/etc/agent/a.conf"]  # nothing lost
