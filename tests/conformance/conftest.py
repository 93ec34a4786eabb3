"""Shared helper for conformance suites: one ``conformance NAME: P/N`` line per suite.

Use it from any test under tests/conformance through the ``conformance_report`` fixture::

    def test_summary(conformance_report):
        passed, total = run_all_cases()
        conformance_report("parse", passed, total, note="2 by documented divergence")
        assert passed == total

The lines are printed by a ``pytest_terminal_summary`` hook, so they show in the terminal
summary without ``-s`` (also when the suite fails). Calling it twice for a name keeps the last.
"""
from typing import Callable, Dict, Optional, Tuple

import pytest

_REPORTS: Dict[str, Tuple[int, int, Optional[str]]] = {}


def record_conformance(name: str, passed: int, total: int, note: Optional[str] = None) -> None:
    """Remember the result of suite ``name``: ``passed`` of ``total`` cases (N counts every case)."""
    _REPORTS[name] = (int(passed), int(total), note)


@pytest.fixture
def conformance_report() -> Callable[..., None]:
    """``conformance_report(name, passed, total, note=None)``: report a suite's P/N."""
    return record_conformance


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print ``conformance NAME: P/N`` (and the note) for every suite that reported."""
    if not _REPORTS:
        return
    terminalreporter.section("conformance")
    for name in sorted(_REPORTS):
        passed, total, note = _REPORTS[name]
        line = "conformance %s: %d/%d" % (name, passed, total)
        if note:
            line += " (%s)" % note
        terminalreporter.write_line(line)
