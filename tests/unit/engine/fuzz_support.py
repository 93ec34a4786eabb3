"""Shared state of the hostile-input fuzz tests (test_fuzz_*.py): case counters printed by
tests/unit/engine/conftest.py at the end of the run, the hostile alphabet, and the batched compile
with the real ``apparmor_parser -QK`` (never loads: the dev host kernel has no AppArmor).

Nothing here computes an expected value; expectations are written in the tests from apparmor.d(5)
and the kernel's audit encoding.
"""
import os
import signal
import subprocess
import tempfile
from typing import List, Sequence, Tuple

from aa_support import FEATURES, PARSER, bisect_failures
from hypothesis import strategies as st

#: Cases per kind: ``make fuzz`` sets 10000; ``make test`` runs the default.
EXAMPLES = int(os.environ.get("ARMADA_FUZZ_EXAMPLES", "200"))

#: ``render``: {kind: {"tried": n, "compiled": n, "parse_back_only": n, "refused": n, "note": str}}
#: ``reader``: {"cases": n, "lines": n, "bad_lines": n, ...}
REPORT = {"render": {}, "reader": {}}  # type: Dict[str, Dict]


def bump(section: str, key: str, field: str = "", n: int = 1) -> None:
    """Count one case (``REPORT[section][key][field] += n``; a flat counter when ``field`` is empty)."""
    sec = REPORT[section]
    if field:
        sec.setdefault(key, {})
        sec[key][field] = sec[key].get(field, 0) + n
    else:
        sec[key] = sec.get(key, 0) + n


# The characters the issue names (space, quotes, ',', '{}', '#', newline, '\', '@{'), the other AARE
# specials, rule syntax ('(', ')', '=', '->', '!'), line separators Python and editors honour, DEL,
# an undecodable log byte (U+DCFF, surrogateescape), non-ASCII letters and plain characters so names
# also look like real names.
TOKENS = [" ", '"', "'", ",", "{", "}", "#", "\n", "\\", "@{", "@", "*", "**", "?", "[", "]", "^", "(", ")",
          "=", "->", "!", "\t", "\r", "\x7f", "\x01", "\u2028", "\x85", "\u00a0", "é", "日", "\U0001f600", "a",
          "Z", "0", ".", "..", "/", ":", "$", "+", "~", "%", "-", "&", "<", ">", ";", "|", "\\n", "\\042", "\udcff",
          # rule and profile syntax words, so a name can look like the start of another statement
          "flags=(", "flags=()", "profile ", "hat ", "include ", "#include <", "abi ", "deny ", "audit ", "owner ",
          "capability ", "}\n", ",\n", " -> "]
hostile = st.one_of(
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=16).map("".join),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
            max_size=12),
)
#: names a kernel can log as a UTF-8 string (no NUL; no undecodable byte: the reader counts those as bad_hex)
loggable = st.one_of(
    st.lists(st.sampled_from([t for t in TOKENS if t != "\udcff"]), min_size=1, max_size=16).map("".join),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
            max_size=12),
)


#: seconds one apparmor_parser run may take; a batch that takes longer is split like a failing one, and
#: a single rule that takes longer is reported as a failure (a rule must not stall a fleet's compile)
COMPILE_TIMEOUT = float(os.environ.get("ARMADA_FUZZ_COMPILE_TIMEOUT", "60"))


def compile_text(text: str, timeout: float = COMPILE_TIMEOUT) -> Tuple[bool, str]:
    """Compile a whole profile file with ``apparmor_parser -QK [-M features]``."""
    assert PARSER, "apparmor_parser is not installed (Debian: apt install apparmor)"
    fd, path = tempfile.mkstemp(prefix="armada-fuzz-", suffix=".profile")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8", "surrogateescape"))
        cmd = [PARSER, "-QK"] + (["-M", FEATURES] if FEATURES else []) + [path]
        # apparmor_parser forks a worker per profile: kill the whole process group on a timeout, or the
        # worker is orphaned and keeps compiling (seen: a dozen orphans eating both cores).
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return False, "apparmor_parser did not finish within %.0f s" % timeout
        return proc.returncode == 0, err.decode("utf-8", "replace")
    finally:
        os.unlink(path)


def wrap(lines: List[str], top: List[str], abi: str = "3.0") -> str:
    """One profile holding ``lines`` (and ``top`` lines before it, for variable assignments)."""
    return "abi <abi/%s>,\n%s\nprofile armada_fuzz {\n%s\n}\n" % (
        abi, "\n".join(top), "\n".join("  " + ln for ln in lines))


def compile_batches(cases: List[Tuple[str, str]], batch: int = 400) -> List[Tuple[str, str]]:
    """Compile ``[(placement, line)]`` in batches; bisect a failing batch; [(line, error)] that fail.

    ``placement`` is ``body`` (inside the profile) or ``top`` (before it). Every line is compiled:
    a rejection is reported as a failure, never dropped.
    """
    def compile_chunk(chunk: Sequence[Tuple[str, str]]) -> Tuple[bool, str]:
        return compile_text(wrap([ln for where, ln in chunk if where == "body"],
                                 [ln for where, ln in chunk if where == "top"]))

    return [(case[1], err) for case, err in bisect_failures(cases, compile_chunk, batch)]


def literal_of(aare: str):
    """The literal string an AppArmor pattern matches, per apparmor.d(5): ``\\X`` is the character X;
    an unescaped ``* ? [ ] { }`` or ``@{`` makes it a pattern (None). Written here, independently of
    the engine's own escape helpers, as the test oracle."""
    out = []
    i = 0
    while i < len(aare):
        c = aare[i]
        if c == "\\" and i + 1 < len(aare):
            out.append(aare[i + 1])
            i += 2
            continue
        if c in "*?[]{}" or (c == "@" and aare[i + 1:i + 2] == "{"):
            return None
        out.append(c)
        i += 1
    return "".join(out)
