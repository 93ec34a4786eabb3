"""Names that are not absolute paths never become file or exec rules (issue 12, item 3).

A file or exec event's path is written as the first word of a rule. apparmor_parser reads that word as a
path only when it starts with ``/``: ``include r,`` is an include of the file ``r`` from the parser's
working directory, ``deny r,`` / ``profile r,`` are other statements, and ``relative/x``, ``pipe:[1234]``
or ``x y`` fail to compile on every host that has the profile. The first test shows, with the real
``apparmor_parser -QK -M tests/fixtures/lab-features.abi``, what the old rule text did; the others that
to_rules now files such events under ``unsupported`` with a reason, and that an answer's ``glob`` that is
not an absolute pattern is a validation error naming the answer.
"""
import os

import pytest
from aa_support import FEATURES

from ansible_collections.armada.apparmor.plugins.module_utils import host
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.answers import (
    AnswersError,
    file_path_problem,
    to_rules,
    validate_answers,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule

HERE = os.path.dirname(os.path.abspath(__file__))
HOSTILE = ["include", "deny", "profile", "relative/x", "pipe:[1234]", "x y", "@{HOME}/x", "", " /x"]
HOSTILE = [n for n in HOSTILE if n]
# quoted, "@\{HOME\}/x" compiles (a relative literal the kernel never reports): unsupported, not injection
INJECTING = [n for n in HOSTILE if not n.startswith("@")]
PROFILE = "/usr/bin/victim"


def event(path, kind="file"):
    return {"kind": kind, "profile": PROFILE, "host": "h", "path": path, "count": 1, "id": "%s:%s" % (kind, path),
            "mask": {"requested": "r" if kind == "file" else "x", "denied": "r" if kind == "file" else "x"}}


EXEC_ALLOW = {"profile": PROFILE, "match": {"kind": "exec"}, "answer": "allow", "exec_mode": "ix"}


def compile_lines(tmp_path, lines):
    try:
        parser = host.find_parser()
    except host.HostError:
        pytest.skip("apparmor_parser is not installed (make apt installs it)")
    path = tmp_path / "p.aa"
    path.write_text("abi <abi/3.0>,\nprofile armada_injection {\n" + "".join("  %s\n" % ln for ln in lines) + "}\n")
    (tmp_path / "r").write_text("capability sys_admin,\n")  # what `include r,` would pull in from the cwd
    old = os.getcwd()
    os.chdir(str(tmp_path))
    try:
        return host.validate(str(path), parser, features_file=FEATURES)
    finally:
        os.chdir(old)


@pytest.mark.parametrize("name", INJECTING)
def test_the_rule_text_a_relative_name_would_give_is_not_that_file_rule(tmp_path, name):
    """What the old code wrote for the event: a profile the parser refuses (on every host that has it)."""
    text = FileRule(escape_glob(name), frozenset("r")).render("3.0")
    err = compile_lines(tmp_path, [text])
    assert err is not None and ("syntax error" in err or "unexpected character" in err), (text, err)
    absolute = FileRule(escape_glob("/" + name.lstrip()), frozenset("r")).render("3.0")
    assert compile_lines(tmp_path, [absolute]) is None, absolute


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("kind", ["file", "exec"])
@pytest.mark.parametrize("default", ["allow", "pending"])
def test_a_relative_name_goes_to_unsupported_with_a_reason(name, kind, default):
    answers = [EXEC_ALLOW] if kind == "exec" else []
    res = to_rules([event(name, kind), event("/ok", kind)], answers, default=default)
    entry = res["profiles"][PROFILE]
    assert [u["path"] for u in entry["unsupported"]] == [name]
    assert "is not an absolute path" in entry["unsupported"][0]["reason"] and kind in entry["unsupported"][0]["reason"]
    assert all(r.get("path") != escape_glob(name) for r in entry["rules"] + entry["deny"])
    assert name not in [p["path"] for p in entry["pending"]]
    assert res["stats"]["unsupported"] == 1
    if default == "allow" or kind == "exec":
        assert [r["text"] for r in entry["rules"]] == ["/ok r," if kind == "file" else "/ok mrix,"]


def test_an_ignore_answer_still_ignores_and_an_include_answer_still_applies():
    ign = [{"profile": PROFILE, "match": {"kind": "file", "path": "include"}, "answer": "ignore"}]
    res = to_rules([event("include")], ign, default="allow")
    assert len(res["profiles"][PROFILE]["ignored"]) == 1 and not res["profiles"][PROFILE]["unsupported"]
    inc = [{"profile": PROFILE, "match": {"kind": "file"}, "answer": "allow", "include": "abstractions/base"}]
    res = to_rules([event("pipe:[1234]")], inc)
    assert [r["text"] for r in res["profiles"][PROFILE]["rules"]] == ["include <abstractions/base>"]


@pytest.mark.parametrize("glob", ["include", "x y", "relative/*", "pipe:[*]", "@{x y}/a", "@{HOME", "*"])
def test_a_glob_that_is_not_an_absolute_pattern_is_an_error_naming_the_answer(glob):
    answers = [{"profile": PROFILE, "match": {"kind": "file", "path": "/a"}, "answer": "allow"},
               {"profile": PROFILE, "match": {"kind": "file"}, "answer": "allow", "glob": glob}]
    with pytest.raises(AnswersError) as exc:
        validate_answers(answers)
    assert "answer #1" in str(exc.value) and repr(glob) in str(exc.value) and "absolute" in str(exc.value)


def test_absolute_and_variable_globs_are_fine():
    assert file_path_problem("/x y") is None and file_path_problem("@{HOME}/x", pattern=True) is None
    assert file_path_problem("@{HOME}/x") is not None  # a literal name from a log is no variable
    # (reads: writing anywhere in @{HOME} would be refused as too broad without broad: true)
    validate_answers([{"profile": PROFILE, "match": {"kind": "file", "mask": "r"}, "answer": "allow",
                       "glob": "@{HOME}/**"}])


def test_include_r_reads_a_file_from_the_parsers_working_directory(tmp_path):
    """``include r,`` (a file event named ``include``) pulls ``./r`` into the profile before failing."""
    import subprocess
    try:
        parser = host.find_parser()
    except host.HostError:
        pytest.skip("apparmor_parser is not installed (make apt installs it)")
    (tmp_path / "r").write_text("capability sys_admin,\n")
    (tmp_path / "p.aa").write_text("abi <abi/3.0>,\nprofile t {\n  %s\n}\n"
                                   % FileRule(escape_glob("include"), frozenset("r")).render("3.0"))
    out = subprocess.run([parser, "-p", "-M", FEATURES, "p.aa"], cwd=str(tmp_path), capture_output=True, text=True,
                         check=False)
    assert "capability sys_admin," in out.stdout, out.stdout + out.stderr
