# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter armada.apparmor.program_entries (and restart_plan, profile_processes): thin adapters over
module_utils/attach.py, where the decisions live."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils import attach

DOCUMENTATION = r"""
name: program_entries
short_description: The apparmor_programs entries, validated, as {path, profile, exercise, service}
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - Each entry of C(apparmor_programs) (a path, or a mapping with C(path) and the optional C(profile),
    C(exercise), C(service)) as a mapping with all four keys (C("") when not given; C(profile) defaults to
    C(path)). An unknown key, a relative path or a C(service) that is not a systemd unit name fails with a
    message naming the entry.
  - The same file provides C(restart_plan) (the services C(learn) restarts because a program runs unconfined,
    and the programs left "not attached") and C(profile_processes) (processes per profile, confined /
    unconfined, from M(armada.apparmor.status)'s C(processes)).
positional: _input
options:
  _input:
    description: The C(apparmor_programs) entries.
    type: list
    elements: raw
    required: true
"""

EXAMPLES = r"""
- name: Program paths to scan for processes
  ansible.builtin.debug:
    msg: "{{ apparmor_programs | armada.apparmor.program_entries | map(attribute='path') | list }}"
"""

RETURN = r"""
_value:
  description: One C({path, profile, exercise, service}) per entry.
  type: list
  elements: dict
"""


def _checked(function, *args):
    try:
        return function(*args)
    except attach.ProgramError as exc:
        raise AnsibleFilterError(str(exc)) from None


def program_entries(programs):
    """apparmor_programs entries as [{path, profile, exercise, service}], or a clear error."""
    return _checked(lambda ps: [attach.program_entry(p) for p in ps or []], programs)


def restart_plan(programs, processes):
    """{restart: [services], not_attached: [{path, profile, unconfined}]}."""
    return _checked(attach.restart_plan, programs, processes)


def profile_processes(programs, processes):
    """{profile: {confined, unconfined}} from apparmor_programs entries and the status module's processes."""
    return _checked(attach.profile_processes, programs, processes)


class FilterModule:
    """armada.apparmor.program_entries, restart_plan, profile_processes"""

    def filters(self):
        return {"program_entries": program_entries, "restart_plan": restart_plan,
                "profile_processes": profile_processes}
