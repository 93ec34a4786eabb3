"""Profile conformance: every corpus case with a ``.profile`` through to_rules, compared rule by rule.

For each ``NAME.in`` of the libapparmor test_multi corpus that has a ``NAME.profile`` (the profile
AppArmor's Python tools write when every question is answered "allow" and execs as ``ix``; events of
child profiles, ``//null-`` ones included, written as hats ``^child``), the record goes through the
real reader (logreader.LogReader) and ``to_rules`` with the answers "allow everything, exec as ix" and
``fold_children=False``. The generated rule set must equal the ``.profile``'s, per profile and hat.
Only whitespace (runs of blanks) and order are normalised; quoting, qualifiers, permissions, names
are compared as text. Justified divergences are listed in JUSTIFIED below and in
docs/conformance.md; for those the test asserts our exact output instead, so they stay checked.

Besides: the ABI 3.0 rendering of every case is compiled with the real ``apparmor_parser -QK``
(lab features file when present), and a test shows the comparison catches an altered rule.
"""
import os
import re
import tempfile

import pytest
from armada_corpus import ROOT, corpus_dir

from ansible_collections.armada.apparmor.plugins.module_utils import host
from ansible_collections.armada.apparmor.plugins.module_utils.answers import to_rules
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader

ALLOW_ALL_IX = [{"profile": "**", "match": {}, "answer": "allow", "exec_mode": "ix",
                 "broad": True}]  # aa-logprof --allow-all: deliberately every event of every profile
CORPUS_ABI = "5.0"  # the corpus profiles use ABI 5.0 forms (network (send) ..., mqueue, io_uring, userns)
FEATURES = os.path.join(ROOT, "tests", "fixtures", "lab-features.abi")

# case -> (why, {(profile, hat): [our exact rule lines]}); see docs/conformance.md "Profile".
JUSTIFIED = {
    "unbalanced_parenthesis": (
        "the name contains '(': we quote it (\"/dev/shm/test(me\"), the corpus writes it bare; "
        "apparmor_parser 3.0.8 reads both as the same literal path (both compile), and quoting keeps "
        "'(' from being read as the start of a parenthesised list by any rule reader",
        {("unbalanced_parenthesis", None): ['owner "/dev/shm/test(me" r,']},
    ),
}


def _collapse(text):
    """Runs of blanks outside double quotes become one space (the only text normalisation)."""
    out, quote, prev_space, i = [], False, False, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and quote and i + 1 < len(text):
            out.append(text[i:i + 2])
            i += 2
            prev_space = False
            continue
        if c == '"':
            quote = not quote
        if c.isspace() and not quote:
            if not prev_space:
                out.append(" ")
            prev_space = True
        else:
            out.append(c)
            prev_space = False
        i += 1
    return "".join(out).strip()


def _unquote_name(token):
    token = token.strip()
    if len(token) >= 2 and token[0] == '"' and token[-1] == '"':
        return token[1:-1]
    return token


def parse_profile_text(text):
    """{(profile, hat or None): set(rule lines)} of a corpus .profile (profiles with no rules included)."""
    rules = {}
    stack = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            head = line[:-1].strip()
            if stack:
                assert head.startswith("^") or head.startswith("hat ") or head.startswith("profile "), line
                name = _unquote_name(re.sub(r"^(\^|hat |profile )", "", head))
                key = (stack[0], name)
            else:
                name = _unquote_name(head[len("profile "):] if head.startswith("profile ") else head)
                key = (name, None)
            stack.append(name)
            rules.setdefault(key, set())
            continue
        if line == "}":
            stack.pop()
            continue
        assert stack, "rule outside a profile: %r" % line
        key = (stack[0], stack[1] if len(stack) > 1 else None)
        rules.setdefault(key, set()).add(_collapse(line))
    return rules


def result_rules(result):
    """Same shape from a to_rules result: every profile and child, allow and deny rule texts."""
    rules = {}
    for name, entry in result["profiles"].items():
        rules[(name, None)] = set(_collapse(r["text"]) for r in entry["rules"] + entry["deny"])
        for child, centry in entry["children"].items():
            rules[(name, child)] = set(_collapse(r["text"]) for r in centry["rules"] + centry["deny"])
    return rules


def cases():
    base = corpus_dir()
    return sorted(f[:-len(".profile")] for f in os.listdir(base) if f.endswith(".profile"))


def events_of(name):
    reader = LogReader(host="corpus")
    with open(os.path.join(corpus_dir(), name + ".in"), "rb") as fh:
        reader.feed(fh.read(), source=name)
    return reader.result()["events"]


def generated(name, abi=CORPUS_ABI):
    return to_rules(events_of(name), ALLOW_ALL_IX, abi=abi, fold_children=False)


def expected(name):
    with open(os.path.join(corpus_dir(), name + ".profile"), encoding="utf-8") as fh:
        return parse_profile_text(fh.read())


