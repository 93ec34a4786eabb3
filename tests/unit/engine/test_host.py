"""host: securityfs reading, parser calls (real apparmor_parser), drift comparison."""
import hashlib
import os
import shutil

import pytest
from aa_support import PARSER

from ansible_collections.armada.apparmor.plugins.module_utils import host

SYSTEM_D = "/etc/apparmor.d"
TWO = """include <tunables/global>
profile armada-a /usr/bin/armada-a flags=(complain) {
  include <abstractions/base>
  ^hat { /x r, }
  profile child { /y r, }
}
/usr/bin/armada-b {
  /z r,
}
"""


@pytest.fixture
def tree(tmp_path):
    d = tmp_path / "apparmor.d"
    d.mkdir()
    for sub in ("abi", "abstractions", "tunables"):
        shutil.copytree(os.path.join(SYSTEM_D, sub), str(d / sub), symlinks=True)
    (d / "disable").mkdir()
    return d


def test_kernel_state_from_securityfs_tree(tmp_path):
    state = host.kernel_state(str(tmp_path / "nothing"))
    assert state["enabled"] is False and "no AppArmor" in state["reason"]
    (tmp_path / "sfs").mkdir()
    (tmp_path / "sfs" / "profiles").write_text("")
    assert host.kernel_state(str(tmp_path / "sfs"))["enabled"] is True


def test_loaded_profiles_parses_names_with_spaces_and_parens(tmp_path):
    (tmp_path / "profiles").write_text("/usr/bin/man (enforce)\nsnap.x (y) (complain)\nname with space (kill)\n"
                                       "a//b (unconfined)\n\n")
    assert host.loaded_profiles(str(tmp_path)) == {"/usr/bin/man": "enforce", "snap.x (y)": "complain",
                                                   "name with space": "kill", "a//b": "unconfined"}


def test_parser_version_and_abi(tree):
    version = host.parser_version(PARSER)
    assert version and version[0].isdigit()
    assert host.policy_abis(str(tree)) and host.host_abi(str(tree)) == host.policy_abis(str(tree))[-1]
    assert host.host_abi(str(tree / "missing"), "4.1.2") == "4.0"


def test_find_parser_missing(tmp_path):
    with pytest.raises(host.HostError, match="not found"):
        host.find_parser(str(tmp_path / "nope"))


@pytest.mark.parser
def test_validate_and_names(tree):
    (tree / "two").write_text(TWO)
    assert host.validate(str(tree / "two"), PARSER, str(tree)) is None
    assert host.profile_names(str(tree / "two"), PARSER, str(tree)) == [
        "/usr/bin/armada-b", "armada-a", "armada-a//child", "armada-a//hat"]
    # a disable/ link makes the parser skip a file given by path; names still come through stdin
    os.symlink("../two", str(tree / "disable" / "two"))
    assert "armada-a" in host.profile_names(str(tree / "two"), PARSER, str(tree))
    (tree / "bad").write_text("profile bad {\n  include <abstractions/armada-missing>\n}\n")
    msg = host.validate(str(tree / "bad"), PARSER, str(tree))
    assert msg and "armada-missing" in msg and "Cache read/write" not in msg


@pytest.mark.parser
def test_loaded_matches_compares_kernel_blob(tree, tmp_path):
    (tree / "one").write_text("profile armada-one {\n  /x r,\n}\n")
    compiled = host.compiled_policy(str(tree / "one"), PARSER, str(tree))
    assert compiled
    raw = tmp_path / "raw_data"
    raw.write_bytes(compiled)
    assert host.loaded_matches(compiled, {"raw_data": str(raw)}, True) is True
    (tree / "one").write_text("profile armada-one {\n  /x rw,\n}\n")
    changed = host.compiled_policy(str(tree / "one"), PARSER, str(tree))
    assert host.loaded_matches(changed, {"raw_data": str(raw)}, True) is False
    # no raw_data: the exported hash of the loaded blob
    sha = hashlib.sha1(compiled).hexdigest()  # noqa: S324 - the kernel's own choice of hash
    assert host.loaded_matches(compiled, {"raw_sha1": sha}, True) is True
    assert host.loaded_matches(changed, {"raw_sha1": sha}, True) is False
    assert host.loaded_matches(changed, {"raw_sha1": sha}, False) is None  # several blobs: cannot tell
    assert host.loaded_matches(changed, {}, True) is None


