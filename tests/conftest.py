"""Make the collection importable as ``ansible_collections.armada.apparmor`` from the checkout.

The Makefile builds build/collections/ansible_collections/armada/apparmor as a link to the
checkout; tests import the engine through that path exactly as Ansible does on a host.
"""
import os
import sys

from armada_corpus import corpus_dir  # noqa: F401  (re-exported for tests that import it from here)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLL_ROOT = os.path.join(ROOT, "build", "collections")
LINK = os.path.join(COLL_ROOT, "ansible_collections", "armada", "apparmor")
if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(ROOT, LINK)
if COLL_ROOT not in sys.path:
    sys.path.insert(0, COLL_ROOT)
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", COLL_ROOT)

