# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter armada.apparmor.to_rules: events + answers -> rules per profile (thin adapter over answers.py)."""

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob, breadth
from ansible_collections.armada.apparmor.plugins.module_utils.answers import AnswersError, to_rules

DOCUMENTATION = r"""
name: to_rules
short_description: Turn AppArmor events into profile rules using reviewed answers
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - Applies the answers kept in inventory (see docs/answers.md) to AppArmor events (from the
    C(armada.apparmor.denials) module or the M(armada.apparmor.merge_events) filter) and returns, per
    profile, the rules to add (structured and rendered for the target ABI), the deny rules, the ignored
    events and the pending events.
  - A C(deny) answer always wins over an C(allow) that also matches; such conflicts are listed in
    C(conflicts). Otherwise the most specific answer wins (exact profile name, more match keys, longer
    literal pattern), ties go to the earlier answer.
  - Invalid answers (unknown keys, a glob that does not cover its match, an exec mode not allowed) fail
    the task with every problem and the offending answer; nothing is computed from a half-valid list.
positional: _input, answers
options:
  _input:
    description:
      - The events. A flat list of events (one host's, or the output of M(armada.apparmor.merge_events)),
        a reader/module result with an C(events) key, or per-host data as M(armada.apparmor.merge_events)
        accepts it (merged first).
    type: raw
    required: true
  answers:
    description:
      - The combined answers list. Roles concatenate every variable whose name starts with
        C(apparmor_answers); a list of lists is flattened in order.
    type: list
    elements: raw
    default: []
  default:
    description:
      - What happens to events no answer matches. C(pending) keeps them for review; C(allow) allows them
        (learning runs only; exec events still need an answer with C(exec_mode)).
    type: str
    choices: [pending, allow]
    default: pending
  abi:
    description: The AppArmor ABI the rules are rendered for (C(3.0) compiles with AppArmor 3.x userspace).
    type: str
    choices: ['3.0', '4.0', '5.0']
    default: '3.0'
  fold_children:
    description:
      - Attribute events of C(//null-PROGRAM) children where the parent's exec answer runs the program (as
        aa-logprof does once the exec is answered) - its own profile for C(Px)/C(Pix)/C(PUx), a child profile for
        C(Cx)/C(Cix), the parent for C(ix) or an unanswered exec. With C(false) they stay children (written as
        hats), like named hats always do.
    type: bool
    default: true
  min_hosts:
    description:
      - Consensus. An allow (by an answer or by I(default=allow)) is only applied to events seen by at least
        this many of the hosts that reported that profile in this run; the rest become pending with their
        host list. Deny and ignore are never delayed.
    type: int
    default: 1
  variables:
    description:
      - AppArmor variables (a mapping such as C(HOME) to C([/home/*/, /root/])) used to expand C(@{VAR})
        in answers. When omitted they are read from I(tunables_dir) if it exists; a pattern with an
        unknown variable matches nothing (the event stays pending).
    type: dict
  tunables_dir:
    description:
      - Directory holding C(tunables/global) on the controller, used when I(variables) is omitted.
      - Its C(abstractions/) are read to refuse an C(include) answer whose abstraction grants whole trees
        (see C(broad) in docs/answers.md); without them includes are not judged.
    type: path
    default: /etc/apparmor.d
  exec_qualifiers:
    description:
      - Extends aa-logprof's exec qualifiers table (the C([qualifiers]) of logprof.conf, shipped) - which exec
        modes each program may be given. Keys are program paths (an exact entry replaces the shipped one) or
        AppArmor globs, values letters out of C(ipcnu) (C(i) inherit, C(p) own profile, C(c) child, C(n)
        named transition, C(u) unconfined). An answer giving a program a mode its letters do not allow is an
        error; pending exec events list only the allowed modes.
    type: dict
    default: {}
notes:
  - Events DENIED by an enforcing profile are never allowed by I(default=allow) (aa-logprof proposes Deny for
    them); they stay pending with C(possible_intrusion) unless an answer matches them.
  - An allowed C(change_hat) event adds the hat to the profile (the child entry gets C(add_hat)).
  - Allow answers whose C(glob), C(include) or C(profile)/C(match) cover whole trees (C(/**), C(/*), writes
    to C(@{HOME}/**), C(profile="*") with C(match={})) are refused unless they set C(broad=true).
"""

EXAMPLES = r"""
- name: Rules for the fleet from the merged events and every apparmor_answers* variable
  ansible.builtin.set_fact:
    apparmor_rules: >-
      {{ hostvars | armada.apparmor.merge_events(var='denials')
         | armada.apparmor.to_rules(apparmor_answers_all, min_hosts=2) }}

- name: A learning run on one host
  ansible.builtin.debug:
    msg: "{{ denials.events | armada.apparmor.to_rules([], default='allow') }}"
"""

RETURN = r"""
_value:
  description: The rules and the leftovers, per profile.
  type: dict
  contains:
    abi:
      description: The ABI the C(text) of every rule is rendered for.
      type: str
    profiles:
      description:
        - Keyed by top-level profile name. Each entry has C(rules) (allow rules and includes), C(deny),
          C(ignored) (events, with C(reason)), C(pending) (events with C(reason), C(hosts) and C(label)),
          C(unsupported) (events the ABI cannot express), C(hosts) (that reported the profile) and
          C(children) (same shape, keyed by child/hat name, with C(hat=true), or C(add_child={attachment}) for
          the child profile of a C(Cx) exec rule).
        - A profile a C(Px) exec rule runs a program in has C(exec_target) (C(path), C(parents)); its parents list
          it in C(exec_targets). The update role creates such a profile when the host has none.
        - Each rule is the structured rule plus C(text) (the rule line), C(events) (ids), C(hosts) and
          C(answers) (answer indexes, or C(default)).
      type: dict
    conflicts:
      description: Events an allow and a deny answer both matched (deny won), with both answers.
      type: list
      elements: dict
    errors:
      description: Per-event problems (for example an answer glob that does not cover the event path).
      type: list
      elements: dict
    stats:
      description: Counts of events, allowed, denied, ignored, pending, unsupported, conflicts.
      type: dict
"""



def _variables(variables, tunables_dir):
    if variables is not None:
        if not isinstance(variables, dict):
            raise AnsibleFilterError("to_rules: variables must be a mapping of NAME: [values]") from None
        return dict((k, v if isinstance(v, list) else [v]) for k, v in variables.items())
    if tunables_dir and os.path.isfile(os.path.join(tunables_dir, "tunables", "global")):
        try:
            return aaglob.load_tunables(tunables_dir)
        except Exception as exc:
            raise AnsibleFilterError("to_rules: cannot read tunables from %s: %s" % (tunables_dir, exc)) from None
    return {}


def to_rules_filter(events, answers=None, default="pending", abi="3.0", fold_children=True, min_hosts=1,
                    variables=None, tunables_dir="/etc/apparmor.d", exec_qualifiers=None):
    """Filter entry point; engine errors become AnsibleFilterError with the full explanation."""
    try:
        return to_rules(events, answers or [], default=default, abi=str(abi), fold_children=bool(fold_children),
                        min_hosts=int(min_hosts) if not isinstance(min_hosts, bool) else min_hosts,
                        variables=_variables(variables, tunables_dir), qualifiers=exec_qualifiers or None,
                        include_rules=breadth.include_reader(tunables_dir))
    except AnswersError as exc:
        raise AnsibleFilterError("to_rules: %s" % exc) from None
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("to_rules: %s" % exc) from None


class FilterModule:
    """armada.apparmor.to_rules"""

    def filters(self):
        return {"to_rules": to_rules_filter}
