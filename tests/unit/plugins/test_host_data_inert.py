"""Host output is never templated again on the controller (issue 12 item 2, second half).

The roles keep host output in facts and feed it through the same constructs everywhere (roles/update,
enforce, learn): a module or command result decoded with ``b64decode | from_json`` or split with
``regex_replace``/``zip``/``dict`` into a ``set_fact``; a ``lookup('ansible.builtin.template', X.j2) |
from_json`` that builds a plan from those facts (fetch_plan.j2, record.j2, plan.j2...); that plan used in a
later task's arguments (``copy: content: "{{ item.content }}"``, ``debug: msg``). This runs each construct on
a string holding ``{{ lookup('pipe', 'touch MARKER') }}`` that came out of a command, with a real
ansible-playbook, and checks the marker never appears and the text reaches the controller file literally.
The positive control puts the same string in a trusted place (a play var) and sees the marker appear.
"""
import base64
import json
import os
import subprocess
import sys

import yaml
from aa_playbook import ANSIBLE_PLAYBOOK, COLL_ROOT

# the shape of roles/update/templates/fetch_plan.j2: a plan built from every host's texts, as JSON
PLAN_J2 = """{%- set out = [] -%}
{%- for name, text in update_profile_texts.items() -%}
{%-   set _ = out.append({'name': name, 'content': text, 'hosts': [inventory_hostname]}) -%}
{%- endfor -%}
{{ out | to_json }}"""


def run(tmp_path, name):
    marker = tmp_path / ("MARKER-" + name)
    evil = "{{ lookup('pipe', 'touch %s') }}" % marker
    state = base64.b64encode(json.dumps([{"path": evil, "profile": evil}]).encode()).decode()
    text = base64.b64encode(("profile x {\n  # %s\n}\n" % evil).encode()).decode()
    (tmp_path / "host_output.txt").write_text("events\t%s\nusr.bin.x\t%s\n" % (state, text))
    (tmp_path / "plan.j2").write_text(PLAN_J2)
    out_dir = tmp_path / ("out-" + name)
    out_dir.mkdir()
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "host output (a command, as the roles' shell reads)", "ansible.builtin.command": {
            "argv": ["cat", str(tmp_path / "host_output.txt")]}, "register": "read", "changed_when": False},
        {"name": "split and decode it into facts", "ansible.builtin.set_fact": {
            "kv": "{{ dict(read.stdout_lines | map('regex_replace', '\\t.*$', '')"
                  " | zip(read.stdout_lines | map('regex_replace', '^[^\\t]*\\t', ''))) }}"}},
        {"name": "decoded facts", "ansible.builtin.set_fact": {
            "stored": "{{ kv.events | b64decode | from_json }}",
            "update_profile_texts": "{{ {'usr.bin.x': kv['usr.bin.x'] | b64decode} }}"}},
        {"name": "a plan from a template lookup", "ansible.builtin.set_fact": {
            "plan": "{{ lookup('ansible.builtin.template', '%s') | from_json }}" % (tmp_path / "plan.j2")}},
        {"name": "the plan in a later task's arguments", "ansible.builtin.copy": {
            "content": "{{ item.content }}", "dest": "%s/{{ item.name }}" % out_dir, "mode": "0644"},
         "loop": "{{ plan }}"},
        {"name": "facts in messages", "ansible.builtin.debug": {"msg": "{{ stored[0].path }} {{ stored }}"}},
    ]}]
    pb = tmp_path / ("play-%s.yml" % name)
    pb.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
                           "ansible_python_interpreter=%s" % sys.executable, str(pb)],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    return proc, marker, evil, out_dir


def test_host_output_through_set_fact_template_lookup_and_task_args_runs_nothing(tmp_path):
    proc, marker, evil, out_dir = run(tmp_path, "host")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not marker.exists(), "host output was templated on the controller"
    assert (out_dir / "usr.bin.x").read_text() == "profile x {\n  # %s\n}\n" % evil  # written literally


def test_control_the_same_string_from_a_trusted_place_is_templated(tmp_path):
    marker = tmp_path / "MARKER-control"
    pb = tmp_path / "play-control.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                   "vars": {"trusted": "{{ lookup('pipe', 'touch %s') }}" % marker},
                                   "tasks": [{"ansible.builtin.debug": {"msg": "{{ trusted }}"}}]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
                    "ansible_python_interpreter=%s" % sys.executable, str(pb)], capture_output=True, env=env,
                   cwd=str(tmp_path), check=False)
    assert marker.exists(), "the control did not template: this test could not see an injection"
