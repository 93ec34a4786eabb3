# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the update pass and the enforce plan (thin adapters over module_utils/passplan.py)."""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils import attach, passplan
from ansible_collections.armada.apparmor.plugins.module_utils.hostops import conventional_file_name

DOCUMENTATION = r"""
name: convergence_record
short_description: The convergence record of a host after an update pass (and the other decisions of a pass)
version_added: 0.2.0
author: armada.apparmor contributors
description:
  - Takes the record the host kept from earlier passes (host data - only its numbers are read) and returns the
    new one, C({version, profiles - {NAME - {passes, quiet_passes, rules_added_last, pending, threshold,
    exercised, confined, unconfined, converged}}}). A profile counts when it is tracked, kept in the record or
    reported in this pass, and defined on the host; it is converged after at least 2 passes of which the last
    O(threshold) added no rule, once some pass saw it at work (O(events), or a process confined by it in
    O(processes)) and while no process of its program runs unconfined.
  - The same file provides the other decisions of the update and enforce roles, each a thin adapter over
    C(plugins/module_utils/passplan.py) - C(tracked_profiles) (profile names of C(programs) and C(profiles)),
    C(host_profile_files) (profile name to file, from M(armada.apparmor.status)), C(fetch_names) (controller file
    name to host file of the profiles a pass fetches), C(pass_counts) (allowed / denied / pending per profile) and
    C(enforce_plan) (per profile enforce, skip with the reason, or none).
positional: _input
options:
  _input:
    description: The host's previous record (C({}) when there is none).
    type: dict
    required: true
  tracked:
    description: The tracked profile names (C(tracked_profiles)).
    type: list
    elements: str
    required: true
  result:
    description: This pass's result (C(armada.apparmor.to_rules)).
    type: dict
    required: true
  host_files:
    description: The profiles defined on the host (C(host_profile_files)).
    type: dict
    required: true
  changed:
    description: Profiles that got a new rule on any host in this pass.
    type: list
    elements: str
    required: true
  threshold:
    description: Passes in a row without a new rule needed to converge.
    type: int
    required: true
  events:
    description: This pass's events (kept and new); a profile that logged one (or whose C(//) child did) is
      exercised.
    type: list
    elements: dict
    default: []
  processes:
    description: M(armada.apparmor.status)'s C(processes) (program path to confined / unconfined counts).
    type: dict
    default: {}
  programs:
    description: The C(apparmor_programs) entries (to map programs to profiles).
    type: list
    elements: raw
    default: []
"""

EXAMPLES = r"""
- name: Count this pass
  ansible.builtin.set_fact:
    record: >-
      {{ record_old | armada.apparmor.convergence_record(tracked=tracked, result=result, host_files=host_files,
                                                         changed=changed_profiles, threshold=1) }}

- name: Decide per profile - enforce, or skip with the reason
  ansible.builtin.set_fact:
    plan: "{{ status | armada.apparmor.enforce_plan(record, programs=[], profiles=['/usr/bin/man'], force=false) }}"
"""

RETURN = r"""
_value:
  description: The record, C({version, profiles}).
  type: dict
"""


def _mapping(value, what, name):
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError("%s: %s must be a mapping, got %s" % (name, what, type(value).__name__))
    return value


def _names(value, what, name):
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, Mapping)) for v in value):
        raise AnsibleFilterError("%s: %s must be a list of names, got %r" % (name, what, value))
    return list(value)


def convergence_record(old, tracked, result, host_files, changed, threshold, events=None, processes=None,
                       programs=None):
    """Filter entry point: the new convergence record of a host."""
    try:
        return passplan.convergence_record(old, _names(tracked, "tracked", "convergence_record"),
                                           _mapping(result, "result", "convergence_record"),
                                           _mapping(host_files, "host_files", "convergence_record"),
                                           _names(changed, "changed", "convergence_record"), threshold,
                                           events=events if isinstance(events, list) else [],
                                           processes=processes, programs=programs or [])
    except attach.ProgramError as exc:
        raise AnsibleFilterError(str(exc)) from None


def tracked_profiles(programs, profiles, record=None):
    """Filter entry point: profile names of programs (paths or mappings) and profiles, then the Px targets the
    convergence record keeps for them."""
    return passplan.tracked_profiles(_names(programs or [], "programs", "tracked_profiles"),
                                     _names(profiles or [], "profiles", "tracked_profiles"), record)


def host_profile_files(status):
    """Filter entry point: {profile: file} from a status result."""
    return passplan.host_profile_files(_mapping(status, "the status result", "host_profile_files"))


def fetch_names(tracked, result, host_files):
    """Filter entry point: {controller file name: host file} of the profiles to fetch."""
    return passplan.fetch_names(_names(tracked, "tracked", "fetch_names"), _mapping(result, "result", "fetch_names"),
                                _mapping(host_files, "host_files", "fetch_names"), conventional_file_name)


def pass_counts(result, answers, pending_path, fetch_path):
    """Filter entry point: the counts line per profile and for the fleet."""
    return passplan.pass_counts(_mapping(result, "result", "pass_counts"), answers, pending_path, fetch_path)


def enforce_plan(status, record, programs, profiles, force):
    """Filter entry point: the enforce decision per profile."""
    return passplan.enforce_plan(_mapping(status, "the status result", "enforce_plan"), record,
                                 _names(programs or [], "programs", "enforce_plan"),
                                 _names(profiles or [], "profiles", "enforce_plan"), bool(force))


class FilterModule:
    """armada.apparmor.convergence_record and the other decisions of a pass"""

    def filters(self):
        return {"convergence_record": convergence_record, "tracked_profiles": tracked_profiles,
                "host_profile_files": host_profile_files, "fetch_names": fetch_names,
                "pass_counts": pass_counts, "enforce_plan": enforce_plan}
