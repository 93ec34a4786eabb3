# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for review rounds (thin adapters over rounds.py): answers of every round, the round's names,
kept events minus the settled ones."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils import rounds

DOCUMENTATION = r"""
name: answer_rounds
short_description: Every apparmor_answers* variable in name order; review rounds may not contradict each other
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - Takes a mapping of variable name to its list of answers and returns one list, in variable-name order (pass ids
    sort by time).
  - A question (same C(profile) and C(match)) decided in two review rounds (variables O(prefix) or
    C(<prefix>_<pass id>)) with different decisions fails, naming both variables; the same decision pasted in two
    rounds is kept once. C(answer=pending) entries decide nothing and never conflict.
  - The same plugin file provides C(pending_round) (C({var, file}) of a pass's pending file from a pass id) and
    C(unsettled_events) (a host's kept events minus those this pass's answers settled).
positional: _input
options:
  _input:
    description: Mapping of variable name to its list of answers.
    type: dict
    required: true
  prefix:
    description: Variables that are review rounds (the pending files' variables).
    type: str
    default: apparmor_answers_pending
"""

EXAMPLES = r"""
- name: Every answers variable of this host, rounds checked
  ansible.builtin.set_fact:
    answers: >-
      {{ dict(names | zip(query('ansible.builtin.vars', *names))) | armada.apparmor.answer_rounds }}
  vars:
    names: "{{ lookup('ansible.builtin.varnames', '^apparmor_answers', wantlist=True) }}"
"""

RETURN = r"""
_value:
  description: The answers, flattened in variable-name order.
  type: list
  elements: raw
"""


def answer_rounds(variables, prefix=rounds.ROUND_PREFIX):
    """Filter entry point."""
    try:
        return rounds.combine(variables, str(prefix))
    except rounds.RoundsError as exc:
        raise AnsibleFilterError("answers: %s" % exc) from None


def pending_round(pid, path, prefix=rounds.ROUND_PREFIX):
    """{var, file} of the pending file of pass ``pid`` (empty = the controller's time now; file empty when
    ``path`` is)."""
    try:
        pid = pid or rounds.pass_id()
        return {"var": rounds.round_var(str(prefix), str(pid)),
                "file": rounds.round_file(str(path), str(pid)) if path else ""}
    except rounds.RoundsError as exc:
        raise AnsibleFilterError("pending file: %s" % exc) from None


def unsettled_events(kept, result, written):
    """The kept events minus those settled in this pass in a profile written on this host."""
    try:
        return rounds.unsettled(list(kept or []), result or {}, list(written or []))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("unsettled_events: %s" % exc) from None


class FilterModule:
    """armada.apparmor.answer_rounds, pending_round, unsettled_events"""

    def filters(self):
        return {"answer_rounds": answer_rounds, "pending_round": pending_round, "unsettled_events": unsettled_events}
