#!/usr/bin/python
# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``armada.apparmor.rules`` module: add (or remove) rules in a profile or its local/ include."""

DOCUMENTATION = r"""
module: rules
short_description: Add or remove AppArmor rules in a profile or its local include
version_added: 0.1.0
description:
  - Adds rules - typically one profile's entry of the M(armada.apparmor.to_rules) filter's result - to a profile
    file or to its C(local/) include, rendered for the host's policy ABI, skipping rules the profile and its includes
    already cover, keeping every comment and the layout of the file.
  - By default (O(target=auto)) rules go to C(local/<file>) when the profile file belongs to a package
    (C(dpkg -S)), so package upgrades never conflict with them, and into the profile itself otherwise.
    The profile gets an C(include if exists <local/<file>>) line when it lacks one.
  - Rules of child profiles and hats (O(children)) are written into the profile file (a missing hat is created).
  - Deny rules are written like any other rule (their text starts with C(deny)).
  - With O(state=absent) the given rules are removed from the profile and from its C(local/) include.
  - The result is compiled with the host's C(apparmor_parser -QK) before anything is written (a failure leaves
    the files and the kernel untouched and returns the parser's message), written atomically, and reloaded.
author:
  - armada.apparmor developers (@armada)
extends_documentation_fragment:
  - armada.apparmor.host
  - armada.apparmor.host.BACKUP
  - armada.apparmor.host.LOCK
options:
  profile:
    description:
      - The top-level profile name, for example V(/usr/sbin/nginx).
    type: str
    required: true
  path:
    description:
      - The profile file (absolute inside O(apparmor_d), or relative to it).
      - Found with C(apparmor_parser -N) when omitted.
    type: path
  entry:
    description:
      - One profile's entry of the M(armada.apparmor.to_rules) result, for example
        C("{{ result.profiles['/usr/sbin/nginx'] }}"). Its C(rules), C(deny) and C(children) are used
        (added to O(rules), O(deny) and O(children)).
    type: dict
  rules:
    description:
      - Rules to add or remove - items of C(to_rules) (dicts with a C(text) key) or rule lines such as C(/etc/x r,).
    type: list
    elements: raw
    default: []
  deny:
    description:
      - Deny rules, same forms as O(rules) (the text must start with C(deny)).
    type: list
    elements: raw
    default: []
  children:
    description:
      - Per child profile or hat name, a dict with C(rules) and C(deny) lists (the C(children) of a C(to_rules) entry).
      - A child with C(add_hat) set (an allowed C(change_hat) event) is created as an empty hat C(^name {}) when
        the profile does not have it, even without rules.
      - A child with C(add_child) set (C({attachment - program path}), the target of a C(Cx) exec rule) is created,
        even without rules, as a child profile C(profile NAME PATH { }) in the parent's mode (complain while learning).
    type: dict
    default: {}
  state:
    description:
      - V(present) adds the rules, V(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  target:
    description:
      - Where top-level rules go - V(local) (C(local/<file>)), V(profile) (the file itself) or V(auto) (local for
        profiles owned by a package, else the profile).
    type: str
    choices: [auto, profile, local]
    default: auto
  abi:
    description:
      - Policy ABI to render the rules for (V(3.0), V(4.0), V(5.0)). By default the newest C(abi/N.M) the host ships.
    type: str
  skip_covered:
    description:
      - Do not add a rule the profile (with its includes and C(local/)) already covers.
    type: bool
    default: true
  comment:
    description:
      - A comment line written above each block of added rules.
    type: str
  reload:
    description:
      - Reload the profile with C(apparmor_parser -r) after a change.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports the rules that would be added or removed; nothing is written.
  diff_mode:
    support: full
    description: Shows the change of the profile file and of its C(local/) include.
notes:
  - Needs root; use C(become).
seealso:
  - module: armada.apparmor.profile
  - module: armada.apparmor.backup
"""

