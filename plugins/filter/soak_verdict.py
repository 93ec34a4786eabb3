# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter armada.apparmor.soak_verdict: what the denials of an enforce soak mean (thin adapter over provenance.py)."""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils.provenance import soak_verdict

DOCUMENTATION = r"""
name: soak_verdict
short_description: Decide what the DENIED records of an enforce soak mean - roll back, stop, or go on
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - Takes the result of M(armada.apparmor.denials) read after an enforce soak and splits its events into
    C(trusted) ones (at least one record from auditd's log, the kernel ring buffer or a journal entry whose
    trusted fields prove kernel, audit or dbus-daemon origin) and C(unverified) ones (every record from a
    source any local user can write, such as a syslog file - C(forgeable) events).
  - C(action) is C(rollback) when any trusted event is there; C(continue) when there is none, or only
    unverified ones while the host has a trusted source (they are reported, nothing is undone); C(stop) when
    only unverified ones are there and the host has no trusted source (C(source_trust.only_forgeable)) - the
    host is neither rolled back nor trusted, and the rollout stops after that batch.
  - A forged record can therefore never roll a rollout back, and on a host that cannot tell a forgery from a
    real denial it stops the rollout for a person instead of being ignored. See docs/security.md, I(Forged records).
positional: _input
options:
  _input:
    description: The registered result of M(armada.apparmor.denials) (C(events) and C(source_trust)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    verdict: "{{ soak_denials | armada.apparmor.soak_verdict }}"
"""

RETURN = r"""
_value:
  description: C(action) (rollback, stop, continue), C(reason), C(trusted) and C(unverified) (the events).
  type: dict
"""


def soak_verdict_filter(result):
    """Filter entry point: a denials result in, the verdict out."""
    if not isinstance(result, Mapping):
        raise AnsibleFilterError("soak_verdict: expected the result of armada.apparmor.denials, got %s"
                                 % type(result).__name__)
    events = result.get("events") or []
    if not isinstance(events, list) or not all(isinstance(e, Mapping) for e in events):
        raise AnsibleFilterError("soak_verdict: 'events' must be a list of events")
    trust = result.get("source_trust")
    # without the module's word on its sources, assume nothing could be verified
    only_forgeable = trust.get("only_forgeable", True) if isinstance(trust, Mapping) else True
    return soak_verdict(events, bool(only_forgeable))


class FilterModule:
    """armada.apparmor.soak_verdict"""

    def filters(self):
        return {"soak_verdict": soak_verdict_filter}