def compare(name):
    """None when the case conforms (exactly, or as documented in JUSTIFIED), else a diff message."""
    got = result_rules(generated(name))
    want = expected(name)
    if name in JUSTIFIED:
        want = dict(want)
        for key, lines in JUSTIFIED[name][1].items():
            want[key] = set(lines)
    if got == want:
        return None
    diff = []
    for key in sorted(set(got) | set(want), key=str):
        g, w = got.get(key), want.get(key)
        if g != w:
            diff.append("%s: missing %s, extra %s" % (key, sorted((w or set()) - (g or set())),
                                                      sorted((g or set()) - (w or set()))))
    return "; ".join(diff)


_RESULTS = {}


@pytest.mark.parametrize("name", cases())
def test_case_conforms(name):
    problem = compare(name)
    _RESULTS[name] = problem is None
    assert problem is None, problem


def test_conformance_summary(conformance_report):
    names = cases()
    passed = 0
    for name in names:
        if name not in _RESULTS:
            _RESULTS[name] = compare(name) is None
        passed += 1 if _RESULTS[name] else 0
    conformance_report("profile", passed, len(names),
                       note="%d by documented divergence (docs/conformance.md)" % len(JUSTIFIED))
    assert len(names) > 0
    assert passed == len(names), "conformance profile: %d/%d" % (passed, len(names))


def test_justified_divergences_really_differ_from_the_corpus():
    """A JUSTIFIED entry must be needed: the corpus text differs from our documented output."""
    for name, (_why, ours) in JUSTIFIED.items():
        want = expected(name)
        for key, lines in ours.items():
            assert want.get(key) != set(lines), "%s no longer diverges; remove it from JUSTIFIED" % name


# ---- the comparison is not toothless ----------------------------------------------------------------

def test_altered_rule_is_caught():
    name = "testcase_syslog_read"  # owner /home/bane/foo r,
    got = result_rules(generated(name))
    want = expected(name)
    assert got == want
    key = ("/usr/sbin/vsftpd", None)
    assert want[key] == {"owner /home/bane/foo r,"}
    for altered in ({"/home/bane/foo r,"}, {"owner /home/bane/foo rw,"}, {"owner /home/bane/fo r,"},
                    {"owner /home/bane/foo r,", "capability setuid,"}, set()):
        tampered = dict(got)
        tampered[key] = altered
        assert tampered != want
    # a hat written as a top-level rule is caught too
    hat_case = expected("syslog_datetime_01")
    flat = {("/usr/lib/virtualbox/VBoxSVC", None): hat_case[("/usr/lib/virtualbox/VBoxSVC", "null-2d")]}
    assert flat != hat_case


def test_parser_of_corpus_profiles_reads_hats_and_quoted_names():
    text = 'profile "test space" {\n  owner /x r,\n\n  ^hat {\n    /y  w,\n  }\n}\n'
    assert parse_profile_text(text) == {("test space", None): {"owner /x r,"}, ("test space", "hat"): {"/y w,"}}


# ---- ABI 3.0 output compiles with the real parser ------------------------------------------------------

def _profile_text(result):
    lines = ["abi <abi/3.0>,"]
    for i, (_name, entry) in enumerate(sorted(result["profiles"].items())):
        # the profile header is the profile model's business; a fixed safe name keeps this about rules
        lines.append("profile armada_conformance_%d {" % i)
        lines.extend("  " + r["text"] for r in entry["rules"] + entry["deny"])
        for j, (_child, centry) in enumerate(sorted(entry["children"].items())):
            lines.append("  ^hat_%d {" % j)
            lines.extend("    " + r["text"] for r in centry["rules"] + centry["deny"])
            lines.append("  }")
        lines.append("}")
    return "\n".join(lines) + "\n"


def apparmor_parser():
    try:
        return host.find_parser()
    except host.HostError:
        return None


def compile_text(text):
    """(ok, message) of the real ``apparmor_parser -QK`` (host.validate) on the text; never loads."""
    with tempfile.NamedTemporaryFile("w", suffix=".aa", delete=False, encoding="utf-8") as fh:
        fh.write(text)
        path = fh.name
    try:
        err = host.validate(path, apparmor_parser(), features_file=FEATURES if os.path.exists(FEATURES) else None)
        return err is None, err
    finally:
        os.unlink(path)


@pytest.mark.parser
@pytest.mark.skipif(apparmor_parser() is None, reason="apparmor_parser is not installed (make apt installs it)")
def test_abi30_rules_of_every_case_compile():
    compiled = unsupported = 0
    for name in cases():
        result = generated(name, abi="3.0")
        text = _profile_text(result)
        ok, err = compile_text(text)
        assert ok, "%s:\n%s\n%s" % (name, text, err)
        compiled += sum(len(e["rules"]) + len(e["deny"]) for e in result["profiles"].values())
        unsupported += result["stats"]["unsupported"]
    assert compiled > 60
    print("abi 3.0: %d rules compiled, %d events not expressible at 3.0 (listed as unsupported)"
          % (compiled, unsupported))
