"""status / profile / rules / backup on a real AppArmor kernel (the qemu lab), through ssh + become.

Expectations come from AppArmor's documented behaviour: a profile with flags=(complain) is listed as
'NAME (complain)' in /sys/kernel/security/apparmor/profiles, removing a profile takes it off that list,
and the kernel keeps the binary policy it was given until the next load (so editing a file without
reloading is content drift).
"""
import pytest

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def run(lab):
    host = (lab.groups.get("rest") or sorted(lab.hosts))[-1]
    return lab.playbook("modules_lab.yml", limit=[host])[host]


def test_profile_mode_reaches_the_kernel(run):
    assert run["created"]["changed"] and run["created"]["mode"] == "complain"
    assert [k for k in run["created"]["kernel"] if k["action"] == "load" and not k["skipped"]], run["created"]
    assert run["k_created"] == ["armada-modtest (complain)"]
    assert not run["again"]["changed"], run["again"]
    assert run["enforce_check"]["changed"] and run["k_check"] == ["armada-modtest (complain)"]
    assert run["enforced"]["changed"] and run["k_enforced"] == ["armada-modtest (enforce)"]
    assert run["created"]["snapshot_id"] and run["enforced"]["snapshot_id"]


def test_rules_reload_and_status_drift(run):
    added = sorted(a["text"] for a in run["ruled"]["added"])
    assert added == ["/var/lib/armada-modtest/** rw,", "capability chown,", "deny /etc/shadow r,"]
    assert [k for k in run["ruled"]["kernel"] if not k["skipped"]]
    clean = run["st_clean"]
    assert clean["kernel"]["enabled"] and clean["drift_checked"], clean["drift_reason"]
    prof = clean["files"]["armada-modtest"]["profiles"]["armada-modtest"]
    assert prof["mode"] == "enforce" and prof["loaded_matches_file"] is True
    assert not [d for d in clean["drift"]["content"] if d["profile"] == "armada-modtest"]
    drift = run["st_drift"]
    assert [d["profile"] for d in drift["drift"]["content"] if d["profile"].startswith("armada-mod")] == \
        ["armada-modtest"]
    assert drift["drifted"]


def test_invalid_profile_is_refused_with_parser_message(run):
    assert run["invalid"]["failed"] and "AppArmor parser error" in run["invalid"]["parser_message"]


def test_disabled_mode_unloads(run):
    assert run["added"]["changed"] and [k for k in run["added"]["kernel"] if not k["skipped"]]
    assert run["disabled"]["changed"] and run["disabled"]["mode"] == "disabled"
    assert [k["action"] for k in run["disabled"]["kernel"]] == ["unload"]
    assert run["k_before_restore"] == ["armada-modtest (enforce)"], "a disabled profile is not loaded"


def test_restore_is_byte_identical_and_unloads_added_profile(run):
    restored = run["restored"]
    assert restored["changed"] and restored["verified"], restored
    assert sorted(restored["plan"]["remove"]) == ["armada-modnew", "armada-modtest", "disable/armada-modnew"]
    assert run["k_restored"] == [], "profiles added after the snapshot are unloaded"
    assert run["tree_after"] == run["tree_before"]
    assert restored.get("mode_mismatch") == []
