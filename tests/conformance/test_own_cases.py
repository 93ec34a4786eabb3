"""Our own conformance cases (tests/conformance/cases), one or more per record class.

The records were written for this suite (docs/conformance.md, "Own cases"), not copied from the
corpus. ``NAME.out`` is libapparmor 3.0.8's reading (``LibAppArmor.parse_record``) and
``NAME.profile`` aa-logprof 3.0.8's rules (``apparmor.logparser`` + ``apparmor.aa.collapse_log``'s
rule building), both written by ``upstream_reference.py`` - never by our code.
``test_reference_files_rederive`` re-runs that script where python3-libapparmor and
python3-apparmor are installed, so a hand edit of an expected file is caught.

Where we deliberately differ from 3.0.8 (it is older than the corpus' upstream), DIVERGENCES holds
the reason and our exact output, so the case stays checked.
"""
import glob
import os
import subprocess

import pytest
from test_parse_conformance import read_out, render
from test_profile_conformance import ALLOW_ALL_IX, parse_profile_text, result_rules

from ansible_collections.armada.apparmor.plugins.module_utils import logparse, logreader
from ansible_collections.armada.apparmor.plugins.module_utils.answers import to_rules

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
SYSTEM_PYTHON = "/usr/bin/python3"

#: case -> (why we differ from libapparmor 3.0.8, {label: our value})
PARSE_DIVERGENCES = {}  # type: dict

#: case -> (why we differ from aa-logprof 3.0.8, {(profile, hat): [our exact rule lines]})
PROFILE_DIVERGENCES = {
    "own_exec_denied": (
        "aa-logprof asks how to execute (ix/px/cx/ux); the suite answers ix, so the rule is the ix one",
        {("/usr/bin/own-a", None): ["/usr/bin/helper mrix,"]},
    ),
    "own_file_audit_only": (
        "aa-logprof 3.0.8 drops AUDIT records; libapparmor's test_multi corpus (testcase36, newer "
        "upstream) writes the requested access of an allowed-but-audited record, which we follow",
        {("/usr/bin/own-a", None): ["/etc/own.conf r,"]},
    ),
    "own_mount": (
        "aa-logprof 3.0.8 has no mount rules (UNHANDLED); newer upstream and the corpus "
        "(testcase_mount_*) write them",
        {("/usr/bin/own-a", None): ["mount fstype=tmpfs options=(nosuid, rw) tmpfs -> /mnt/own/,"]},
    ),
}


def cases():
    return sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(CASES, "*.in")))


def read_in(name):
    with open(os.path.join(CASES, name + ".in"), "rb") as fh:
        return fh.read().rstrip(b"\n")


def parse_problem(name):
    parsed = logparse.parse_line(read_in(name))
    want = read_out(os.path.join(CASES, name + ".out"))
    got = render(parsed)
    if name in PARSE_DIVERGENCES:
        got = dict(got, **PARSE_DIVERGENCES[name][1])
    diffs = ["%s: ours %r, libapparmor %r" % (k, got.get(k), want.get(k))
             for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
    return "; ".join(diffs) or None


def our_rules(name):
    reader = logreader.LogReader(host="own")
    reader.feed(read_in(name) + b"\n", source=name)
    result = to_rules(reader.result()["events"], ALLOW_ALL_IX, abi="3.0", fold_children=False)
    return {k: v for k, v in result_rules(result).items() if v}


def profile_problem(name):
    with open(os.path.join(CASES, name + ".profile"), encoding="utf-8") as fh:
        want = {k: v for k, v in parse_profile_text(fh.read()).items() if v}
    if name in PROFILE_DIVERGENCES:
        want = {k: set(v) for k, v in PROFILE_DIVERGENCES[name][1].items()}
    got = our_rules(name)
    if got == want:
        return None
    return "ours %r, expected %r" % (got, want)


@pytest.mark.parametrize("name", cases())
def test_own_case_parses_like_libapparmor(name):
    problem = parse_problem(name)
    assert problem is None, problem


@pytest.mark.parametrize("name", cases())
def test_own_case_profiles_like_aa_logprof(name):
    problem = profile_problem(name)
    assert problem is None, problem


def test_own_summary(conformance_report):
    names = cases()
    assert len(names) >= 15
    parse_ok = sum(1 for n in names if parse_problem(n) is None)
    prof_ok = sum(1 for n in names if profile_problem(n) is None)
    conformance_report("own-parse", parse_ok, len(names),
                       note="libapparmor 3.0.8; %d by documented divergence" % len(PARSE_DIVERGENCES))
    conformance_report("own-profile", prof_ok, len(names),
                       note="aa-logprof 3.0.8; %d by documented divergence" % len(PROFILE_DIVERGENCES))
    assert (parse_ok, prof_ok) == (len(names), len(names))


def test_profile_divergences_really_differ():
    """A divergence that AppArmor 3.0.8 no longer shows is stale and must be removed."""
    for name in PROFILE_DIVERGENCES:
        with open(os.path.join(CASES, name + ".profile"), encoding="utf-8") as fh:
            upstream = {k: v for k, v in parse_profile_text(fh.read()).items() if v}
        assert our_rules(name) != upstream, name


def _have_upstream():
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import LibAppArmor, apparmor.logparser"],
                           capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _have_upstream(),
                    reason="needs python3-libapparmor and python3-apparmor (Debian packages) in /usr/bin/python3")
def test_reference_files_rederive():
    """The committed .out/.profile files are exactly what AppArmor's own code produces today."""
    proc = subprocess.run([SYSTEM_PYTHON, os.path.join(HERE, "upstream_reference.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