EXAMPLES = r"""
- name: Turn approved answers into rules and add them on each host
  armada.apparmor.rules:
    profile: "{{ item.key }}"
    entry: "{{ item.value }}"
  loop: "{{ (apparmor_events | armada.apparmor.to_rules(apparmor_answers)).profiles | dict2items }}"
  become: true

- name: Add two rules to the profile itself
  armada.apparmor.rules:
    profile: armada-demo
    target: profile
    rules:
      - /etc/armada-demo/** r,
      - text: /var/log/armada-demo.log w,
    deny:
      - deny /etc/shadow r,
  become: true

- name: Remove a rule again
  armada.apparmor.rules:
    profile: armada-demo
    rules:
      - /etc/armada-demo/** r,
    state: absent
  become: true
"""

RETURN = r"""
file:
  description: The profile file.
  returned: always
  type: str
local_file:
  description: The C(local/) include written to (or searched, with O(state=absent)).
  returned: always
  type: str
target:
  description: Where top-level rules went (V(profile) or V(local)).
  returned: always
  type: str
abi:
  description: The ABI the rules were rendered for.
  returned: always
  type: str
added:
  description: Rule lines added, with the profile (C(a//b) for children) they went to.
  returned: always
  type: list
  elements: dict
  sample: [{profile: /usr/sbin/nginx, text: "/var/log/nginx/access.log w,", file: /etc/apparmor.d/local/usr.sbin.nginx}]
covered:
  description: Rules skipped because the profile already covers them.
  returned: always
  type: list
  elements: dict
removed:
  description: Rule lines removed (O(state=absent)).
  returned: always
  type: list
  elements: dict
kernel:
  description: Kernel actions, each with C(action), C(path), C(skipped) and, when skipped, C(reason).
  returned: always
  type: list
  elements: dict
snapshot_id:
  description: Id of the snapshot taken before the change; null when none was taken.
  returned: always
  type: str
parser_message:
  description: The parser's message when validation failed.
  returned: on validation failure
  type: str
"""

import contextlib  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.armada.apparmor.plugins.module_utils import argspec, backup, fileops, host, hostops  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils import lock as lock_mod  # noqa: E402


def _items(values, where):
    """Rule texts from to_rules items (dicts with 'text') or plain strings."""
    out = []
    for item in values or []:
        if isinstance(item, dict):
            if not isinstance(item.get("text"), str):
                raise ValueError("%s: a rule item needs a 'text' string: %r" % (where, item))
            out.append(item["text"])
        elif isinstance(item, str):
            out.append(item)
        else:
            raise ValueError("%s: not a rule: %r" % (where, item))
    return out


