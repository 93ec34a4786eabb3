"""Offline stand-in for the get-pip.py that ansible-test downloads from a host unreachable here.

ansible-test runs this file (from ~/.ansible/test/cache/) inside the fresh virtualenv it makes for a
sanity test, with pip's install arguments. We bootstrap pip from the interpreter's bundled wheel
(ensurepip) and then let that pip install what was asked, through the machine's normal pip
configuration (PyPI is reachable; the bundled get-pip host is not).
"""
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
