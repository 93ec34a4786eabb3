#!/usr/bin/python
# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``armada.apparmor.state`` module: write the roles' JSON state files on a host, atomically."""

DOCUMENTATION = r"""
module: state
short_description: Read and write the state files of the armada.apparmor roles on a host
version_added: 0.2.0
description:
  - Reads the JSON files named in O(read) (RV(data)), then writes each of O(files) as JSON into O(path), under the
    host-wide armada.apparmor lock - every new text into a temp file first, then one atomic rename per file (a
    reader sees the old or the new file, never a part; no temp file is left behind on failure).
  - Then, when O(commit_cursor) is given, commits that log cursor (as M(armada.apparmor.denials) with C(commit_token)
    does) - after the files, in the same task and under the same lock, so a pass stores its events and record and
    moves its cursor in one round trip, and a failure to write the files leaves the cursor where it was.
  - A file whose JSON text is already the same is not written. O(path) is created (mode 0700) when missing.
  - On failure to write (full disk, read-only directory) every file keeps its previous content, O(commit_cursor) is
    not committed (the same events are read again next pass) and the message says what to do.
author:
  - armada.apparmor developers (@armada)
extends_documentation_fragment:
  - armada.apparmor.host.LOCK
options:
  path:
    description:
      - The state directory on the host.
    type: path
    required: true
  read:
    description:
      - Files inside O(path) to read and return in RV(data) (before anything is written).
    type: list
    elements: str
    default: []
  files:
    description:
      - The files to write, in this order.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - File name inside O(path) - a plain name ending in C(.json), no C(/), not starting with C(.).
        type: str
        required: true
      data:
        description:
          - The content, written as JSON (keys sorted).
        type: raw
        required: true
      mode:
        description:
          - The file's permissions.
        type: str
        default: "0600"
      pretty:
        description:
          - Indented JSON (for files people read) instead of one line (for large files such as C(events.json)).
        type: bool
        default: true
  commit_cursor:
    description:
      - The log cursor to commit after the files are written (the token comes from a M(armada.apparmor.denials)
        read with C(commit=false)). A cursor that moved since the token was issued (another run committed) fails
        the task; the files are written by then.
    type: dict
    suboptions:
      dir:
        description:
          - The cursor directory (M(armada.apparmor.denials)' C(cursor_dir)).
        type: path
        required: true
      name:
        description:
          - The cursor name (M(armada.apparmor.denials)' C(since)).
        type: str
        required: true
      token:
        description:
          - The token of the read (C(cursor.token) of M(armada.apparmor.denials)); empty = nothing to commit.
        type: str
        required: true
attributes:
  check_mode:
    support: full
    description: Reports which files would change; writes nothing and does not take the lock.
  diff_mode:
    support: full
    description: Shows the old and new text of each file that changes.
notes:
  - The files belong to root; use C(become).
seealso:
  - module: armada.apparmor.denials
"""

EXAMPLES = r"""
- name: Read the events kept from earlier passes and the convergence record
  armada.apparmor.state:
    path: /var/lib/armada-apparmor
    read: [events.json, convergence.json]
  register: kept

- name: Keep the events and the convergence record on the host
  armada.apparmor.state:
    path: /var/lib/armada-apparmor
    files:
      - name: events.json
        data: "{{ events }}"
        pretty: false
      - name: convergence.json
        data: "{{ record }}"
        mode: "0644"
    commit_cursor:
      dir: /var/lib/armada-apparmor/cursors
      name: armada-update
      token: "{{ read.cursor.token }}"
  become: true
"""

RETURN = r"""
data:
  description: The content of each file of O(read); C(null) when it is missing or empty.
  returned: always
  type: dict
  sample: {"events.json": [], "convergence.json": null}
written:
  description: The files written (or, in check mode, that would be), in the order given.
  returned: always
  type: list
  elements: str
  sample: [/var/lib/armada-apparmor/events.json]
cursor_committed:
  description: The cursor of O(commit_cursor) moved (or, in check mode, would move).
  returned: always
  type: bool
"""

import json  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.armada.apparmor.plugins.module_utils import argspec, fileops  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils import cursor as cursor_mod  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils import lock as lock_mod  # noqa: E402

DIFF_LIMIT = 256 * 1024


