# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters armada.apparmor.fetch_layout and fetched_texts: where fetched profiles go on the controller
(thin adapters over fetched.py)."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils import fetched
from ansible_collections.armada.apparmor.plugins.module_utils.controller_paths import UnsafeName

DOCUMENTATION = r"""
name: fetch_layout
short_description: The controller files of the fetched profiles (one fleet-wide copy each, per-host copies apart)
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - Takes a mapping of host to that host's C(fetched_texts) and returns C([{path, content, hosts, per_host}]).
  - Per profile, and per C(local/) include written for a package profile, the first host's text (in O(order)) is the
    fleet-wide copy (C(DIR/NAME), C(DIR/local/NAME)); a host whose text differs gets C(DIR/.per-host/HOST/NAME)
    (C(.../local/NAME)), a hidden directory the deploy role never reads.
  - Every name is one the controller asked for and a plain file name, and no path component below O(directory)
    may be a symlink (controller_path's rules); a refusal fails the task naming the host, nothing is written.
  - 'The same plugin file provides C(fetched_texts): a host''s output lines C(NAME<TAB>BASE64) and
    C(local<TAB>NAME<TAB>BASE64) as C({profile: {name: text}, local: {name: text}}), only for the names asked for.'
positional: _input, directory
options:
  _input:
    description: 'C({host: {profile: {name: text}, local: {name: text}}}).'
    type: dict
    required: true
  directory:
    description: The controller directory (trusted); empty gives an empty list.
    type: str
    required: true
  order:
    description: Host order (the play's); the first host holding a profile gives its fleet-wide copy.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Plan the controller files
  ansible.builtin.set_fact:
    plan: "{{ texts_by_host | armada.apparmor.fetch_layout('profiles', order=ansible_play_hosts) }}"
"""

RETURN = r"""
_value:
  description: The files to write.
  type: list
  elements: dict
"""


def fetch_layout(texts, directory, order=None):
    """Filter entry point."""
    try:
        return fetched.layout(texts or {}, str(directory or ""), list(order) if order is not None else None)
    except UnsafeName as exc:
        raise AnsibleFilterError(str(exc)) from None


def fetched_texts(lines, wanted, host):
    """A host's profile texts, keyed by the names the controller asked for."""
    try:
        return fetched.read_texts([str(line) for line in lines or []], [str(n) for n in wanted or []], str(host))
    except UnsafeName as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """armada.apparmor.fetch_layout, fetched_texts"""

    def filters(self):
        return {"fetch_layout": fetch_layout, "fetched_texts": fetched_texts}
