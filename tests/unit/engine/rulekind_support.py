"""Shared helpers for the rule-kind tests (test_rule_<kind>.py): the real apparmor_parser, the corpus
read through the real log reader, and the hostile-name alphabet.

Nothing here decides an expected value: expectations in the tests come from apparmor.d(5), from the
corpus ``.profile`` text, or from reasoning written next to each assertion.
"""
import os
import subprocess
import tempfile
from typing import Dict, List, Tuple

from aa_support import FEATURES, PARSER, PARSER_MISSING, bisect_failures
from aa_support import HOSTILE as HOSTILE_ALPHABET
from armada_corpus import corpus_dir
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import logparse

EXAMPLES = int(os.environ.get("ARMADA_FUZZ_EXAMPLES", "60"))

# The shared hostile alphabet, plus NUL (a log can carry it; rules must refuse it) and more letters.
HOSTILE = HOSTILE_ALPHABET + ["\x00", "ß", "Z"]
hostile_text = st.one_of(
    st.text(alphabet=st.sampled_from(HOSTILE), min_size=1, max_size=24),
    # Any code point a log can carry. Lone surrogates other than U+DC80..DCFF (undecodable bytes, in
    # HOSTILE above) cannot come from bytes at all; render rejects them (tested separately).
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
)


def compile_rules(lines: List[str], abi: str = "3.0") -> Tuple[bool, str]:
    """Compile one profile holding ``lines`` with ``apparmor_parser -QK`` (never loads)."""
    assert PARSER, PARSER_MISSING
    body = "abi <abi/%s>,\nprofile armada_rule_test {\n%s\n}\n" % (abi, "\n".join("  " + ln for ln in lines))
    fd, path = tempfile.mkstemp(prefix="armada-rule-", suffix=".profile")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body.encode("utf-8", "surrogateescape"))
        cmd = [PARSER, "-QK"]
        if FEATURES:
            cmd += ["-M", FEATURES]
        res = subprocess.run(cmd + [path], capture_output=True, timeout=60)
        return res.returncode == 0, res.stderr.decode("utf-8", "replace") + "\n--- profile:\n" + body
    finally:
        os.unlink(path)


def corpus_case(name: str) -> Tuple[List[Dict], List[str]]:
    """(events read by the real LogReader line parser, rule lines of the case's ``.profile``)."""
    base = os.path.join(corpus_dir(), name)
    with open(base + ".in", "rb") as fh:
        data = fh.read()
    # one corpus record is split over two lines (testcase_dbus_09): join continuation lines
    data = data.replace(b"\n                  ", b" ")
    events = []
    for line in data.splitlines():
        if line.strip():
            parsed = logparse.parse_line(line)
            if parsed["event"] is not None:
                events.append(parsed["event"])
    rules = []  # type: List[str]
    if os.path.exists(base + ".profile"):
        with open(base + ".profile", encoding="utf-8") as fh:
            for raw in fh:
                line = raw.strip()
                if not line or line.startswith(("#", "abi ", "include ", "}", "profile ", "^")) or line.endswith("{"):
                    continue
                rules.append(line)
    return events, rules


def one_line(text: str) -> bool:
    """A rendered rule must be exactly one printable line for every line splitter."""
    return len(text.splitlines()) == 1 and text.isprintable()


# Hostile fuzz runs compile every rendered rule. Small runs compile each case at once (hypothesis can
# then shrink a failure); long runs (make fuzz, ARMADA_FUZZ_EXAMPLES > 300) queue the lines and compile
# them in batches at the end of the file's tests, bisecting a failing batch down to the failing lines.
IMMEDIATE = EXAMPLES <= 300


def check_compiles(text: str, queue: List[str]) -> None:
    """Compile ``text`` now (small runs) or queue it for :func:`compile_queue` (long runs)."""
    if IMMEDIATE:
        ok, err = compile_rules([text])
        assert ok, err
    else:
        queue.append(text)


def compile_queue(queue: List[str], batch: int = 500) -> List[Tuple[str, str]]:
    """Compile queued lines in batches; return [(line, parser error)] for every line that fails."""
    return bisect_failures(queue, compile_rules, batch)
