"""A host whose profile_fleet run fails does not keep the event rate limits the learn role lifted.

The learn role lifts the limits that drop events (here: the printk rate limit of a host without auditd) and
``profile_fleet`` puts them back at the end. The fault is real: an approved answer includes a site
abstraction this host does not have, so the host's own ``apparmor_parser`` rejects the update. Before the
fix the restore was the play's last task, which a failed host never reaches: the host kept
``printk_ratelimit=0`` until the next run.
"""
import json
import os
import shutil
import subprocess

import pytest
import yaml

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "journey_callback")

NAME = "armada-ffail"
PROGRAM = "/usr/local/bin/armada-ffail"
DATA = "/etc/armada-ffail"
STATE = "/var/lib/armada-ffail"
BACKUPS = "/var/backups/armada-ffail"
LIMIT = 7  # a value of our own: neither the kernel's default (5) nor the lifted one (0)
SAVED = "/run/armada-ffail.printk"

SETUP = r"""
set -e
[ -f {saved} ] || cat /proc/sys/kernel/printk_ratelimit > {saved}
sysctl -q -w kernel.printk_ratelimit={limit}
rm -rf {state} {backups} {data} /etc/apparmor.d/{name} /etc/apparmor.d/local/{name}
install -m 0755 /usr/bin/cat {program}
mkdir -p {data} && echo a > {data}/a.txt
""".format(saved=SAVED, limit=LIMIT, state=STATE, backups=BACKUPS, data=DATA, name=NAME, program=PROGRAM)

TEARDOWN = r"""
apparmor_parser -R /etc/apparmor.d/{name} 2>/dev/null
rm -rf {state} {backups} {data} {program} /etc/apparmor.d/{name} /etc/apparmor.d/local/{name}
find /var/cache/apparmor -name {name} -delete 2>/dev/null
if [ -f {saved} ]; then sysctl -q -w kernel.printk_ratelimit=$(cat {saved}) && rm -f {saved}; fi
true
""".format(saved=SAVED, state=STATE, backups=BACKUPS, data=DATA, name=NAME, program=PROGRAM)


def test_failed_update_puts_the_lifted_limits_back(lab, tmp_path):
    host = lab.first("kernlog")  # no auditd: the learn role lifts kernel.printk_ratelimit
    res = lab.ssh(host, SETUP)
    assert res.returncode == 0, res.stdout + res.stderr
    try:
        inv = tmp_path / "inventory"
        (inv / "group_vars" / "all").mkdir(parents=True)
        shutil.copy(lab.inventory, inv / "hosts.yml")
        answers = [{"profile": NAME, "match": {"kind": "file", "path": DATA + "/*.txt"}, "answer": "allow",
                    "include": "abstractions/armada-ffail-site"}]
        (inv / "group_vars" / "all" / "ffail.yml").write_text(yaml.safe_dump({
            "apparmor_programs": [{"path": PROGRAM, "profile": NAME,
                                   "exercise": "%s %s/a.txt >/dev/null" % (PROGRAM, DATA)}],
            "apparmor_state_dir": STATE, "apparmor_backup_dir": BACKUPS, "apparmor_answers_ffail": answers}))
        results = tmp_path / "results.json"
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
                   ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false",
                   ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="journey_results",
                   ARMADA_JOURNEY_RESULTS=str(results), ANSIBLE_NOCOLOR="1", PWD=str(tmp_path))
        run = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inv), "--limit", host, "armada.apparmor.profile_fleet"],
                             cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=1800, check=False)
        log = run.stdout[-5000:] + run.stderr[-2000:]
        assert run.returncode == 2, log  # the host failed
        tasks = [t for t in json.loads(results.read_text())["tasks"] if t["host"] == host]

        lifted = [t for t in tasks if t["task"].endswith("Lift the limits that drop events (printk rate limit "
                                                         "without auditd; auditd's rate limit and backlog)")]
        assert lifted and lifted[0]["result"].get("changed"), "the learn role did not lift the limit:\n" + log
        failed = [t for t in tasks if t["result"]["_status"] == "failed"]
        assert failed and "armada-ffail-site" in json.dumps(failed[0]["result"]), log  # the parser's reason

        restored = [t for t in tasks if t["task"].endswith("Restore the limits and forget them")]
        assert restored and restored[0]["result"]["_status"] == "ok", log
        now = lab.ssh(host, "cat /proc/sys/kernel/printk_ratelimit; cat %s/learn.json" % STATE)
        value, learn = now.stdout.split("\n", 1)
        assert int(value) == LIMIT, "printk_ratelimit left at %s after the failed run" % value
        assert json.loads(learn)["limits"] is None  # forgotten: the next run saves the originals again
    finally:
        lab.ssh(host, TEARDOWN)
