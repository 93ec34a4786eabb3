# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter armada.apparmor.pending_answers: pending events as a ready-to-edit answers block."""

import datetime
import os
import re

import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.module_utils import suggest

DOCUMENTATION = r"""
name: pending_answers
short_description: The pending events of to_rules as a ready-to-edit YAML block of answers
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - Writes the pending events of a M(armada.apparmor.to_rules) result as questions in the answers schema
    (docs/answers.md) with C(answer=pending), grouped by profile - one question per profile and access with
    the union of the requested masks (as aa-logprof asks), a program's own read under its exec folded into
    the exec question - with aa-logprof-style suggestions - globs (C(/a/b/*), C(/a/b/*.ext), C(/a/**),
    C(/a/**.ext), version-globbed C(.so) names, C(/proc/*/), C(/home/*/)), abstractions that already cover
    the event, exec modes - and, for the reviewer, the rule an C(allow) writes (C(rule)), C(DENIED) or
    C(ALLOWED) (C(logged)), the programs (C(comm)), first and last seen, the hosts and their counts.
  - Every entry is written with the C(!unsafe) tag, so Ansible never templates any string in it (profile,
    match values, rule, comm, host names, reasons... came from hosts) when the block is read from
    inventory; the profile is glob-escaped, so a label such as C(tracked//*) only ever matches itself.
  - Abstractions are only suggested when the rule in them that covers the event is no broader than the
    broadest suggested glob (aa-logprof would pick C(abstractions/ubuntu-browsers.d/user-files) for
    C(/srv/www/x) because it grants C(/srv/** r); that is not suggested).
  - The informational keys (suggestions, rule, logged, comm, first_seen, last_seen, hosts, counts, reason,
    id) are part of the answers schema, so a reviewed block pastes back into group_vars/host_vars as is.
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
  description:
    - The YAML text (format=yaml) or the list of questions as data (format=list; first_seen/last_seen are
      epoch seconds there, ISO 8601 UTC in the text).
  type: raw
"""



HEADER = """\
# Pending AppArmor answers (armada.apparmor.pending_answers): one question per profile and access.
# Review each entry: set `answer:` to allow, deny or ignore (or leave it pending), optionally set
# `glob:` to one of suggestions.globs, `include:` to one of suggestions.includes, `exec_mode:` for
# exec questions (an exec answer also covers the program's own read), `owner:`/`audit:`.
# `rule:` is what `answer: allow` writes as the entry stands (exec: with exec_mode ix).
# suggestions, rule, logged, comm, first_seen, last_seen, hosts, counts, reason and id are
# informational and may stay: paste the reviewed block into group_vars/host_vars as is (docs/answers.md).
# The update role names this file and its variable after the pass: save it under its own name in
# group_vars/all/, next to earlier rounds, so every round's answers keep applying (docs/answers.md).
# Each entry is tagged !unsafe: its values came from the hosts and Ansible never templates them.
"""
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_FLOW_KEYS = ("match", "counts", "hosts", "logged", "comm", "exec_modes", "sources")


class _Unsafe(dict):
    """One question, written as a ``!unsafe`` mapping: Ansible's loader marks every string inside it (keys
    too) as never to be templated, whatever a host put there. Tagging the mapping rather than each string
    keeps quoting meaningful: ansible-core 2.19 re-resolves a tagged scalar, so ``!unsafe '123'`` would read
    back as a number and ``!unsafe 'yes'`` as a boolean."""


class _Flow(dict):
    """A short mapping written on one line."""


class _FlowList(list):
    """A short list written on one line."""


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml's emitter when PyYAML has it
    """Block style, no anchors (shared values are written out), no folding of long paths."""

    def ignore_aliases(self, data):
        return True


