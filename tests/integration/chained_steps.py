"""Steps of one lab scenario that build on each other: after a failure the later steps skip, naming it."""
import functools
from typing import Callable, List

import pytest


def step_chain(what: str) -> Callable[[str], Callable]:
    """A ``step(label)`` decorator for one scenario (WHAT names it in the skip reason)."""
    failed: List[str] = []

    def step(label: str) -> Callable:
        def wrap(fn):
            @functools.wraps(fn)
            def run(*args, **kwargs):
                if failed:
                    pytest.skip("%s step %s failed: the later steps build on it" % (what, failed[0]))
                try:
                    return fn(*args, **kwargs)
                except BaseException as exc:
                    if not isinstance(exc, pytest.skip.Exception):
                        failed.append(label)
                    raise
            return run
        return wrap
    return step
