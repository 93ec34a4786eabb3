#!/usr/bin/python
# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``armada.apparmor.status`` module: read-only AppArmor state of a host, facts-style."""

DOCUMENTATION = r"""
module: status
short_description: Report AppArmor state, profile files and drift on a host
version_added: 0.1.0
description:
  - Reports whether the kernel has AppArmor and whether it is enabled, the version of C(apparmor_parser)
    and the policy ABIs the host ships, every loaded profile with its mode (read from
    C(/sys/kernel/security/apparmor/profiles), not from C(aa-status), which prints nothing when AppArmor is absent),
    and every profile file with the profiles it defines, their declared flags and mode, C(disable/) and
    C(force-complain/) links and sha256.
  - Drift is found by content, never by modification time - files whose profiles are not loaded,
    loaded profiles whose mode differs from the mode the file declares, and loaded profiles whose binary policy
    differs from what C(apparmor_parser -S) compiles from the file (compared with the C(raw_data) or
    C(raw_sha1)/C(raw_sha256) the kernel exports).
  - Never changes anything. Also sets the fact C(apparmor_status).
author:
  - armada.apparmor developers (@armada)
extends_documentation_fragment:
  - armada.apparmor.host
options:
  check_drift:
    description:
      - Compile every loaded profile's file to compare it with the kernel's policy. Costs one parser run per file.
    type: bool
    default: true
  programs:
    description:
      - Program paths whose running processes are counted in RV(processes) - confined (with the profile of each)
        and unconfined. A profile attaches at exec, so a program started before its profile was loaded stays
        unconfined. One pass over C(/proc).
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    support: full
    description: The module never changes anything.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
notes:
  - Reading C(raw_data) and the profile list needs root; use C(become) from a non-root user.
seealso:
  - module: armada.apparmor.profile
  - module: armada.apparmor.backup
"""

EXAMPLES = r"""
- name: Read AppArmor state
  armada.apparmor.status:
  become: true
  register: aa

- name: Fail when a loaded profile differs from its file
  ansible.builtin.assert:
    that: not aa.drifted
    fail_msg: "{{ aa.drift }}"

- name: Profiles loaded in complain mode
  ansible.builtin.debug:
    msg: "{{ aa.loaded | dict2items | selectattr('value', 'equalto', 'complain') | map(attribute='key') | list }}"
"""

RETURN = r"""
kernel:
  description: AppArmor in the running kernel.
  returned: always
  type: dict
  sample: {available: true, enabled: true, reason: ""}
parser:
  description: The parser found on the host.
  returned: always
  type: dict
  sample: {path: /usr/sbin/apparmor_parser, version: 3.0.8, available: true}
abi:
  description: Policy ABIs shipped in O(apparmor_d)/abi, the one rules are rendered for, and the features source.
  returned: always
  type: dict
  sample:
    supported: ["3.0"]
    render: "3.0"
    kernel_features: true
    policy_features_file: /usr/share/apparmor-features/features
loaded:
  description: Loaded profile name to mode (enforce, complain, kill, unconfined, ...); empty without AppArmor.
  returned: always
  type: dict
  sample: {/usr/bin/man: enforce, man_groff: enforce}
files:
  description:
    - Per profile file (basename) - path, sha256, mtime (epoch seconds), disabled, force_complain, and per profile
      its flags and declared mode (and C(loaded_matches_file) after a drift check).
  returned: always
  type: dict
  sample:
    usr.bin.man:
      path: /etc/apparmor.d/usr.bin.man
      sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
      mtime: 1764930000.5
      disabled: false
      force_complain: false
      profiles: {/usr/bin/man: {flags: [], mode: enforce}}
disable_links:
  description: Basenames in C(disable/).
  returned: always
  type: list
  elements: str
force_complain_links:
  description: Basenames in C(force-complain/).
  returned: always
  type: list
  elements: str
drift:
  description:
    - C(not_loaded) (profiles whose file is enabled but which are not loaded), C(mode_mismatch) (declared vs
      loaded mode), C(content) (loaded policy differs from the compiled file), C(loaded_without_file),
      C(errors) (files that could not be read or compiled).
  returned: always
  type: dict
drifted:
  description: True when C(not_loaded), C(mode_mismatch) or C(content) is not empty.
  returned: always
  type: bool
drift_checked:
  description: Whether content drift could be checked (needs AppArmor in the kernel and exported policy).
  returned: always
  type: bool
drift_reason:
  description: Why content drift was not checked.
  returned: always
  type: str
processes:
  description:
    - Per program of O(programs) - C(confined) and C(unconfined) process counts and C(labels) (the label of each
      confined process, as the kernel prints it, to its count).
  returned: always
  type: dict
  sample: {/usr/sbin/nginx: {confined: 3, unconfined: 1, labels: {"/usr/sbin/nginx (enforce)": 3}}}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.armada.apparmor.plugins.module_utils import argspec, host  # noqa: E402


def main():
    """Collect the state; never changes anything."""
    module = AnsibleModule(
        argument_spec=dict(
            check_drift=dict(type="bool", default=True),
            programs=dict(type="list", elements="path", default=[]),
            **argspec.host_options(),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        state = host.status(apparmor_d=p["apparmor_d"], securityfs=p["securityfs"], parser=p["parser"],
                            features_file=p["features_file"], check_drift=p["check_drift"],
                            programs=p["programs"])
    except (host.HostError, OSError) as exc:
        module.fail_json(msg=str(exc))
    state["changed"] = False
    state["ansible_facts"] = {"apparmor_status": {k: v for k, v in state.items() if k != "changed"}}
    module.exit_json(**state)


if __name__ == "__main__":
    main()
