"""Engine-test hooks: print how many hostile cases each fuzz kind tried (tests/unit/engine/fuzz_support.py);
a real small file system for the full-disk and read-only tests.
"""
import subprocess

import pytest
from fuzz_support import EXAMPLES, REPORT


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs: a real full disk and a real read-only file system (needs root and mount)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                          check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): %s" % proc.stderr.decode().strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def pytest_terminal_summary(terminalreporter):
    """``fuzz render: KIND=N ...`` and ``fuzz reader: N`` lines, when fuzz tests ran."""
    render = REPORT.get("render") or {}
    reader = REPORT.get("reader") or {}
    if not render and not reader:
        return
    tr = terminalreporter
    tr.section("fuzz cases (ARMADA_FUZZ_EXAMPLES=%d per kind)" % EXAMPLES)
    if render:
        tr.write_line("fuzz render: " + " ".join("%s=%d" % (k, v.get("tried", 0)) for k, v in sorted(render.items())))
        tr.write_line("fuzz render total: %d cases" % sum(v.get("tried", 0) for v in render.values()))
        for kind, v in sorted(render.items()):
            detail = "compiled by apparmor_parser=%d parse-back only=%d refused with a clear error=%d" % (
                v.get("compiled", 0), v.get("parse_back_only", 0), v.get("refused", 0))
            if v.get("abi3_downgraded"):
                detail += " (of them written in the ABI 3.0 form=%d)" % v["abi3_downgraded"]
            tr.write_line("  %-20s tried=%-6d %s%s" % (kind, v.get("tried", 0), detail,
                                                       ("  (" + v["note"] + ")") if v.get("note") else ""))
    if reader:
        tr.write_line("fuzz reader: %d" % reader.get("cases", 0))
        tr.write_line("  " + " ".join("%s=%s" % (k, v) for k, v in sorted(reader.items()) if k != "cases"))