def test_kernel_ops_skipped_without_apparmor(tree):
    kernel = host.kernel_state(str(tree / "no-securityfs"))
    res = host.load(str(tree / "x"), PARSER, kernel, str(tree))
    assert res["skipped"] and res["reason"] == kernel["reason"]
    assert host.unload(str(tree / "x"), PARSER, kernel, str(tree))["skipped"]


def test_mode_from_flags():
    assert host.mode_from_flags([]) == "enforce"
    assert host.mode_from_flags(["attach_disconnected", "complain"]) == "complain"
    assert host.mode_from_flags(["audit"]) == "audit"
    assert host.mode_from_flags(["unconfined"]) == "unconfined"
    assert host.kernel_mode_for("audit") == "enforce"


def test_profile_files_applies_skip_rules(tree):
    for name in ("usr.bin.x", "x.dpkg-old", ".hidden", "README", "x~"):
        (tree / name).write_text("")
    assert host.profile_files(str(tree)) == ["usr.bin.x"]


def test_package_owner_from_dpkg(tmp_path):
    if not shutil.which("dpkg") or not os.path.exists("/etc/apparmor.d/usr.bin.man"):
        pytest.skip("needs dpkg and man-db's AppArmor profile (Debian)")
    # Debian's man-db package ships /etc/apparmor.d/usr.bin.man (dpkg -S tells the package)
    assert host.package_owner("/etc/apparmor.d/usr.bin.man") == "man-db"
    (tmp_path / "mine").write_text("")
    assert host.package_owner(str(tmp_path / "mine")) == ""


def _fake_proc(base, procs):
    """A /proc-like tree: pid -> (exe, label or None, which attr file)."""
    for pid, (exe, label, attr) in procs.items():
        d = base / str(pid)
        (d / "attr" / "apparmor").mkdir(parents=True)
        os.symlink(exe, str(d / "exe"))
        if label is not None:
            (d / attr).write_bytes(label.encode() + b"\n")
    (base / "self").mkdir()  # not a pid: ignored
    return str(base)


def test_program_processes_counts_confined_and_unconfined(tmp_path):
    proc = _fake_proc(tmp_path / "proc", {
        10: ("/usr/sbin/app", "/usr/sbin/app (enforce)", "attr/current"),
        11: ("/usr/sbin/app", "/usr/sbin/app (enforce)", "attr/apparmor/current"),
        12: ("/usr/sbin/app (deleted)", "unconfined", "attr/current"),  # replaced binary: still the program
        13: ("/usr/bin/other", "unconfined", "attr/current"),
        14: ("/usr/sbin/app", None, "attr/current"),  # no label (kernel without AppArmor): unconfined
    })
    out = host.program_processes(["/usr/sbin/app", "/usr/bin/absent"], proc)
    assert out["/usr/sbin/app"] == {"confined": 2, "unconfined": 2, "labels": {"/usr/sbin/app (enforce)": 2}}
    assert out["/usr/bin/absent"] == {"confined": 0, "unconfined": 0, "labels": {}}
    assert host.program_processes([], proc) == {}
    assert host.program_processes(["/x"], str(tmp_path / "missing")) == {"/x": {"confined": 0, "unconfined": 0,
                                                                                 "labels": {}}}


def test_program_processes_reads_the_real_proc():
    """This test's own interpreter is a process of its executable: counted once at least, either way."""
    exe = os.path.realpath("/proc/self/exe")
    out = host.program_processes([exe])[exe]
    assert out["confined"] + out["unconfined"] >= 1, out
    assert sum(out["labels"].values()) == out["confined"]


