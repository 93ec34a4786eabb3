# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter armada.apparmor.attach_evidence (and program_entries, restart_plan, converged, blocked_reason): thin
adapters over module_utils/attach.py, where the decisions live."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils import attach
from ansible_collections.armada.apparmor.plugins.module_utils.report import processes_by_profile

DOCUMENTATION = r"""
name: attach_evidence
short_description: Per profile, whether a pass has seen it at work (events, confined processes) and is attached
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - For each profile name of the input, C(exercised) (sticky - true once any pass read an event of it or saw a
    process confined by it), C(confined) and C(unconfined) (processes of its programs running confined /
    unconfined in this pass). The update role writes these into the convergence record; a profile that is not
    exercised, or whose program runs unconfined, does not converge.
  - Also provides C(program_entries) (validated C(apparmor_programs) entries), C(restart_plan) (services to
    restart, programs not attached), C(profile_processes) (confined / unconfined processes per profile),
    C(converged) and C(blocked_reason).
positional: _input
options:
  _input:
    description: Profile names.
    type: list
    elements: str
    required: true
  old:
    description: The profiles of the previous convergence record.
    type: dict
    default: {}
  events:
    description: Events of this pass (kept and new); those of a profile or of its children count.
    type: list
    elements: dict
    default: []
  processes:
    description: The status module's C(processes) (program path to counts).
    type: dict
    default: {}
  programs:
    description: The C(apparmor_programs) entries (to map programs to profiles).
    type: list
    elements: raw
    default: []
"""

EXAMPLES = r"""
- name: Evidence of this pass
  ansible.builtin.set_fact:
    evidence: "{{ ['/usr/sbin/nginx'] | armada.apparmor.attach_evidence(old={}, events=update_events,
                  processes=update_status.processes, programs=apparmor_programs) }}"
"""

RETURN = r"""
_value:
  description: Profile name to C({exercised, confined, unconfined}).
  type: dict
"""


def program_entries(programs):
    """apparmor_programs entries as [{path, profile, exercise, service}], or a clear error."""
    try:
        return [attach.program_entry(p) for p in programs or []]
    except attach.ProgramError as exc:
        raise AnsibleFilterError(str(exc)) from None


def attach_evidence(names, old=None, events=None, processes=None, programs=None):
    entries = program_entries(programs)
    by_profile = processes_by_profile({e["path"]: e["profile"] for e in entries}, processes)
    seen = set()
    for ev in events or []:
        profile = ev.get("profile") if isinstance(ev, dict) else None
        if isinstance(profile, str):
            seen.add(profile.split("//", 1)[0])
    old = old if isinstance(old, dict) else {}
    return {n: attach.evidence(old.get(n), n in seen, by_profile.get(n)) for n in names}


def profile_processes(programs, processes):
    """{profile: {confined, unconfined}} from apparmor_programs entries and the status module's processes."""
    return processes_by_profile({e["path"]: e["profile"] for e in program_entries(programs)}, processes)


def restart_plan(programs, processes):
    try:
        return attach.restart_plan(programs, processes)
    except attach.ProgramError as exc:
        raise AnsibleFilterError(str(exc)) from None


def converged(evidence, passes, quiet_passes, threshold):
    """Converged, given this pass's evidence of the profile ({exercised, unconfined}) and its pass counts."""
    return attach.is_converged(int(passes), int(quiet_passes), int(threshold), evidence.get("exercised") is True,
                               int(evidence.get("unconfined") or 0))


class FilterModule:
    """armada.apparmor.attach_evidence, program_entries, restart_plan, profile_processes, converged,
    blocked_reason"""

    def filters(self):
        return {"attach_evidence": attach_evidence, "program_entries": program_entries,
                "restart_plan": restart_plan, "profile_processes": profile_processes, "converged": converged,
                "blocked_reason": attach.blocked_reason}