_Dumper.add_representer(_Unsafe, lambda d, v: d.represent_mapping("!unsafe", v))
_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def _iso(value):
    """Epoch seconds as ISO 8601 UTC, written as a string (a bare timestamp would read back as a datetime)."""
    return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value, key=None):
    """Plain Python types for PyYAML (Ansible hands filters tagged str/dict subclasses), short lists on one
    line, epoch seconds as ISO text."""
    if isinstance(value, dict):
        out = dict((str(k), _plain(v, str(k))) for k, v in value.items())
        return _Flow(out) if key in _FLOW_KEYS else out
    if isinstance(value, (list, tuple)):
        items = [_plain(v, key) for v in value]
        return _FlowList(items) if key in _FLOW_KEYS else items
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or value is None:
        return value
    if key in ("first_seen", "last_seen") and isinstance(value, (int, float)):
        return _iso(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError("cannot write %s in the pending file" % type(value).__name__)


def _has_surrogate(value):
    """Does ``value`` hold a lone surrogate (a byte that is not UTF-8 in a host's name)? YAML cannot carry one:
    Ansible's loader refuses the whole file, so one hostile name would make the pasted block unreadable."""
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_surrogate(v) for v in value)
    return isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value)


def _unwritable(entry):
    """The comment written instead of a question YAML cannot carry: what it is about and how to answer it."""
    match = entry.get("match") or {}
    ids = entry.get("id")
    return ["NOT WRITTEN: a %s question of this profile names bytes that are not UTF-8 (event id %s);"
            % (match.get("kind"), ascii(ids)),
            "YAML cannot hold them. Answer it by hand with a glob over the name, e.g. match.path: %s"
            % ascii(_glob_hint(match.get("path")))]


def _glob_hint(path):
    if not isinstance(path, str):
        return None
    return "".join("?" if "\ud800" <= c <= "\udfff" else c for c in path)


def pending_text(entries, var_name="apparmor_answers_pending", header=True):
    """The questions as YAML text for review: grouped by profile under a comment, host strings !unsafe."""
    if var_name and not _VAR_NAME.match(var_name):
        raise ValueError("var_name %r is not a valid Ansible variable name" % var_name)
    lines = [HEADER.rstrip("\n")] if header else []
    if not entries:
        lines.append("%s: []" % var_name if var_name else "[]")
        return "\n".join(lines) + "\n"
    indent = "  " if var_name else ""
    if var_name:
        lines.append("%s:" % var_name)
    start = len(lines)
    written = 0
    current = None
    for entry in entries:
        if entry["profile"] != current:
            current = entry["profile"]
            count = sum(1 for e in entries if e["profile"] == current)
            label = " ".join(repr(current)[1:-1].split())
            lines.append("")
            lines.append("%s# ---- profile %s: %d question(s)" % (indent, label, count))
        if _has_surrogate(entry):
            lines.extend(indent + "# " + line for line in _unwritable(entry))
            continue
        text = yaml.dump([_Unsafe(_plain(entry))], Dumper=_Dumper, default_flow_style=False, sort_keys=False,
                         width=100000, allow_unicode=False)
        for line in text.splitlines():
            if re.match(r"^  answer: pending$", line):
                line += "  # allow | deny | ignore | pending"
            lines.append(indent + line)
        written += 1
    if not written:  # only comments: an empty list, not null
        if var_name:
            lines[start - 1] += " []"
        else:
            lines.insert(start, "[]")
    return "\n".join(lines) + "\n"


def pending_answers_filter(result, var_name="apparmor_answers_pending", abstractions_dir="/etc/apparmor.d",
                           header=True, format="yaml"):
    """Filter entry point."""
    index = None
    if abstractions_dir and os.path.isdir(os.path.join(abstractions_dir, "abstractions")):
        index = suggest.AbstractionIndex(abstractions_dir)
    try:
        if format not in ("yaml", "list"):
            raise ValueError("format must be yaml or list, got %r" % (format,))
        entries = suggest.pending_list(result, index)
        if format == "list":
            return entries
        return pending_text(entries, var_name=var_name or None, header=bool(header))
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("pending_answers: %s" % exc) from None


class FilterModule:
    """armada.apparmor.pending_answers"""

    def filters(self):
        return {"pending_answers": pending_answers_filter}
