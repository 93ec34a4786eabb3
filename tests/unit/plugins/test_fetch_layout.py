"""./profiles/ is the whole result (issue 16): the update role's fetch through ansible-playbook, then deploy's listing.

Two fixture hosts (local connection, each with its own profile directory) run the update role's report.yml:
a package profile's ``local/`` include is fetched too, a host whose copy differs gets it under
``profiles/.per-host/HOST/`` and the deploy role - run on the result - lists only the fleet-wide copies. A
symlink on the way below ``profiles/`` is refused before anything is written.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml
from aa_playbook import ANSIBLE_PLAYBOOK, COLL_ROOT

from ansible_collections.armada.apparmor.plugins.module_utils import fetched
from ansible_collections.armada.apparmor.plugins.module_utils.controller_paths import UnsafeName

A, B = "/usr/bin/a", "/usr/sbin/b"
TEXT = {"a": "/usr/bin/a {\n  /etc/a r,\n}\n", "a2": "/usr/bin/a {\n  /etc/a r,\n  /tmp/x w,\n}\n",
        "b": "/usr/sbin/b {\n  include if exists <local/usr.sbin.b>\n}\n",
        "bl": "/etc/b r,\n", "bl2": "/etc/b r,\n/etc/b2 r,\n"}


def host_tree(tmp_path, host, a, local_b):
    d = tmp_path / host / "apparmor.d"
    (d / "local").mkdir(parents=True)
    (d / "usr.bin.a").write_text(TEXT[a])
    (d / "usr.sbin.b").write_text(TEXT["b"])
    (d / "local" / "usr.sbin.b").write_text(TEXT[local_b])
    return {A: str(d / "usr.bin.a"), B: str(d / "usr.sbin.b")}


def run(tmp_path, name, tasks, extra=()):
    hosts = {}
    for h, a, lb in (("web1", "a", "bl"), ("web2", "a2", "bl2")):
        hosts[h] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "fixture_files": host_tree(tmp_path / name, h, a, lb)}
    inv = tmp_path / ("%s-hosts.yml" % name)
    inv.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    pb = tmp_path / ("%s.yml" % name)
    pb.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inv), str(pb)] + list(extra), capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), check=False)


def fetch_tasks(work):
    return [
        {"name": "what main.yml sets before report.yml", "ansible.builtin.set_fact": {
            "update_host_files": "{{ fixture_files }}", "update_tracked": [A, B],
            "update_result": {"profiles": {}, "stats": {}}, "update_record": {"version": 1, "profiles": {}},
            "update_answers_count": 0, "update_fetch_path": str(work / "profiles"), "apparmor_update_pending_file": "",
            "update_pending_path": ""}},
        {"name": "report", "ansible.builtin.include_role": {"name": "armada.apparmor.update",
                                                            "tasks_from": "report.yml"}},
    ]


def files(top):
    out = {}
    for root, _dirs, names in os.walk(str(top)):
        for n in names:
            full = os.path.join(root, n)
            with open(full) as fh:
                out[os.path.relpath(full, str(top))] = fh.read()
    return out


def test_local_includes_are_fetched_and_differing_copies_live_where_deploy_never_reads(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    proc = run(tmp_path, "fetch", fetch_tasks(work))
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert files(work / "profiles") == {
        "usr.bin.a": TEXT["a"], "usr.sbin.b": TEXT["b"], "local/usr.sbin.b": TEXT["bl"],  # web1's: fleet-wide
        ".per-host/web2/usr.bin.a": TEXT["a2"], ".per-host/web2/local/usr.sbin.b": TEXT["bl2"]}
    assert "differ from the fleet-wide copy" in proc.stdout

    # the deploy role over that directory (check mode, no snapshot): it lists the fleet-wide copies only
    out = tmp_path / "deploy-items.json"
    deploy = [{"name": "deploy", "block": [{"ansible.builtin.include_role": {"name": "armada.apparmor.deploy"}}],
               "always": [{"ansible.builtin.copy": {"dest": str(out), "content": "{{ deploy_items | to_json }}",
                                                    "mode": "0644"}, "run_once": True, "check_mode": False}]}]
    proc = run(tmp_path, "deploy", deploy, ["--check", "-e", "apparmor_deploy_src_dir=%s apparmor_deploy_backup=false "
                                            "apparmor_deploy_reload=false" % (work / "profiles")])
    assert out.exists(), proc.stdout[-4000:]
    assert json.loads(out.read_text()) == [{"path": "usr.bin.a"}, {"path": "usr.sbin.b"}]


def test_a_symlink_below_the_profiles_directory_is_refused_before_anything_is_written(tmp_path):
    work = tmp_path / "work"
    elsewhere = tmp_path / "elsewhere"
    (work / "profiles").mkdir(parents=True)
    elsewhere.mkdir()
    os.symlink(str(elsewhere), str(work / "profiles" / ".per-host"))
    proc = run(tmp_path, "fetch", fetch_tasks(work))
    assert proc.returncode != 0
    assert "profiles/.per-host is a symlink" in proc.stdout and "never writes through a symlink" in proc.stdout
    assert os.listdir(str(elsewhere)) == [] and os.listdir(str(work / "profiles")) == [".per-host"]


def test_host_lines_are_read_only_under_the_names_asked_for():
    b64 = "L2V0Yy9iIHIsCg=="  # "/etc/b r,\n"
    got = fetched.read_texts(["usr.sbin.b\t" + b64, "local\tusr.sbin.b\t" + b64], ["usr.sbin.b"], "web1")
    assert got == {"profile": {"usr.sbin.b": "/etc/b r,\n"}, "local": {"usr.sbin.b": "/etc/b r,\n"}}
    for line, why in (("../../x\t" + b64, "contains '/'"), ("other\t" + b64, "did not ask for it"),
                      ("local\t.hidden\t" + b64, "starts with '.'"), ("x\ty\t" + b64, "unexpected line"),
                      ("usr.sbin.b\t%%%", "invalid base64"), ("", "unexpected line")):
        with pytest.raises(UnsafeName, match="web1: .*" + why):
            fetched.read_texts([line], ["usr.sbin.b"], "web1")
    with pytest.raises(UnsafeName, match="inventory host name"):
        fetched.layout({"web1": {"profile": {"n": "x"}}, "../web2": {"profile": {"n": "y"}}}, "/tmp/p",
                       order=["web1", "../web2"])
