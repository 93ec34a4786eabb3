# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter armada.apparmor.controller_path: a controller path from a host-derived name (thin adapter over
controller_paths.py)."""

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils.controller_paths import FORMS, UnsafeName, target_path

DOCUMENTATION = r"""
name: controller_path
short_description: The controller path for a file name derived from a managed host's output, or a clear refusal
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - Joins O(directory) and the name, after checking the name is one plain file name - no C(/), not C(.), C(..)
    or hidden (leading C(.)), no NUL, control, format or line separator characters, at most 255 bytes -, one
    of O(allowed) when given, of the named O(form) when given, and that the resulting path is not a
    symlink (the controller never writes through one).
  - A refusal fails the task with a message naming O(host) and the refused value; nothing is written.
  - Every role that writes a controller file named after host data (fetched profiles, fetched snapshots,
    rollout reports) builds the path with this filter, so a compromised host cannot make the controller write
    outside the directory (docs/security.md).
positional: _input, directory
options:
  _input:
    description: The file name.
    type: str
    required: true
  directory:
    description: The controller directory the file goes into (trusted, from inventory or role defaults).
    type: str
    required: true
  host:
    description: The host whose output the name was derived from, named in the error.
    type: str
    required: true
  what:
    description: What the name is, for the error (C(profile file name), C(snapshot file)).
    type: str
    default: file name
  allowed:
    description: The names the controller asked for; any other name is refused. Omit to accept any safe name.
    type: list
    elements: str
  form:
    description:
      - A named form the whole name must have.
      - V(snapshot_file) is C(<snapshot id>.tar.gz) or C(<snapshot id>.json).
    type: str
    choices: [snapshot_file]
"""

EXAMPLES = r"""
- name: Write a fetched profile under the name the controller asked for
  ansible.builtin.copy:
    content: "{{ item.content }}"
    dest: "{{ item.name | armada.apparmor.controller_path('profiles', host=item.hosts | join(', '), allowed=wanted) }}"
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: O(directory)/name.
  type: str
"""


def controller_path(name, directory, host, what="file name", allowed=None, form=None):
    """Filter entry point; a refused name becomes AnsibleFilterError (the task fails, naming host and value)."""
    try:
        if form is not None and form not in FORMS:
            raise UnsafeName("controller_path: unknown form %r (one of %s)" % (form, ", ".join(sorted(FORMS))))
        return target_path(str(directory), name, str(host), str(what), allowed=allowed, form=form)
    except UnsafeName as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """armada.apparmor.controller_path"""

    def filters(self):
        return {"controller_path": controller_path}
