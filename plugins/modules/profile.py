#!/usr/bin/python
# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``armada.apparmor.profile`` module: one profile file, its mode and its kernel state."""

DOCUMENTATION = r"""
module: profile
short_description: Manage an AppArmor profile file, its mode and whether it is loaded
version_added: 0.1.0
description:
  - Creates, replaces or removes a profile file in O(apparmor_d), sets its mode and loads or removes it in the kernel.
  - The mode is written into the file (profile flags, as C(aa-complain) and C(aa-enforce) do) or, for V(disabled),
    as a C(disable/) link, so it survives a reboot and a cache rebuild. It is never set only in the kernel.
  - New contents are validated with the host's C(apparmor_parser -QK), its own includes and features, before
    anything is replaced; a profile that fails leaves the old file and the kernel untouched and the parser's message
    is returned.
  - Files are written atomically (a temporary file in the same directory whose name starts with C(.) and ends with
    C(~), both skipped by AppArmor's loaders, then a rename).
  - Profiles shipped as unconfined stubs (C(flags=(unconfined)), C(prompt) or C(default_allow)) are not switched to
    another mode unless O(force=true) - bulk-enforcing them breaks systems.
  - On a kernel without AppArmor the file operations are done and loading is reported as skipped, with the reason.
author:
  - armada.apparmor developers (@armada)
extends_documentation_fragment:
  - armada.apparmor.host
  - armada.apparmor.host.BACKUP
  - armada.apparmor.host.LOCK
options:
  name:
    description:
      - The profile name, for example V(/usr/sbin/nginx) or V(firefox).
      - The file is the one defining it (looked up with C(apparmor_parser -N)); a new file is named the Debian way
        (V(/usr/sbin/nginx) is C(usr.sbin.nginx)) unless O(path) is given.
      - With a file that defines several profiles, O(mode) applies to this one only.
    type: str
  path:
    description:
      - The profile file, absolute inside O(apparmor_d) or relative to it. Without O(name), O(mode) applies to
        every top-level profile the file defines.
    type: path
  content:
    description:
      - The whole text of the profile file.
    type: str
  src:
    description:
      - A file on the managed host whose text becomes the profile file. Use O(content) with a C(file) or
        C(template) lookup for files on the controller.
    type: path
  state:
    description:
      - V(present) writes the file (when O(content) or O(src) is given) and the mode; V(absent) unloads the profile
        and removes the file with its C(disable/) and C(force-complain/) links (the C(local/) include is kept).
    type: str
    choices: [present, absent]
    default: present
  mode:
    description:
      - The mode written into the file. V(enforce) removes mode flags and the C(disable/) and C(force-complain/)
        links; V(complain), V(kill) and V(unconfined) set that flag; V(audit) is enforce with the C(audit) flag
        (every access logged). Modes are exclusive - setting one removes the others' flags, C(audit) included.
      - V(disabled) keeps the flags, creates the C(disable/) link and unloads the profile.
      - Omitted, the file's own flags are kept.
    type: str
    choices: [enforce, complain, audit, kill, unconfined, disabled]
  reload:
    description:
      - Load the profile with C(apparmor_parser -r) (or remove it with C(-R)) when the file, the mode or the
        kernel's state differ from what is wanted.
    type: bool
    default: true
  force:
    description:
      - Allow switching the mode of a profile whose file declares C(unconfined), C(prompt) or C(default_allow).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would change; the host is left byte-identical.
  diff_mode:
    support: full
    description: Shows the file change and the mode change.
notes:
  - Needs root for O(apparmor_d) and the kernel; use C(become).
seealso:
  - module: armada.apparmor.status
  - module: armada.apparmor.rules
  - module: armada.apparmor.backup
"""

EXAMPLES = r"""
- name: Install a profile in complain mode
  armada.apparmor.profile:
    name: /usr/sbin/nginx
    content: "{{ lookup('ansible.builtin.file', 'profiles/usr.sbin.nginx') }}"
    mode: complain
  become: true

- name: Enforce it once the logs are quiet
  armada.apparmor.profile:
    name: /usr/sbin/nginx
    mode: enforce
  become: true
  register: r

- name: Disable a profile (disable/ link, unloaded)
  armada.apparmor.profile:
    path: /etc/apparmor.d/usr.bin.man
    mode: disabled
  become: true

- name: Remove a profile
  armada.apparmor.profile:
    name: /opt/app/bin/worker
    state: absent
  become: true
"""

