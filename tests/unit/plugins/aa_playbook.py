"""Helpers for module tests: AppArmor fixture trees and real ``ansible-playbook`` runs on localhost.

The tree is a tmp copy of the host's real abi/, abstractions/ and tunables/ (from the ``apparmor``
package), so the modules validate against the same includes a Debian host has.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLL_ROOT = os.path.join(ROOT, "build", "collections")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
SYSTEM_D = "/etc/apparmor.d"


def make_tree(base):
    """An AppArmor directory under ``base`` with the real shared includes and empty companions."""
    tree = os.path.join(str(base), "apparmor.d")
    os.makedirs(tree)
    for sub in ("abi", "abstractions", "tunables"):
        shutil.copytree(os.path.join(SYSTEM_D, sub), os.path.join(tree, sub), symlinks=True)
    for sub in ("local", "disable", "force-complain"):
        os.makedirs(os.path.join(tree, sub))
    return tree


def tree_state(tree):
    """Every path below ``tree`` with its content hash, link target and permission bits."""
    out = {}
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, tree)
            st = os.lstat(full)
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("dir", oct(st.st_mode))
            else:
                with open(full, "rb") as handle:
                    out[rel] = ("file", hashlib.sha256(handle.read()).hexdigest(), oct(st.st_mode))
    return out


def run_tasks(tmp_path, tasks, check=False, diff=False, name="play"):
    """Run ``tasks`` (dicts) in one play on localhost; return each task's registered result, in order.

    Failing tasks do not stop the play (``ignore_errors``) so a test can assert on their messages.
    """
    names = []
    play_tasks = []
    for i, task in enumerate(tasks):
        task = dict(task)
        task.setdefault("ignore_errors", True)
        task["register"] = "r%d" % i
        names.append("r%d" % i)
        play_tasks.append(task)
    out_file = os.path.join(str(tmp_path), "%s-results.json" % name)
    collect = "{{ {%s} | to_json }}" % ", ".join("'%s': %s" % (n, n) for n in names)
    play_tasks.append({"name": "collect", "ansible.builtin.copy": {"content": collect, "dest": out_file},
                       "check_mode": False, "diff": False})
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": play_tasks}]
    pb = os.path.join(str(tmp_path), "%s.yml" % name)
    with open(pb, "w") as handle:
        json.dump(play, handle)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    cmd = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
           "ansible_python_interpreter=%s" % sys.executable, pb]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    if not os.path.exists(out_file):
        raise AssertionError("ansible-playbook failed (%d):\n%s\n%s" % (proc.returncode, proc.stdout[-4000:],
                                                                       proc.stderr[-4000:]))
    with open(out_file) as handle:
        results = json.load(handle)
    os.unlink(out_file)
    return [results[n] for n in names]


def load_like_inventory(tmp_path, text, name="apparmor_answers_pending.yml"):
    """Read YAML ``text`` the way Ansible reads a group_vars file (its own loader, trusted as templates
    unless tagged ``!unsafe``); returns the data."""
    from ansible.parsing.dataloader import DataLoader
    path = os.path.join(str(tmp_path), name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return DataLoader().load_from_file(path, cache="none", trusted_as_template=True)


def templatable_strings(data, path="$"):
    """(where, value) of every string in ``data`` (keys too) that Ansible would template."""
    from ansible.template import is_trusted_as_template
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(k, str) and is_trusted_as_template(k):
                out.append((path + " key", k))
            out.extend(templatable_strings(v, "%s.%s" % (path, k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.extend(templatable_strings(v, "%s[%d]" % (path, i)))
    elif isinstance(data, str) and is_trusted_as_template(data):
        out.append((path, data))
    return out


JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"

def write_journal(directory, entries):
    """Journal export entries (KEY=VALUE, binary-safe KEY\\n<le64 size>VALUE) -> DIRECTORY/system.journal."""
    blob = b""
    for e in entries:
        for k, v in e.items():
            b = v.encode()
            blob += (k.encode() + b"\n" + struct.pack("<Q", len(b)) + b + b"\n") if b"\n" in b else (
                k.encode() + b"=" + b + b"\n")
        blob += b"\n"
    os.makedirs(directory, exist_ok=True)
    src = os.path.join(directory, "x.export")
    with open(src, "wb") as fh:
        fh.write(blob)
    subprocess.run([JOURNAL_REMOTE, "-o", os.path.join(directory, "system.journal"), src], check=True,
                   capture_output=True)
    os.unlink(src)


_LOCK_HOLDER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.armada.apparmor.plugins.module_utils import lock
with lock.HostLock(path=sys.argv[2], what=sys.argv[3]):
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def held_lock(lock_file, what, timeout=30):
    """Another process holds the host lock (saying it is doing ``what``) for the duration; yields that process."""
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, COLL_ROOT, lock_file, what],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=timeout)
