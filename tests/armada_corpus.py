"""Where the shared libapparmor corpus is: $ARMADA_CORPUS, else ../shared/corpus/test_multi.

A plain module (not a conftest) so every test directory can import it by one unambiguous name:
pytest loads each directory's conftest.py as a module called ``conftest``, so ``from conftest import``
resolves to whichever was loaded last.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus_dir() -> str:
    """The test_multi corpus folder; a missing corpus is an error, never a skip."""
    path = os.environ.get("ARMADA_CORPUS") or os.path.join(os.path.dirname(ROOT), "shared", "corpus", "test_multi")
    if not os.path.isdir(path):
        raise RuntimeError("corpus not found at %s: set ARMADA_CORPUS to a folder laid out like test_multi" % path)
    return path
