"""Controller-side compile checks against the lab kernel's captured feature set (no guest needed).

tests/fixtures/lab-features.abi was written by `tests/lab/lab features` (aa-features-abi -x in a guest).
"""
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.parser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ABI = os.path.join(ROOT, "tests", "fixtures", "lab-features.abi")
PROFILE = os.path.join(ROOT, "tests", "lab", "profiles", "armada-workload")
PARSER = shutil.which("apparmor_parser") or "/sbin/apparmor_parser"


def _compile(*args):
    return subprocess.run([PARSER, "-QK", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False)


def test_features_fixture_describes_a_6_1_kernel():
    with open(ABI, encoding="utf-8") as fh:
        text = fh.read()
    assert "file {mask {create read write exec append mmap_exec link lock" in text
    assert "network_v8 {af_mask" in text
    # newer mediation the 6.1 kernel lacks: the lab cannot prove these kinds for real (docs/lab.md)
    for newer in ("userns", "io_uring", "mqueue", "unix {"):
        assert newer not in text, newer


@pytest.mark.parametrize("flag", ["--features-file", "-M"])
def test_workload_profile_compiles_for_the_lab_kernel(flag):
    res = _compile(flag, ABI, PROFILE)
    assert res.returncode == 0, res.stdout



def test_trixie_features_fixture_describes_the_6_12_kernel():
    """tests/fixtures/lab-trixie-features.abi: `tests/lab/lab features FILE NAME` on the trixie host.

    What the lab's Debian 13 host can show for real (docs/lab.md, "Debian 13"): user namespaces and io_uring
    are mediated; fine-grained unix (no af_unix in network_v8) and mqueue (no ipc class) are not."""
    with open(os.path.join(ROOT, "tests", "fixtures", "lab-trixie-features.abi"), encoding="utf-8") as fh:
        text = fh.read()
    assert "namespaces {mask {userns_create" in text
    assert "io_uring {mask {sqpoll override_creds" in text
    assert "network_v8 {af_mask" in text
    for absent in ("af_unix", "mqueue", "ipc {", "network_v9"):
        assert absent not in text, absent