class Runner:
    """Plans the edit of the profile and/or local include, then validates, backs up, writes, reloads."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.apparmor_d = os.path.abspath(self.params["apparmor_d"])
        self.result = {"changed": False, "added": [], "covered": [], "removed": [], "kernel": [],
                       "snapshot_id": None}

    def fail(self, msg, **kw):
        self.result.update(kw)
        self.module.fail_json(msg=msg, **self.result)

    def run(self):
        try:
            # the host lock, once taken in _run, is released when this block ends (or the module exits)
            with contextlib.ExitStack() as self.held:
                self._run()
        except (host.HostError, fileops.FileOpError, backup.BackupError, OSError, ValueError) as exc:
            self.fail(str(exc))
        self.module.exit_json(**self.result)

    def take_host_lock(self, full):
        """Take the host-wide lock (lock.py) for the rest of the run; not in check mode, which never writes.

        Held from reading the files to the last write/reload/backup: rules planned on a file another run
        is rewriting would drop that run's rules when written back."""
        if self.module.check_mode:
            return
        try:
            self.held.enter_context(lock_mod.host_lock("rules: write %s" % full, timeout=self.params["lock_timeout"],
                                                       path=self.params["lock_file"]))
        except (lock_mod.LockBusy, lock_mod.LockError) as exc:
            self.fail(str(exc))

    def _groups(self):
        """[(profile full name, [rule texts])] for the top-level profile and its children."""
        p = self.params
        entry = p["entry"] or {}
        top = _items(p["rules"], "rules") + _items(p["deny"], "deny")
        top += _items(entry.get("rules"), "entry.rules") + _items(entry.get("deny"), "entry.deny")
        groups = [(p["profile"], top, None)]
        children = dict(entry.get("children") or {})
        children.update(p["children"] or {})
        for child in sorted(children):
            spec = children[child] or {}
            texts = _items(spec.get("rules"), "children.%s.rules" % child)
            texts += _items(spec.get("deny"), "children.%s.deny" % child)
            add_child = spec.get("add_child") if isinstance(spec.get("add_child"), dict) else {}
            attachment = add_child.get("attachment")
            if attachment is not None and not isinstance(attachment, str):
                self.fail("children.%s.add_child.attachment must be a program path" % child)
            # add_hat / add_child: an allowed change_hat or Cx exec adds the hat or child even without rules
            if texts or spec.get("add_hat") or attachment:
                groups.append(("%s//%s" % (p["profile"], child), texts, attachment))
        return groups

    def _run(self):
        from ansible_collections.armada.apparmor.plugins.module_utils import coverage, profile_model
        from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule

        p = self.params
        parser = host.find_parser(p["parser"])
        kernel = host.kernel_state(p["securityfs"])
        if p["path"]:
            full = os.path.abspath(p["path"] if os.path.isabs(p["path"]) else os.path.join(self.apparmor_d, p["path"]))
            if os.path.dirname(full) != self.apparmor_d:
                self.fail("path %s must be a file directly in %s" % (full, self.apparmor_d))
            rel = os.path.basename(full)
        else:
            rel = hostops.profile_file_for(p["profile"], self.apparmor_d, parser)
            if rel is None:
                self.fail("no file in %s defines profile %s" % (self.apparmor_d, p["profile"]))
        full = os.path.join(self.apparmor_d, rel)
        local_rel = os.path.join("local", rel)
        local_full = os.path.join(self.apparmor_d, local_rel)
        self.take_host_lock(full)
        old_prof = fileops.read_bytes(full)
        if old_prof is None:
            self.fail("profile file %s does not exist" % full)
        old_prof_text = old_prof.decode("utf-8", "surrogateescape")
        old_local = fileops.read_bytes(local_full)
        old_local_text = None if old_local is None else old_local.decode("utf-8", "surrogateescape")
        target = p["target"]
        if target == "auto":
            target = "local" if host.package_owner(full) else "profile"
        abi = p["abi"] or host.host_abi(self.apparmor_d, host.parser_version(parser))
        self.result.update(file=full, local_file=local_full, target=target, abi=abi)

        groups = []
        attachments = {}
        for prof_name, texts, attachment in self._groups():
            rules = []
            for text in texts:
                try:
                    rules.append(parse_rule(text.strip()))
                except ValueError as exc:
                    self.fail("not a valid rule %r: %s" % (text, exc))
            groups.append((prof_name, rules))
            attachments[prof_name] = attachment

        pf = profile_model.ProfileFile.parse(old_prof_text, full)
        if pf.find(p["profile"]) is None:
            self.fail("%s does not define profile %s" % (full, p["profile"]))
        local = None  # the local/ include's model, read when the task adds or removes rules there
        if p["state"] == "present":
            index = coverage.ProfileIndex.from_text(old_prof_text, self.apparmor_d, full) if p["skip_covered"] else None
            for prof_name, rules in groups:
                wanted = []
                for rule in rules:
                    text = rule.render(abi)
                    known = index is not None and index.ruleset(prof_name) is not None
                    if known and index.covers_rule(rule, prof_name):
                        self.result["covered"].append({"profile": prof_name, "text": text})
                    else:
                        wanted.append(rule)
                if not wanted and pf.find(prof_name) is None:  # an empty hat or child to add (change_hat, Cx)
                    stub = pf.add_rules(prof_name, [], abi=abi, create=True, attachment=attachments[prof_name])
                    child = prof_name.split("//", 1)[1]
                    self.result["added"].append({"profile": prof_name, "file": full, "text": (
                        "^%s {}" % child if attachments[prof_name] is None
                        else "profile %s %s {}" % (child, attachments[prof_name]))})
                    self.result["added"].extend({"profile": prof_name, "text": t, "file": full} for t in stub)
                if not wanted:
                    continue
                if prof_name == p["profile"] and target == "local":
                    local = local or self._local_include(old_local_text, local_full)
                    added = local.append_rules(wanted, abi, p["comment"])
                    self.result["added"].extend({"profile": prof_name, "text": t, "file": local_full} for t in added)
                    if added:
                        pf.add_include(p["profile"], "local/" + rel, if_exists=True)
                else:
                    added = pf.add_rules(prof_name, wanted, abi=abi, comment=p["comment"], create=True,
                                         attachment=attachments[prof_name])
                    self.result["added"].extend({"profile": prof_name, "text": t, "file": full} for t in added)
        else:
            for prof_name, rules in groups:
                removed = pf.remove_rules(prof_name, rules, abi)
                self.result["removed"].extend({"profile": prof_name, "text": t, "file": full} for t in removed)
                if prof_name == p["profile"] and old_local_text is not None:
                    local = local or self._local_include(old_local_text, local_full)
                    gone = local.remove_rules(None, rules, abi)
                    self.result["removed"].extend({"profile": prof_name, "text": t, "file": local_full} for t in gone)
        new_prof_text = pf.render()
        local_text = old_local_text if local is None or local.render() == (old_local_text or "") else local.render()
        changes = {}
        if new_prof_text != old_prof_text:
            changes[rel] = new_prof_text.encode("utf-8", "surrogateescape")
        if local_text != old_local_text:
            changes[local_rel] = local_text.encode("utf-8", "surrogateescape")
        self.result["changed"] = bool(changes)
        if self.module._diff:
            self.result["diff"] = [
                {"before_header": full, "after_header": full, "before": old_prof_text, "after": new_prof_text},
                {"before_header": local_full, "after_header": local_full, "before": old_local_text or "",
                 "after": local_text or ""},
            ]
        if not changes or self.module.check_mode:
            return
        disabled = os.path.lexists(os.path.join(self.apparmor_d, "disable", rel))
        try:
            hostops.validate_staged(changes, [rel], parser, self.apparmor_d, p["features_file"])
        except hostops.ValidationError as exc:
            self.fail("the changed profile %s does not compile; nothing was changed:\n%s" % (full, exc),
                      parser_message=str(exc), changed=False)
        if p["backup"]:
            loaded = host.loaded_profiles(p["securityfs"]) if kernel["enabled"] else {}
            snap = backup.snapshot(self.apparmor_d, p["backup_dir"], reason="armada.apparmor.rules %s" % rel,
                                   profiles=[rel], loaded={k: v for k, v in loaded.items()
                                                           if k == p["profile"] or k.startswith(p["profile"] + "//")},
                                   keep=p["backup_keep"], max_age_days=p["backup_max_age_days"])
            self.result["snapshot_id"] = snap["id"]
        try:
            hostops.write_changes(changes, self.apparmor_d, old={rel: old_prof, local_rel: old_local})
        except fileops.FileOpError as exc:
            # nothing was written (or what was written is put back): the task changed nothing but the snapshot
            self.fail("cannot write the rules into %s; the files are as they were: %s" % (full, exc), changed=False)
        if p["reload"] and not disabled:
            try:
                self.result["kernel"].append(host.load(full, parser, kernel, self.apparmor_d))
            except host.HostError as exc:
                stuck = hostops.put_back(sorted(changes), {rel: old_prof, local_rel: old_local}, self.apparmor_d)
                self.fail("reloading %s failed; %s: %s" % (full, hostops.put_back_note(stuck), exc))

    def _local_include(self, text, path):
        """The model of the local/ include (empty when the file does not exist yet)."""
        from ansible_collections.armada.apparmor.plugins.module_utils import profile_model

        try:
            return profile_model.LocalInclude.parse(text or "", path)
        except profile_model.ProfileError as exc:
            self.fail("cannot read the local include %s (fix or remove it): %s" % (path, exc))


def main():
    """Entry point."""
    module = AnsibleModule(
        argument_spec=dict(
            profile=dict(type="str", required=True),
            path=dict(type="path"),
            entry=dict(type="dict"),
            rules=dict(type="list", elements="raw", default=[]),
            deny=dict(type="list", elements="raw", default=[]),
            children=dict(type="dict", default={}),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            target=dict(type="str", default="auto", choices=["auto", "profile", "local"]),
            abi=dict(type="str"),
            skip_covered=dict(type="bool", default=True),
            comment=dict(type="str"),
            reload=dict(type="bool", default=True),
            **argspec.host_options(), **argspec.backup_options(), **argspec.lock_options(),
        ),
        supports_check_mode=True,
    )
    Runner(module).run()


if __name__ == "__main__":
    main()
