# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter armada.apparmor.profile_file_name: the Debian-style file name of a profile (thin adapter over
hostops.conventional_file_name)."""

from ansible_collections.armada.apparmor.plugins.module_utils.hostops import conventional_file_name

DOCUMENTATION = r"""
name: profile_file_name
short_description: The Debian/Ubuntu file name of an AppArmor profile (C(/usr/bin/foo) -> C(usr.bin.foo))
version_added: 0.1.0
author: armada.apparmor contributors
description:
  - The profile's name without its leading C(/), slashes as dots - the name M(armada.apparmor.profile) and the
    learn role give a new profile's file, and the name the update role stores a fetched profile under on the
    controller (derived from the controller's own list of profiles, never from a host's output).
positional: _input
options:
  _input:
    description: The profile name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Where the update role stores the profile of /usr/sbin/nginx
  ansible.builtin.debug:
    msg: "profiles/{{ '/usr/sbin/nginx' | armada.apparmor.profile_file_name }}"  # profiles/usr.sbin.nginx
"""

RETURN = r"""
_value:
  description: The file name.
  type: str
"""


class FilterModule:
    """armada.apparmor.profile_file_name"""

    def filters(self):
        return {"profile_file_name": conventional_file_name}
