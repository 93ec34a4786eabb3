# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter armada.apparmor.pending_answers: pending events as a ready-to-edit answers block."""
from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils import suggest

DOCUMENTATION = r"""
name: pending_answers
short_description: The pending events of to_rules as a ready-to-edit YAML block of answers
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - Writes every pending event of a M(armada.apparmor.to_rules) result as an answer in the answers schema
    (docs/answers.md) with C(answer=pending), the event's match, and aa-logprof-style suggestions - globs
    (C(/a/b/*), C(/a/b/*.ext), C(/a/**), C(/a/**.ext), version-globbed C(.so) names, C(/proc/*/),
    C(/home/*/)), abstractions that already cover the event, exec modes - plus the hosts that saw it and
    their counts.
  - Abstractions are only suggested when the rule in them that covers the event is no broader than the
    broadest suggested glob (aa-logprof would pick C(abstractions/ubuntu-browsers.d/user-files) for
    C(/srv/www/x) because it grants C(/srv/** r); that is not suggested).
  - The informational keys (suggestions, hosts, counts, reason, id) are part of the answers schema, so a
    reviewed block pastes back into group_vars/host_vars as is.
positional: _input
options:
  _input:
    description: The result of M(armada.apparmor.to_rules).
    type: dict
    required: true
  var_name:
    description:
      - The variable the block defines; it should start with C(apparmor_answers) so the roles pick it up.
        Empty gives a bare YAML list.
    type: str
    default: apparmor_answers_pending
  abstractions_dir:
    description:
      - Directory holding C(abstractions/) on the controller, for include suggestions. Missing directory
        or empty value = no include suggestions.
    type: path
    default: /etc/apparmor.d
  header:
    description: Start with a comment explaining how to review the block.
    type: bool
    default: true
  format:
    description: C(yaml) returns the text; C(list) returns the entries as data.
    type: str
    choices: [yaml, list]
    default: yaml
"""

EXAMPLES = r"""
- name: Write the pending answers for review
  ansible.builtin.copy:
    content: "{{ apparmor_rules | armada.apparmor.pending_answers }}"
    dest: "{{ inventory_dir }}/group_vars/all/apparmor_answers_pending.yml"
    mode: "0644"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
_value:
  description: The YAML text (format=yaml) or the list of answer entries (format=list).
  type: raw
"""



def pending_answers_filter(result, var_name="apparmor_answers_pending", abstractions_dir="/etc/apparmor.d",
                           header=True, format="yaml"):
    """Filter entry point."""
    index = None
    if abstractions_dir and os.path.isdir(os.path.join(abstractions_dir, "abstractions")):
        index = suggest.AbstractionIndex(abstractions_dir)
    try:
        if format == "list":
            return suggest.pending_list(result, index)
        if format != "yaml":
            raise ValueError("format must be yaml or list, got %r" % (format,))
        return suggest.pending_yaml(result, var_name=var_name or None, abstractions=index, header=bool(header))
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("pending_answers: %s" % exc) from None


class FilterModule:
    """armada.apparmor.pending_answers"""

    def filters(self):
        return {"pending_answers": pending_answers_filter}
