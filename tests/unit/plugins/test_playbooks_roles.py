"""The controller side of the playbooks and roles under the ansible-core running the tests.

Every playbook passes ``ansible-playbook --syntax-check`` by its FQCN, every role's argument spec renders
with ``ansible-doc -t role``, and ansible-core enforces a spec before a role's first task. Run under each
supported ansible-core by ``scripts/core-matrix.sh``.
"""
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from aa_playbook import ANSIBLE_PLAYBOOK, COLL_ROOT, ROOT

BIN = os.path.dirname(sys.executable)
PLAYBOOKS = sorted(f[:-4] for f in os.listdir(os.path.join(ROOT, "playbooks")) if f.endswith(".yml"))
ROLES = sorted(os.listdir(os.path.join(ROOT, "roles")))
ENV = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
           ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
           PYTHONWARNINGS="ignore")


def test_the_lists_are_complete():
    assert PLAYBOOKS == ["backup", "deploy", "enforce", "profile_fleet", "report", "restore", "status"]
    assert ROLES == ["backup", "deploy", "enforce", "learn", "report", "restore", "update"]


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_playbook_syntax(name, tmp_path):
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "--syntax-check", "-i", "localhost,", "armada.apparmor.%s" % name],
                          capture_output=True, text=True, env=ENV, cwd=str(tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbook: " in proc.stdout


def test_role_argument_specs_render():
    proc = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", "role", "-j"]
                          + ["armada.apparmor.%s" % r for r in ROLES],
                          capture_output=True, text=True, env=ENV, check=False)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == ["armada.apparmor.%s" % r for r in ROLES]
    for name, doc in docs.items():
        main = doc["entry_points"]["main"]
        assert main["short_description"], name
        assert main["options"], name
        for opt, spec in main["options"].items():
            assert spec.get("description"), (name, opt)


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_names_the_options_of_its_argument_spec(role):
    """The README's variables table, meta/argument_specs.yml and defaults/main.yml are written by hand:
    they name the same variables (a renamed or new option missing from one of them fails here)."""
    with open(os.path.join(ROOT, "roles", role, "README.md")) as handle:
        table = set(re.findall(r"^\| `([a-z][a-z0-9_]*)` \|", handle.read(), re.M))
    with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    options = set().union(*(set(entry.get("options") or {}) for entry in specs.values()))
    with open(os.path.join(ROOT, "roles", role, "defaults", "main.yml")) as handle:
        defaults = set(yaml.safe_load(handle) or {})
    assert options, role
    assert table == options, ("README only", sorted(table - options), "argument spec only", sorted(options - table))
    assert defaults <= options, ("defaults without an argument spec", sorted(defaults - options))


def test_role_argument_spec_is_enforced(tmp_path):
    """A wrong type stops the role before its first task (nothing on the host is touched)."""
    play = [{"hosts": "localhost", "gather_facts": False, "roles": [
        {"role": "armada.apparmor.backup", "apparmor_backup_keep": "many",
         "apparmor_backup_dir": str(tmp_path / "b")}]}]
    pb = tmp_path / "play.yml"
    pb.write_text(json.dumps(play))
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
                           "ansible_python_interpreter=%s" % sys.executable, str(pb)],
                          capture_output=True, text=True, env=ENV, cwd=str(tmp_path), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Validating arguments against arg spec" in out and "apparmor_backup_keep" in out, out
    assert "Snapshot the AppArmor policy" not in out
    assert not (tmp_path / "b").exists()


def doc_plays():
    """(file, index, plays) of every ```yaml block that is a playbook in the role READMEs and docs/scale.md."""
    files = [os.path.join(ROOT, "roles", r, "README.md") for r in ROLES] + [os.path.join(ROOT, "docs", "scale.md")]
    found = []
    for path in files:
        with open(path) as handle:
            blocks = re.findall(r"^```yaml\n(.*?)^```", handle.read(), re.M | re.S)
        for i, block in enumerate(blocks):
            data = yaml.safe_load(block)
            if isinstance(data, list) and all(isinstance(p, dict) and "hosts" in p for p in data):
                found.append((os.path.relpath(path, ROOT), i, data))
    return found


DOC_PLAYS = doc_plays()


def test_every_role_readme_has_an_example_playbook():
    assert {f for f, _, _ in DOC_PLAYS} >= {"roles/%s/README.md" % r for r in ROLES}


@pytest.mark.parametrize("path,index,plays", DOC_PLAYS, ids=["%s#%d" % (f, i) for f, i, _ in DOC_PLAYS])
def test_documented_playbook(path, index, plays, tmp_path):
    """Each example passes --syntax-check, and the variables it gives a role are options of that role."""
    if any("awx.awx" in json.dumps(p) for p in plays):
        pytest.skip("needs the awx.awx collection and an AWX server, not installed here")
    for play in plays:
        for entry in play.get("roles", []):
            role = entry["role"].rsplit(".", 1)[-1]
            with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")) as handle:
                options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
            assert set(entry.get("vars", {})) <= set(options), (path, role, set(entry["vars"]) - set(options))
    pb = tmp_path / "example.yml"
    pb.write_text(json.dumps(plays))
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "--syntax-check", "-i", "localhost,", str(pb)],
                          capture_output=True, text=True, env=ENV, cwd=str(tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
