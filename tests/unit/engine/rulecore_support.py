"""Helpers for the rule-core tests (glob, escape, file/capability rules, profile model, coverage).

The real apparmor_parser is used for every compile check (``-QK``: never loads, the host kernel
has no AppArmor), with the lab kernel's features file (tests/fixtures/lab-features.abi) when it
exists, else the 3.0 ABI file the apparmor package ships. Expected values never come from here.
"""
import os
import subprocess
import tempfile
from typing import List, Optional, Tuple

from aa_support import FEATURES, PARSER, PARSER_MISSING
from aa_support import HOSTILE as HOSTILE_ALPHABET
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("ARMADA_FUZZ_EXAMPLES", "150"))

# The shared hostile alphabet, plus '&' '%' '~', another undecodable byte and a zero-width space.
HOSTILE = HOSTILE_ALPHABET + ["&", "%", "~", "\udc80", "\u200b", "b"]
hostile_name = st.one_of(
    st.text(alphabet=st.sampled_from(HOSTILE), min_size=1, max_size=30),
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1,
            max_size=16),
)
hostile_path = st.builds(lambda a, b: "/" + a + ("/" + b if b else ""), hostile_name,
                         st.one_of(st.just(""), hostile_name))

# Per-run case counters, printed by the last test of each module (pytest -s shows them; the final
# report quotes them).
COUNTS = {}  # type: dict


def count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _run(cmd: List[str], body: str) -> Tuple[int, str]:
    fd, path = tempfile.mkstemp(prefix="armada-core-", suffix=".profile")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body.encode("utf-8", "surrogateescape"))
        res = subprocess.run(cmd + [path], capture_output=True, timeout=120)
        return res.returncode, (res.stdout + res.stderr).decode("utf-8", "replace")
    finally:
        os.unlink(path)


def parser_cmd(extra: Optional[List[str]] = None) -> List[str]:
    assert PARSER, PARSER_MISSING
    cmd = [PARSER, "-QK"]
    if FEATURES:
        cmd += ["-M", FEATURES]
    return cmd + list(extra or [])


def compile_profile(text: str, extra: Optional[List[str]] = None) -> Tuple[bool, str]:
    """Compile a whole profile file text; (ok, parser output + the text)."""
    rc, out = _run(parser_cmd(extra), text)
    return rc == 0, out + "\n--- profile:\n" + text


TUNABLES = "include <tunables/global>\n" if os.path.exists("/etc/apparmor.d/tunables/global") else ""


def wrap(lines: List[str], abi: str = "3.0", name: str = "armada_core_test") -> str:
    """A one-profile file around rule lines (with the real tunables so @{HOME}, @{PROC} resolve)."""
    return "abi <abi/%s>,\n%sprofile %s {\n%s\n}\n" % (abi, TUNABLES, name, "\n".join("  " + ln for ln in lines))


def compile_rules(lines: List[str], abi: str = "3.0") -> Tuple[bool, str]:
    """Compile one profile holding ``lines``."""
    return compile_profile(wrap(lines, abi))


def rule_exprs(lines: List[str]) -> Tuple[bool, str]:
    """Compile with ``-D rule-exprs``: the parser prints one ``rule:`` line per file rule it built,
    with the expression tree (globs appear as ``[^\\x0/]``-style classes, literals escaped)."""
    rc, out = _run(parser_cmd(["-D", "rule-exprs"]), wrap(lines))
    return rc == 0, out


def octal_reference(name: str) -> str:
    """An independent spelling of the literal ``name`` for the parser: every byte except ``/`` as a
    ``\\ooo`` octal escape inside quotes. apparmor_parser decodes numeric escapes to *literal*
    characters (``\\052`` is a literal ``*``, never a glob), so this spelling cannot glob, expand a
    variable or end the rule; it is the yardstick quote_path is compared with."""
    out = []
    for byte in name.encode("utf-8", "surrogateescape"):
        out.append("/" if byte == 0x2F else "\\%03o" % byte)
    return '"' + "".join(out) + '"'


def compiled_binary(lines: List[str]) -> Tuple[bool, bytes, str]:
    """Compile to the binary policy (``-S``, written to stdout, never loaded)."""
    fd, path = tempfile.mkstemp(prefix="armada-core-", suffix=".profile")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(wrap(lines, name="armada_bin").encode("utf-8", "surrogateescape"))
        res = subprocess.run(parser_cmd(["-S"]) + [path], capture_output=True, timeout=120)
        return res.returncode == 0, res.stdout, res.stderr.decode("utf-8", "replace")
    finally:
        os.unlink(path)