RETURN = r"""
file:
  description: The profile file (not C(path), which Ansible would decorate with file attributes).
  returned: always
  type: str
  sample: /etc/apparmor.d/usr.sbin.nginx
profiles:
  description: Top-level profiles the file defines (after the change).
  returned: always
  type: list
  elements: str
  sample: [/usr/sbin/nginx]
mode:
  description: The mode after the task (from the file and links).
  returned: when state is present
  type: str
  sample: enforce
previous_mode:
  description: The mode before the task; V(absent) when there was no file.
  returned: always
  type: str
  sample: complain
kernel:
  description: Kernel actions, each with C(action), C(path), C(skipped) and, when skipped, C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{action: load, path: /etc/apparmor.d/usr.sbin.nginx, skipped: true, reason: the kernel has no AppArmor}]
snapshot_id:
  description: Id of the snapshot taken before the change (see M(armada.apparmor.backup)); null when none was taken.
  returned: always
  type: str
  sample: 20261125T130513336078Z
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


def _mode_of(text, name, disabled, forced):
    """The mode a file declares for one profile, links included."""
    from ansible_collections.armada.apparmor.plugins.module_utils import profile_model

    if disabled:
        return "disabled"
    mode = host.mode_from_flags(profile_model.get_profile_flags(text, name))
    if forced and mode == "enforce":
        return "complain"
    return mode


def _set_mode(text, name, mode):
    """Write ``mode`` into the header flags; modes are exclusive, so 'audit' (enforce with every access
    audited) is dropped by the other modes and replaces a mode flag itself."""
    from ansible_collections.armada.apparmor.plugins.module_utils import profile_model

    text = profile_model.set_profile_mode(text, name, "enforce" if mode == "audit" else mode)
    flags = profile_model.get_profile_flags(text, name)
    if mode == "audit" and "audit" not in flags:
        text = profile_model.set_profile_flags(text, name, list(flags) + ["audit"])
    elif mode != "audit" and "audit" in flags:
        text = profile_model.set_profile_flags(text, name, [f for f in flags if f != "audit"])
    return text


def _flags(text, name):
    from ansible_collections.armada.apparmor.plugins.module_utils import profile_model

    return list(profile_model.get_profile_flags(text, name))


class Runner:
    """Plans the change, then applies it (unless in check mode)."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.apparmor_d = os.path.abspath(self.params["apparmor_d"])
        self.result = {"changed": False, "kernel": [], "snapshot_id": None}

    def fail(self, msg, **kw):
        self.result.update(kw)
        self.module.fail_json(msg=msg, **self.result)

    def resolve(self):
        """Find the file: the given path, the file defining ``name``, or the Debian-style new name."""
        p = self.params
        if p["path"]:
            full = p["path"] if os.path.isabs(p["path"]) else os.path.join(self.apparmor_d, p["path"])
            full = os.path.abspath(full)
            if os.path.dirname(full) != self.apparmor_d:
                self.fail("path %s must be a file directly in %s" % (full, self.apparmor_d))
            rel = os.path.basename(full)
        else:
            rel = (hostops.profile_file_for(p["name"], self.apparmor_d, self.parser)
                   or hostops.conventional_file_name(p["name"]))
        if fileops.is_skippable_name(rel):
            self.fail("%s would never be loaded by AppArmor (hidden, README or a backup suffix)" % rel)
        return rel

    def host_lock(self, what):
        """The host-wide lock (lock.py) for a changing run; none in check mode, which never writes."""
        if self.module.check_mode:
            return contextlib.nullcontext()
        return lock_mod.host_lock(what, timeout=self.params["lock_timeout"], path=self.params["lock_file"])

    def run(self):
        p = self.params
        try:
            self.parser = host.find_parser(p["parser"])
        except host.HostError as exc:
            self.fail(str(exc))
        self.kernel = host.kernel_state(p["securityfs"])
        try:
            rel = self.resolve()
            self.rel = rel
            self.full = os.path.join(self.apparmor_d, rel)
            self.result["file"] = self.full
            self.disable_link = os.path.join(self.apparmor_d, "disable", rel)
            self.fc_link = os.path.join(self.apparmor_d, "force-complain", rel)
            # held from reading the file to the last write/reload/backup: a plan made on a file another run
            # is rewriting would undo that run's change
            what = "profile: %s %s" % ("remove" if p["state"] == "absent" else "write", self.full)
            with self.host_lock(what):
                old = fileops.read_bytes(self.full)
                self.old_text = None if old is None else old.decode("utf-8", "surrogateescape")
                if p["state"] == "absent":
                    self.absent()
                else:
                    self.present()
        except (lock_mod.LockBusy, lock_mod.LockError) as exc:
            self.fail(str(exc))
        except (host.HostError, fileops.FileOpError, backup.BackupError, OSError, ValueError) as exc:
            self.fail(str(exc))
        self.module.exit_json(**self.result)

    # ------------------------------------------------------------ present
    def present(self):
        p = self.params
        if p["content"] is not None:
            new_text = p["content"]
        elif p["src"]:
            with open(p["src"], "rb") as handle:
                new_text = handle.read().decode("utf-8", "surrogateescape")
        elif self.old_text is None:
            self.fail("profile file %s does not exist: give content or src" % self.full)
        else:
            new_text = self.old_text
        self.refuse_stub_switch()
        old_disabled = os.path.lexists(self.disable_link)
        old_forced = os.path.lexists(self.fc_link)
        try:
            names = [n for n in host.profile_names_text(new_text, self.parser, self.apparmor_d) if "//" not in n]
        except host.HostError as exc:
            self.fail("the new profile does not parse: %s" % exc, parser_message=str(exc))
        if p["name"] and p["name"] not in names:
            self.fail("%s does not define profile %s (it defines: %s)" % (self.full, p["name"], ", ".join(names)))
        targets = [p["name"]] if p["name"] else names
        if not targets:
            self.fail("%s defines no profile" % self.full)
        old_names = []
        if self.old_text is not None:
            try:
                old_names = [n for n in host.profile_names(self.full, self.parser, self.apparmor_d) if "//" not in n]
            except host.HostError:
                old_names = []
        ref_names = [n for n in targets if n in old_names]
        if ref_names:
            prev = _mode_of(self.old_text, ref_names[0], old_disabled, old_forced)
        else:
            prev = "absent" if self.old_text is None else "unknown"
        self.result["previous_mode"] = prev
        mode = p["mode"]
        want_disabled, want_forced = old_disabled, old_forced
        if mode is not None:
            if mode == "disabled":
                want_disabled = True
            else:
                want_disabled = False
                if mode == "enforce":
                    want_forced = False
                for name in targets:
                    new_text = _set_mode(new_text, name, mode)
        new_mode = _mode_of(new_text, targets[0], want_disabled, want_forced)
        self.result.update(profiles=names, mode=new_mode)
        new_bytes = new_text.encode("utf-8", "surrogateescape")
        file_changed = self.old_text is None or new_bytes != self.old_text.encode("utf-8", "surrogateescape")
        links_changed = want_disabled != old_disabled or want_forced != old_forced
        kernel_ops = self.kernel_plan(new_text, names, want_disabled, want_forced, file_changed or links_changed)
        changed = file_changed or links_changed or bool(kernel_ops)
        self.result["changed"] = changed
        if self.module._diff:
            self.result["diff"] = [
                {"before_header": self.full, "after_header": self.full,
                 "before": self.old_text or "", "after": new_text},
                {"before_header": "%s (mode)" % self.full, "after_header": "%s (mode)" % self.full,
                 "before": prev + "\n", "after": new_mode + "\n"},
            ]
        if not changed or self.module.check_mode:
            self.result["kernel"] = [dict(op, skipped=True, reason="check mode") if self.module.check_mode else op
                                     for op in kernel_ops]
            return
        if file_changed or not want_disabled:
            try:
                hostops.validate_staged({self.rel: new_bytes}, [self.rel], self.parser, self.apparmor_d,
                                        p["features_file"])
            except hostops.ValidationError as exc:
                self.fail("profile %s does not compile; nothing was changed:\n%s" % (self.full, exc),
                          parser_message=str(exc), changed=False)
        self.take_backup(names)
        old_bytes = None if self.old_text is None else self.old_text.encode("utf-8", "surrogateescape")
        if file_changed:
            try:
                fileops.atomic_write(self.full, new_bytes)
            except fileops.FileOpError as exc:
                self.fail("cannot write %s; nothing was changed: %s" % (self.full, exc), changed=False)
        try:
            self.set_links(want_disabled, want_forced)
            self.result["kernel"] = [self.kernel_op(op) for op in kernel_ops]
        except host.HostError as exc:
            # the kernel refused: put the old file and links back so the host is as it was
            stuck = hostops.put_back([self.rel] if file_changed else [], {self.rel: old_bytes}, self.apparmor_d)
            self.set_links(old_disabled, old_forced)
            self.fail("loading %s failed; %s: %s" % (self.full, hostops.put_back_note(stuck), exc))

    def refuse_stub_switch(self):
        """Fail before anything else when the existing file declares an unconfined/prompt/default_allow stub
        and the task would switch its mode (checked on the text: Debian 12's parser rejects those flags)."""
        from ansible_collections.armada.apparmor.plugins.module_utils import profile_model

        mode = self.params["mode"]
        if mode is None or self.old_text is None or self.params["force"]:
            return
        try:
            profiles = profile_model.list_profiles(self.old_text)
        except ValueError:
            return
        for full_name, flags in profiles:
            if "//" in full_name or (self.params["name"] and self.params["name"] != full_name):
                continue
            stub = [f for f in flags if f in host.STUB_FLAGS]
            if stub and mode != host.mode_from_flags(flags):
                self.fail("refusing to switch %s from %s to %s: profiles shipped as unconfined stubs break systems "
                          "when enforced; set force: true to do it anyway" % (full_name, ",".join(stub), mode))

    def kernel_plan(self, new_text, names, want_disabled, want_forced, files_changed):
        """Kernel operations needed so the loaded state matches the file (empty when it already does)."""
        if not self.params["reload"]:
            return []
        if not self.kernel["enabled"]:
            if files_changed:
                return [{"action": "unload" if want_disabled else "load", "path": self.full, "skipped": True,
                         "reason": self.kernel["reason"]}]
            return []
        loaded = host.loaded_profiles(self.params["securityfs"])
        if want_disabled:
            return [{"action": "unload", "path": self.full}] if any(n in loaded for n in names) else []
        for name in names:
            want = host.kernel_mode_for(_mode_of(new_text, name, False, want_forced))
            if files_changed or loaded.get(name) != want:
                return [{"action": "load", "path": self.full}]
        return []

    def kernel_op(self, op):
        if op.get("skipped"):
            return op
        if op["action"] == "load":
            return host.load(self.full, self.parser, self.kernel, self.apparmor_d)
        return host.unload(self.full, self.parser, self.kernel, self.apparmor_d)

    def set_links(self, disabled, forced):
        for link, want in ((self.disable_link, disabled), (self.fc_link, forced)):
            if want and not os.path.lexists(link):
                fileops.atomic_symlink(os.path.join("..", self.rel), link)
            elif not want and os.path.lexists(link):
                fileops.remove(link)

    def take_backup(self, names):
        p = self.params
        if not p["backup"]:
            return
        loaded = host.loaded_profiles(p["securityfs"]) if self.kernel["enabled"] else {}
        snap = backup.snapshot(self.apparmor_d, p["backup_dir"], reason="armada.apparmor.profile %s" % self.rel,
                               profiles=[self.rel], loaded={n: m for n, m in loaded.items() if n in names},
                               keep=p["backup_keep"], max_age_days=p["backup_max_age_days"])
        self.result["snapshot_id"] = snap["id"]

    # ------------------------------------------------------------ absent
    def absent(self):
        exists = self.old_text is not None
        links = [lk for lk in (self.disable_link, self.fc_link) if os.path.lexists(lk)]
        self.result["previous_mode"] = "absent"
        names = []
        if exists:
            try:
                names = [n for n in host.profile_names(self.full, self.parser, self.apparmor_d) if "//" not in n]
                self.result["previous_mode"] = _mode_of(self.old_text, names[0], bool(links and os.path.lexists(
                    self.disable_link)), os.path.lexists(self.fc_link)) if names else "unknown"
            except host.HostError:
                names = []
        self.result["profiles"] = names
        ops = []
        if exists and self.params["reload"]:
            if self.kernel["enabled"]:
                loaded = host.loaded_profiles(self.params["securityfs"])
                if any(n in loaded for n in names):
                    ops.append({"action": "unload", "path": self.full})
            else:
                ops.append({"action": "unload", "path": self.full, "skipped": True, "reason": self.kernel["reason"]})
        changed = exists or bool(links)
        self.result["changed"] = changed
        if self.module._diff:
            self.result["diff"] = [{"before_header": self.full, "after_header": self.full,
                                    "before": self.old_text or "", "after": ""}]
        if not changed or self.module.check_mode:
            self.result["kernel"] = [dict(op, skipped=True, reason="check mode") if self.module.check_mode else op
                                     for op in ops]
            return
        self.take_backup(names)
        self.result["kernel"] = [self.kernel_op(op) for op in ops]
        for link in links:
            fileops.remove(link)
        fileops.remove(self.full)


def main():
    """Entry point."""
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str"),
            path=dict(type="path"),
            content=dict(type="str"),
            src=dict(type="path"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            mode=dict(type="str", choices=list(host.FILE_MODES)),
            reload=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
            **argspec.host_options(), **argspec.backup_options(), **argspec.lock_options(),
        ),
        required_one_of=[["name", "path"]],
        mutually_exclusive=[["content", "src"]],
        supports_check_mode=True,
    )
    Runner(module).run()


if __name__ == "__main__":
    main()
