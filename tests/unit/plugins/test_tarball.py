"""The built collection tarball installs into an empty collections path and works by its full name.

This is what a user does after `ansible-galaxy collection install`: no link tree, no checkout on the
path. The playbook run is `armada.apparmor.status` against localhost, which exercises a module, its
module_utils imports (packed by Ansiballz from the installed copy) and a playbook by FQCN.
"""
import os
import re
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)


def run(cmd, env, cwd=None):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tarball")
    env = dict(os.environ)
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp / "collections")
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "false"
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp / "ansible-tmp")
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp), ROOT], env)
    tarballs = [p for p in os.listdir(str(tmp)) if p.endswith(".tar.gz")]
    assert tarballs == ["armada-apparmor-0.1.0.tar.gz"]
    tar_path = tmp / tarballs[0]
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", str(tmp / "collections"),
         str(tar_path)], env)
    return tmp, env, tar_path


def test_tarball_holds_the_collection_and_nothing_local(installed):
    _, _, tar_path = installed
    with tarfile.open(str(tar_path)) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names  # replaced by MANIFEST.json in a built collection
    assert "MANIFEST.json" in names
    assert any(n.startswith("plugins/modules/") for n in names)
    assert not any(n.startswith((".venv", "build/", ".git/")) for n in names)
    # what runs and what a user reads ships; development-only files (galaxy.yml build_ignore) do not
    for shipped in ("COPYING", "CHANGELOG.rst", "changelogs/changelog.yaml", "meta/runtime.yml",
                    "meta/execution-environment.yml", "docs/awx/execution-environment.yml", "roles/learn/README.md",
                    "playbooks/profile_fleet.yml", "tests/sanity/ignore-2.19.txt"):
        assert shipped in names, shipped
    local = [n for n in names if n.startswith(("scripts/", "molecule/", "changelogs/fragments/", ".ci"))
             or (n.startswith("tests/") and n.split("/")[1] not in ("", "sanity"))
             or n in ("Makefile", "pyproject.toml", ".ansible-lint", ".yamllint") or n.startswith("requirements")]
    assert local == []


def test_installed_playbook_runs_by_fqcn(installed):
    tmp, env, _ = installed
    env = dict(env)
    env["ANSIBLE_NOCOLOR"] = "1"
    proc = run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                "-e", "ansible_python_interpreter=%s" % sys.executable, "armada.apparmor.status"], env, cwd=str(tmp))
    recap = re.search(r"^localhost\s+:\s+ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout, re.M)
    assert recap, proc.stdout
    ok, unreachable, failed = (int(g) for g in recap.groups())
    assert (unreachable, failed) == (0, 0)
    assert ok >= 1
    # The status module ran from the installed copy: its task is in the output.
    assert "Read AppArmor state" in proc.stdout
