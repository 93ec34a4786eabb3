"""Variable names (docs/variables.md): every role option is ``apparmor_<role>_<option>``, every role defines in
its defaults exactly the options its argument spec documents, and no name of the renames table is still read
by a role, a playbook or the example inventory (the old names were dropped without aliases).
"""
import glob
import os
import re

import pytest
import yaml
from aa_playbook import ROOT

ROLES = sorted(os.listdir(os.path.join(ROOT, "roles")))
# module options that share a word with a renamed role option (armada.apparmor.backup / profile / rules):
# `backup_dir: "{{ apparmor_update_backup_dir }}"` under a module call is the module's option, not a variable
MODULE_OPTIONS = ("backup_dir", "backup_keep", "backup_max_age_days")


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def spec_options(role):
    specs = load(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml"))["argument_specs"]
    return {name for entry in specs.values() for name in (entry.get("options") or {})}


def renames():
    """The old -> new table of docs/variables.md."""
    with open(os.path.join(ROOT, "docs", "variables.md"), encoding="utf-8") as handle:
        rows = re.findall(r"^\| `([a-z_]+)` \| `([a-z_]+)` \|$", handle.read(), re.M)
    assert len(rows) > 90, "the renames table of docs/variables.md was not found"
    return dict(rows)


@pytest.mark.parametrize("role", ROLES)
def test_role_options_are_apparmor_role_prefixed(role):
    options = spec_options(role)
    assert options
    assert sorted(o for o in options if not o.startswith("apparmor_%s_" % role)) == []


@pytest.mark.parametrize("role", ROLES)
def test_defaults_define_the_documented_options(role):
    defaults = load(os.path.join(ROOT, "roles", role, "defaults", "main.yml"))
    assert set(defaults) == spec_options(role)


def test_renamed_options_exist_and_old_names_are_gone():
    table = renames()
    every_option = set().union(*(spec_options(r) for r in ROLES))
    assert set(table.values()) - every_option == {"apparmor_profile_fleet_passes"}
    # `passes` (now apparmor_profile_fleet_passes) is also a field of convergence.json the update role writes
    names = sorted((n for n in table if n != "passes"), key=len, reverse=True)
    old = re.compile(r"(?<![\w])(%s)(?![\w])" % "|".join(names))
    files = (glob.glob(os.path.join(ROOT, "roles", "*", "*", "*"))
             + glob.glob(os.path.join(ROOT, "playbooks", "**", "*.yml"), recursive=True))
    found = []
    for path in sorted(f for f in files if os.path.isfile(f)):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                line = re.sub(r"^(\s*)(%s):" % "|".join(MODULE_OPTIONS), r"\1module_option:", line)
                found += ["%s:%d: %s" % (os.path.relpath(path, ROOT), number, m) for m in old.findall(line)]
    assert found == []
    with open(os.path.join(ROOT, "playbooks", "profile_fleet.yml"), encoding="utf-8") as handle:
        assert re.findall(r"\{\{ *(\w*passes)\b", handle.read()) == ["apparmor_profile_fleet_passes"]
