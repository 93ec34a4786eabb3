# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter armada.apparmor.merge_events: fold the events of many hosts (thin adapter over fleet.py)."""

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils.fleet import merge_events

DOCUMENTATION = r"""
name: merge_events
short_description: Fold the AppArmor events of many hosts into one list with per-host counts
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - Folds identical accesses (same kind, profile and identity fields, see docs/events.md) reported by
    different hosts into one event with C(hosts) (host -> count) and the summed C(count). Times are the
    minimum/maximum, operations and modes are unioned, the C(id) is recomputed fleet-wide.
  - With a mapping (hostvars, or host -> events), the host of an event is the inventory host whose data
    held it, and only that host counts (consensus, C(min_hosts) of M(armada.apparmor.to_rules)). An
    event's own C(host) / C(hosts) fields (C(node=) of remote-aggregated logs) are written by the
    reporting host, so they are kept as information in C(origins) (origin -> count, present when some
    origin differs from the reporting host) and never counted.
  - With a list, no reporter is known and the events' own C(hosts) / C(host) are used (for lists the
    controller built, such as a merged result merged again).
positional: _input
options:
  _input:
    description:
      - A list of per-host event lists (or module results with C(events)), a flat list of events, or a
        mapping host -> events / result / hostvars (use I(var) to name the registered variable).
    type: raw
    required: true
  var:
    description:
      - With hostvars-shaped input, the (dotted) name of the variable holding each host's result, e.g.
        C(denials) or C(denials.events). Hosts without it (unreachable, skipped) are left out.
    type: str
"""

EXAMPLES = r"""
- name: Merge what every host reported
  ansible.builtin.set_fact:
    fleet_events: "{{ hostvars | armada.apparmor.merge_events(var='denials') }}"
  run_once: true

- name: From a list of per-host results
  ansible.builtin.debug:
    msg: "{{ [web1_events, web2_events] | armada.apparmor.merge_events }}"
"""

RETURN = r"""
_value:
  description: The merged events (docs/events.md) with C(hosts) and summed C(count), sorted by kind, profile, path.
  type: list
  elements: dict
"""



def merge_events_filter(data, var=None):
    """Filter entry point; input errors become AnsibleFilterError."""
    try:
        return merge_events(data, var=var)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("merge_events: %s" % exc) from None


class FilterModule:
    """armada.apparmor.merge_events"""

    def filters(self):
        return {"merge_events": merge_events_filter}
