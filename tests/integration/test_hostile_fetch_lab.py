"""A lab host that lies about its profile files cannot make the controller write outside ./profiles/.

Issue 12, item 1. The host's root controls every tool the roles run there: here ``/usr/local/bin/base64``
(first in sudo's ``secure_path``) runs the real ``base64`` and, when it reads a file of /etc/apparmor.d, prints
an extra entry ``../../armada-hfetch-planted<TAB><content>`` - what the update role used to take as a file name
and write on the controller, outside ``./profiles/``. The controller stays clean: the play must fail naming
the host and the value, and no file may appear anywhere in the controller's work directory outside
``./profiles/``. Then the wrapper is removed and the same run fetches the profile under the name the
controller derives from its own list (control: the setup fetches at all).
"""
import os
import re
import subprocess

import pytest
import yaml

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")

NAME = "armada-hfetch"
PROGRAM = "/usr/local/bin/armada-hfetch"
STATE = "/var/lib/armada-hfetch"
BACKUPS = "/var/backups/armada-hfetch"
WRAPPER = "/usr/local/bin/base64"
PLANTED = "../../armada-hfetch-planted"
PROFILE = """abi <abi/3.0>,
include <tunables/global>

profile {name} {program} flags=(complain) {{
  include <abstractions/base>
}}
""".format(name=NAME, program=PROGRAM)

SETUP = r"""
set -e
rm -rf {state} {backups}
install -m 0755 /usr/bin/true {program}
cat > /etc/apparmor.d/{name} <<'EOF'
{profile}EOF
apparmor_parser -r /etc/apparmor.d/{name}
cat > {wrapper} <<'EOF'
#!/bin/sh
# hostile: the real base64, plus an extra entry whenever a file of /etc/apparmor.d is read
/usr/bin/base64 "$@"
for a in "$@"; do
  case "$a" in /etc/apparmor.d/*)
    printf '\n%s\t%s' '{planted}' "$(printf 'planted by the host\n' | /usr/bin/base64 -w0)";;
  esac
done
EOF
chmod 0755 {wrapper}
""".format(state=STATE, backups=BACKUPS, program=PROGRAM, name=NAME, profile=PROFILE, wrapper=WRAPPER,
           planted=PLANTED)

TEARDOWN = r"""
rm -f {wrapper}
apparmor_parser -R /etc/apparmor.d/{name} 2>/dev/null
rm -rf {state} {backups} {program} /etc/apparmor.d/{name}
find /var/cache/apparmor -name {name} -delete 2>/dev/null
true
""".format(wrapper=WRAPPER, name=NAME, state=STATE, backups=BACKUPS, program=PROGRAM)

PLAY = [{"hosts": "all", "become": True, "gather_facts": False,
         "roles": [{"role": "armada.apparmor.update"}]}]


def _files(top):
    return sorted(os.path.relpath(os.path.join(d, f), str(top)) for d, _, fs in os.walk(str(top)) for f in fs)


def _update(lab, tmp_path, work, host):
    """The update role on HOST, run from WORK (so ./profiles/ is WORK/profiles)."""
    inv = tmp_path / "inventory"
    if not inv.exists():
        (inv / "group_vars" / "all").mkdir(parents=True)
        with open(lab.inventory) as src:
            (inv / "hosts.yml").write_text(src.read())
        (inv / "group_vars" / "all" / "hfetch.yml").write_text(yaml.safe_dump({
            "apparmor_programs": [{"path": PROGRAM, "profile": NAME}], "apparmor_cursor": NAME,
            "apparmor_state_dir": STATE, "apparmor_backup_dir": BACKUPS}))
        (tmp_path / "play.yml").write_text(yaml.safe_dump(PLAY))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_NOCOLOR="1",
               PWD=str(work))
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inv), "--limit", host, str(tmp_path / "play.yml")],
                          cwd=str(work), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=900, check=False)


def test_a_host_naming_a_file_outside_profiles_fails_the_play_and_writes_nothing(lab, tmp_path):
    host = lab.first("auditd")
    res = lab.ssh(host, SETUP)
    assert res.returncode == 0, res.stdout + res.stderr
    try:
        # the wrapper really lies: the host's own read of the profile prints the extra entry
        probe = lab.ssh(host, "base64 -w0 /etc/apparmor.d/%s" % NAME)
        assert PLANTED in probe.stdout, probe.stdout + probe.stderr
        top = tmp_path / "controller"
        work = top / "a" / "b"
        work.mkdir(parents=True)

        run = _update(lab, tmp_path, work, host)
        log = run.stdout[-6000:] + run.stderr[-2000:]
        assert run.returncode == 2, log
        assert "%s: the profile file name %r is refused: it contains '/'; nothing was written" % (host, PLANTED) \
            in run.stdout, log
        assert _files(top) == [], _files(top)  # nothing anywhere: not ../../, not even ./profiles/
        assert not (top / "a" / "armada-hfetch-planted").exists()

        # control: the same run on the same host with its tools clean fetches under the controller's name
        assert lab.ssh(host, "rm -f %s" % WRAPPER).returncode == 0
        run = _update(lab, tmp_path, work, host)
        log = run.stdout[-6000:] + run.stderr[-2000:]
        assert run.returncode == 0, log
        listed = _files(top)
        assert len(listed) == 2 and re.match(r"a/b/apparmor-pending-[0-9]{8}T[0-9]{6}Z\.yml$", listed[0]), listed
        assert listed[1] == "a/b/profiles/" + NAME, listed
        assert (work / "profiles" / NAME).read_text() == PROFILE
    finally:
        lab.ssh(host, TEARDOWN)