def render(data, pretty):
    """The JSON text of a state file: keys sorted, indented or on one line, newline-terminated."""
    if pretty:
        return (json.dumps(data, indent=4, sort_keys=True, separators=(",", ": ")) + "\n").encode("utf-8")
    return (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def check_name(name):
    """A state file name, or a ValueError saying what a name must look like."""
    if not name.endswith(".json") or name.startswith(".") or "/" in name or "\x00" in name:
        raise ValueError("state file name %r: use a plain name ending in .json, without '/' or a leading '.'" % name)
    return name


def _text(data):
    if data is None:
        return ""
    if len(data) > DIFF_LIMIT:
        return "(%d bytes, not shown)\n" % len(data)
    return data.decode("utf-8", "replace")


def read(path, names):
    """{name: parsed JSON, or None when the file is missing or empty}; text that is not JSON is an error."""
    out = {}
    for name in names:
        full = os.path.join(path, check_name(name))
        raw = fileops.read_bytes(full)
        if not raw:
            out[name] = None
            continue
        try:
            out[name] = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise ValueError("%s is not JSON (%s): move it away and run again" % (full, exc)) from None
    return out


def plan(path, files):
    """[(full path, new bytes, mode, old bytes)] of the files whose text changes."""
    out = []
    for entry in files:
        full = os.path.join(path, check_name(entry["name"]))
        new = render(entry["data"], entry["pretty"])
        mode = int(entry["mode"], 8)
        old = fileops.read_bytes(full)
        if old != new:
            out.append((full, new, mode, old))
    return out


def write(path, todo):
    """Write every temp file first, then rename them: a full disk or a read-only directory changes no file."""
    fileops.ensure_dir(path, mode=0o700)
    temps = []
    try:
        for full, new, mode, _old in todo:
            temps.append(fileops.write_temp(path, new, hint=os.path.basename(full), mode=mode))
    except fileops.FileOpError:
        for tmp in temps:
            fileops.discard_temp(tmp)
        raise
    for index, ((full, _new, _mode, _old), tmp) in enumerate(zip(todo, temps)):
        try:
            fileops.commit_temp(tmp, full, like=tmp)
        except fileops.FileOpError:
            for left in temps[index + 1:]:
                fileops.discard_temp(left)
            raise


def _commit(module, commit, check_mode):
    """Commit the cursor; True when it moved. A refused commit fails the task (the files are already written)."""
    try:
        res = cursor_mod.CursorStore(commit["dir"]).commit(commit["name"], commit["token"], check_mode=check_mode)
    except (cursor_mod.CursorError, OSError) as exc:
        module.fail_json(msg="cannot commit cursor %s: %s" % (commit["name"], exc))
    return bool(res["changed"])


def main():
    """Entry point."""
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            read=dict(type="list", elements="str", default=[]),
            files=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                data=dict(type="raw", required=True),
                mode=dict(type="str", default="0600"),
                pretty=dict(type="bool", default=True),
            )),
            commit_cursor=dict(type="dict", options=dict(
                dir=dict(type="path", required=True),
                name=dict(type="str", required=True),
                token=dict(type="str", required=True, no_log=False),
            )),
            **argspec.lock_options(),
        ),
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"]
    for name in p["read"]:
        try:
            check_name(name)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
    for entry in p["files"]:
        try:
            check_name(entry["name"])
            int(entry["mode"], 8)
        except ValueError as exc:
            module.fail_json(msg=str(exc) if "state file" in str(exc) else
                             "mode %r of %s: use an octal mode such as '0600'" % (entry["mode"], entry["name"]))
    commit = p["commit_cursor"] if p["commit_cursor"] and p["commit_cursor"]["token"] else None
    committed = False
    try:
        data = read(path, p["read"])
        todo = plan(path, p["files"])
        if module.check_mode:
            if commit:
                committed = _commit(module, commit, check_mode=True)
        elif todo or commit:
            what = ["write %s" % ", ".join(t[0] for t in todo)] if todo else []
            what += ["commit cursor %s" % commit["name"]] if commit else []
            with lock_mod.host_lock("state: %s" % "; ".join(what), timeout=p["lock_timeout"], path=p["lock_file"]):
                write(path, todo)
                if commit:
                    committed = _commit(module, commit, check_mode=False)
    except (lock_mod.LockBusy, lock_mod.LockError) as exc:
        module.fail_json(msg=str(exc), changed=False)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except fileops.FileOpError as exc:
        module.fail_json(msg="cannot write the armada.apparmor state in %s: %s - the previous state files are kept; "
                         "free space in (or make writable) %s and run again" % (path, exc, path))
    result = dict(changed=bool(todo) or committed, written=[t[0] for t in todo], data=data,
                  cursor_committed=committed)
    if module._diff:
        result["diff"] = [{"before_header": full, "after_header": full, "before": _text(old), "after": _text(new)}
                          for full, new, _mode, old in todo]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
