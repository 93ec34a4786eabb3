"""Where the test corpus is: the copy vendored in tests/corpus/ (see its README for provenance).

``$ARMADA_CORPUS`` points the libapparmor suites at another folder laid out like ``test_multi/``; the
other vendored files (journald sample, aa-logprof case) always come from tests/corpus/.

A plain module (not a conftest) so every test directory can import it by one unambiguous name:
pytest loads each directory's conftest.py as a module called ``conftest``, so ``from conftest import``
resolves to whichever was loaded last.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENDORED = os.path.join(ROOT, "tests", "corpus")


def corpus_dir() -> str:
    """The test_multi corpus folder; a missing corpus is an error, never a skip."""
    path = os.environ.get("ARMADA_CORPUS") or os.path.join(VENDORED, "test_multi")
    if not os.path.isdir(path):
        raise RuntimeError("corpus not found at %s: set ARMADA_CORPUS to a folder laid out like test_multi" % path)
    return path


def vendored_file(*parts: str) -> str:
    """A file of tests/corpus/ (``formats/journald-json.log``, ``logprof/ping.bin.ping``); missing is an error."""
    path = os.path.join(VENDORED, *parts)
    if not os.path.isfile(path):
        raise RuntimeError("vendored test file missing: %s (see tests/corpus/README.md)" % path)
    return path
