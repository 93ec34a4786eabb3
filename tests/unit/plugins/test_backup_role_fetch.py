"""The backup role's fetch (``apparmor_backup_fetch: true``) through a real ansible-playbook run on this machine
(local connection; the host's /etc/apparmor.d is only read): the archive and manifest land in
``backups/HOST/`` byte-identical; a host whose module output names another file (its ``python3`` replaced by a
wrapper that rewrites the snapshot id to ``../../../planted``) and a symlink in the host's directory fail the
play naming the host and the value, and nothing is written on the controller (issue 12, item 1)."""
import json
import os
import subprocess
import sys

import yaml
from aa_playbook import ANSIBLE_PLAYBOOK, COLL_ROOT

PLAY = [{"hosts": "all", "gather_facts": False, "roles": [{"role": "armada.apparmor.backup"}]}]
LIAR = """#!/bin/sh
# hostile host: the real interpreter, with the snapshot id in every module result rewritten
out=$({python} "$@"); rc=$?
printf '%s\\n' "$out" | sed -E 's#"id": "[0-9]{{8}}T[0-9]{{12}}Z"#"id": "../../../planted"#'
exit $rc
"""


def _files(top):
    return sorted(os.path.relpath(os.path.join(d, f), top) for d, _, fs in os.walk(top) for f in fs)


def _run(tmp_path, name, interpreter=sys.executable):
    work = tmp_path / name
    (work / "ctl").mkdir(parents=True, exist_ok=True)
    inv = {"all": {"hosts": {"web1": {"ansible_connection": "local", "ansible_python_interpreter": interpreter}},
                   "vars": {"apparmor_backup_fetch": True, "apparmor_backup_dir": str(work / "host-backups"),
                            "apparmor_backup_keep": 0}}}
    (work / "hosts.yml").write_text(yaml.safe_dump(inv))
    (work / "play.yml").write_text(json.dumps(PLAY))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", PWD=str(work / "ctl"))
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(work / "hosts.yml"), str(work / "play.yml")],
                          cwd=str(work / "ctl"), env=env, capture_output=True, text=True, check=False)
    return work, proc


def test_fetch_lands_in_the_hosts_directory_and_lies_are_refused(tmp_path):
    work, ok = _run(tmp_path, "clean")
    assert ok.returncode == 0, ok.stdout[-4000:]
    host_files = sorted(os.listdir(str(work / "host-backups")))
    assert len(host_files) == 2 and host_files[0].endswith(".json") and host_files[1].endswith(".tar.gz")
    assert _files(str(work / "ctl")) == ["backups/web1/" + f for f in host_files]
    for f in host_files:
        assert (work / "ctl" / "backups" / "web1" / f).read_bytes() == (work / "host-backups" / f).read_bytes()

    liar = tmp_path / "python3"
    liar.write_text(LIAR.format(python=sys.executable))
    liar.chmod(0o755)
    work, lie = _run(tmp_path, "liar", interpreter=str(liar))
    assert lie.returncode == 2, lie.stdout[-4000:]
    assert "web1: the snapshot file '../../../planted.tar.gz' is refused: it contains '/'; nothing was written" \
        in lie.stdout, lie.stdout[-4000:]
    assert _files(str(work)) == sorted(["hosts.yml", "play.yml"] + ["host-backups/" + f for f in
                                                                   os.listdir(str(work / "host-backups"))])

    # a symlink where the host's directory goes: never written through
    work = tmp_path / "linked"
    (work / "ctl" / "backups").mkdir(parents=True)
    (work / "elsewhere").mkdir()
    os.symlink(str(work / "elsewhere"), str(work / "ctl" / "backups" / "web1"))
    work, linked = _run(tmp_path, "linked")
    assert linked.returncode == 2, linked.stdout[-4000:]
    assert "web1: %s is a symlink (to %r); the controller never writes through a symlink" % (
        work / "ctl" / "backups" / "web1", str(work / "elsewhere")) in linked.stdout, linked.stdout[-4000:]
    assert os.listdir(str(work / "elsewhere")) == []
