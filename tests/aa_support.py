"""What the tests that compile policy or feed hostile names share: the checkout's root, the real
``apparmor_parser``, the features file compile checks use, and the hostile characters.

One place, so every suite compiles against the same kernel features and fuzzes the same alphabet core;
each suite adds the characters its own subject cares about. Nothing here decides an expected value.
"""
import os
import shutil
from typing import Callable, List, Sequence, Tuple, TypeVar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The lab kernel's features (written by ``tests/lab/lab features``), else the ABI 3.0 file the apparmor
#: package ships; compile checks never use the parser's built-in defaults.
FEATURES = next((p for p in (os.path.join(ROOT, "tests", "fixtures", "lab-features.abi"), "/etc/apparmor.d/abi/3.0")
                 if os.path.exists(p)), None)
PARSER = shutil.which("apparmor_parser") or ("/sbin/apparmor_parser" if os.path.exists("/sbin/apparmor_parser")
                                             else None)
PARSER_MISSING = "apparmor_parser is not installed (Debian: apt install apparmor): compile checks need it"

#: The characters issue 2 names: AppArmor's syntax and AARE specials.
HOSTILE_SYNTAX = list(',{}[]"#\n\\@*?!^')
#: Blanks and line separators (Python's splitlines() and editors honour them), DEL, an undecodable log byte
#: (U+DCFF, surrogateescape) and non-ASCII letters.
HOSTILE_TEXT = [" ", "\t", "\r", "\x7f", "\u2028", "\x85", "\udcff", "é", "日", "\U0001f600"]
#: Rule syntax ('(', ')', '=', '->') and plain characters, so names also look like real names.
HOSTILE_PLAIN = ["(", ")", "=", "-", ">", "/", "$", "a", "0", ".", ":"]
HOSTILE = HOSTILE_SYNTAX + HOSTILE_TEXT + HOSTILE_PLAIN

T = TypeVar("T")


def bisect_failures(items: Sequence[T], compile_chunk: Callable[[Sequence[T]], Tuple[bool, str]],
                    batch: int) -> List[Tuple[T, str]]:
    """Compile ``items`` ``batch`` at a time with ``compile_chunk``; split a failing chunk in halves until
    each failing item stands alone. Returns [(item, parser error)]: a rejection is never dropped."""
    bad = []  # type: List[Tuple[T, str]]

    def run(chunk: Sequence[T]) -> None:
        ok, err = compile_chunk(chunk)
        if ok:
            return
        if len(chunk) == 1:
            bad.append((chunk[0], err))
            return
        mid = len(chunk) // 2
        run(chunk[:mid])
        run(chunk[mid:])

    for start in range(0, len(items), batch):
        run(items[start:start + batch])
    return bad