def test_status_reports_file_mtime(tree):
    (tree / "usr.bin.x").write_text("abi <abi/3.0>,\nprofile /usr/bin/x flags=(complain) {\n}\n")
    os.utime(str(tree / "usr.bin.x"), (1700000000, 1700000000))
    st = host.status(apparmor_d=str(tree), securityfs=str(tree / "no-sfs"), check_drift=False)
    assert st["files"]["usr.bin.x"]["mtime"] == 1700000000
    assert st["processes"] == {}


@pytest.mark.parser
def test_profile_names_many_attributes_names_per_file_in_one_run(tree, tmp_path):
    (tree / "two").write_text(TWO)
    (tree / "one").write_text("profile armada-one /usr/bin/armada-one {\n  /x r,\n}\n")
    (tree / "bad").write_text("profile armada-bad {\n  include <abstractions/armada-missing>\n}\n")
    (tree / "last").write_text("profile armada-last {\n}\n")
    paths = [str(tree / n) for n in ("two", "bad", "one", "last")]
    # a wrapper that logs each start of the real parser
    calls = tmp_path / "calls"
    wrapper = tmp_path / "parser"
    wrapper.write_text('#!/bin/sh\necho "$1" >> %s\nexec %s "$@"\n' % (calls, PARSER))
    wrapper.chmod(0o755)
    got = host.profile_names_many(paths, str(wrapper), str(tree))
    assert calls.read_text().splitlines() == ["-N"]
    assert got == {str(tree / "two"): ["/usr/bin/armada-b", "armada-a", "armada-a//child", "armada-a//hat"],
                   str(tree / "one"): ["armada-one"], str(tree / "last"): ["armada-last"]}
    # the broken file is left out: asked alone, it raises with its own parse error
    with pytest.raises(host.HostError, match="armada-missing"):
        host.profile_names(str(tree / "bad"), PARSER, str(tree))
    # chunks: one run per CHUNK files, same answer
    calls.write_text("")
    assert host.profile_names_many(paths, str(wrapper), str(tree), chunk=3) == got
    assert len(calls.read_text().splitlines()) == 2


@pytest.mark.parser
def test_status_asks_the_parser_for_names_once_not_per_file(tree, tmp_path):
    for i in range(6):
        (tree / ("p%d" % i)).write_text("profile armada-p%d /usr/bin/armada-p%d flags=(complain) {\n}\n" % (i, i))
    (tree / "off").write_text("profile armada-off {\n}\n")
    os.symlink("../off", str(tree / "disable" / "off"))
    calls = tmp_path / "calls"
    wrapper = tmp_path / "parser"
    wrapper.write_text('#!/bin/sh\necho "$1" >> %s\nexec %s "$@"\n' % (calls, PARSER))
    wrapper.chmod(0o755)
    res = host.status(str(tree), str(tmp_path / "no-securityfs"), str(wrapper), check_drift=False)
    assert {n: e["profiles"] for n, e in res["files"].items()} == dict(
        {"p%d" % i: {"armada-p%d" % i: {"flags": ["complain"], "mode": "complain"}} for i in range(6)},
        off={"armada-off": {"flags": [], "mode": "disabled"}})
    # one -N for the six files, one for the disabled file (through stdin), besides --version
    assert sorted(calls.read_text().splitlines()) == ["--version", "-N", "-N"]


def test_apparmor_status_reports_absence(tmp_path):
    st = host.apparmor_status(str(tmp_path))
    assert st["enabled"] is False and "missing" in st["reason"]
    p = tmp_path / "sys" / "module" / "apparmor" / "parameters"
    p.mkdir(parents=True)
    (p / "enabled").write_text("N\n")
    assert host.apparmor_status(str(tmp_path)) == {"enabled": False,
                                                    "reason": "AppArmor is built in but disabled (enabled=N)"}
