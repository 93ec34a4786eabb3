"""Session fixture for the qemu lab (tests/lab/lab): reads the running lab's inventory, runs playbooks on it.

The lab is booted ONCE per run, outside pytest (scripts/test.sh: `tests/lab/lab up 3`, then
`eval "$(tests/lab/lab env)"` exports ARMADA_LAB_INVENTORY). Booting three TCG guests costs about
half a minute and they share the machine's two cores, so tests do not boot guests - except the power-cut
test (test_kill_lab.py), which kills one guest and boots it again (`Lab.kill`, `Lab.restart`: same name,
flavour and ssh port, so the inventory stays valid; the guest comes back fresh, in the image's state).

- ARMADA_LAB_INVENTORY set (the runner booted a lab): the lab must answer, else the tests FAIL.
- not set: a lab left up by `tests/lab/lab up N` is used when there is one; otherwise lab tests are
  skipped with the reason printed (a developer running pytest without the lab).
"""
import json
import os
import shlex
import subprocess
import tempfile
from typing import Dict, List, Optional

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_TOOL = os.path.join(ROOT, "tests", "lab", "lab")
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
PLAYBOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lab_playbooks")


class Lab:
    """The running lab: hosts, groups, and ways to act on them (ansible-playbook, plain ssh)."""

    def __init__(self, inventory: str):
        self.inventory = inventory
        with open(inventory, encoding="utf-8") as fh:
            inv = yaml.safe_load(fh)
        self.vars = inv["all"]["vars"]
        self.groups = {g: sorted((v or {}).get("hosts") or {}) for g, v in inv["all"]["children"].items()}
        # name -> host vars (ansible_port, armada_lab_flavour, console) of every guest, the trixie one included
        self.all_hosts = inv["all"]["hosts"]
        # the hosts general tests run on: group `lab` (bookworm); a trixie host is only in group `trixie`
        self.hosts = {h: v for h, v in self.all_hosts.items() if h in self.groups.get("lab", [])}

    def first(self, group: str) -> str:
        members = self.groups.get(group) or []
        if not members:
            pytest.fail("the lab has no host in group %r (boot it with `tests/lab/lab up 3`)" % group)
        return members[0]

    def ssh(self, host: str, command: str, become: bool = True, timeout: int = 120,
            input: Optional[str] = None) -> subprocess.CompletedProcess:  # noqa: A002 (subprocess's name)
        """One command over plain ssh (no ansible round trip): for quick reads in assertions. INPUT: its stdin."""
        hv = self.all_hosts[host]
        key = hv.get("ansible_ssh_private_key_file", self.vars["ansible_ssh_private_key_file"])
        cmd = ["ssh", "-i", key, "-p", str(hv["ansible_port"])]
        cmd += shlex.split(self.vars["ansible_ssh_common_args"])
        cmd += ["%s@%s" % (self.vars["ansible_user"], self.vars["ansible_host"])]
        cmd += ["sudo -n sh -c %s" % shlex.quote(command) if become else command]
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **stdin)

    def must(self, host: str, command: str, timeout: int = 120) -> str:
        """``ssh`` that must succeed: its stdout, else a failure naming the command and its output."""
        res = self.ssh(host, command, timeout=timeout)
        assert res.returncode == 0, "%s: `%s` failed (%d): %s %s" % (host, command, res.returncode, res.stdout,
                                                                      res.stderr)
        return res.stdout

    def kernel_mode(self, host: str, name: str) -> Optional[str]:
        """The mode the kernel has profile NAME loaded in (None when it is not loaded)."""
        for line in self.must(host, "cat /sys/kernel/security/apparmor/profiles").splitlines():
            if line.startswith(name + " ("):
                return line.rsplit("(", 1)[1].rstrip(")")
        return None

    def remove_profile(self, host: str, name: str, path: str) -> None:
        """Unload profile NAME and delete its file PATH (idempotent)."""
        self.must(host, "if grep -q '^%s (' /sys/kernel/security/apparmor/profiles; then "
                        "printf %%s %s > /sys/kernel/security/apparmor/.remove; fi; rm -f %s" % (name, name, path))

    def run_dir(self) -> str:
        """The lab's run directory (ARMADA_LAB_RUN): where its inventory and state.json are."""
        here = os.path.dirname(os.path.abspath(self.inventory))
        if os.path.isfile(os.path.join(here, "state.json")):
            return here
        env = os.environ.get("ARMADA_LAB_RUN", "")
        if env and os.path.isfile(os.path.join(env, "state.json")):
            return env
        pytest.fail("cannot find the lab's run directory (state.json) next to %s or in ARMADA_LAB_RUN" % self.inventory)
        return ""

    def tool(self, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
        """tests/lab/lab ARGS on this lab's run directory; fails the test with the tool's output on an error."""
        env = dict(os.environ, ARMADA_LAB_RUN=self.run_dir())
        res = subprocess.run([LAB_TOOL, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout, check=False)
        if res.returncode != 0:
            pytest.fail("tests/lab/lab %s failed (%d):\n%s" % (" ".join(args), res.returncode, res.stdout[-3000:]))
        return res

    def kill(self, host: str) -> None:
        """Power cut: SIGKILL the host's qemu (`tests/lab/lab kill`)."""
        self.tool("kill", host)

    def restart(self, host: str) -> None:
        """Boot a killed host again and wait for ssh (`tests/lab/lab restart`): same port, FRESH state."""
        self.tool("restart", host)

    def alive(self, host: str) -> bool:
        """The host's qemu runs (it may still be booting)."""
        env = dict(os.environ, ARMADA_LAB_RUN=self.run_dir())
        out = subprocess.run([LAB_TOOL, "status"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             env=env, check=False).stdout
        return any(line.split()[:1] == [host] and "DEAD" not in line for line in out.splitlines())

    def playbook(self, name: str, limit: List[str], extra: Optional[Dict] = None) -> Dict[str, dict]:
        """Run tests/integration/lab_playbooks/NAME on LIMIT; return what each host saved with the
        `save_result` convention (a JSON file per host in `result_dir`)."""
        with tempfile.TemporaryDirectory(prefix="lab-result-") as out:
            ev = dict(extra or {}, result_dir=out)
            cmd = [ANSIBLE_PLAYBOOK, "-i", self.inventory, "--limit", ",".join(limit),
                   "-e", json.dumps(ev), os.path.join(PLAYBOOKS, name)]
            env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
                       ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_FORKS="5", ANSIBLE_NOCOLOR="1")
            res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, env=env, timeout=900, check=False)
            if res.returncode != 0:
                pytest.fail("ansible-playbook %s failed (%d):\n%s" % (name, res.returncode, res.stdout[-6000:]))
            results = {}
            for host in limit:
                path = os.path.join(out, host + ".json")
                if not os.path.exists(path):
                    pytest.fail("%s saved no result; output:\n%s" % (host, res.stdout[-4000:]))
                with open(path, encoding="utf-8") as fh:
                    results[host] = json.load(fh)
            return results


def _running_inventory() -> Optional[str]:
    res = subprocess.run([LAB_TOOL, "inventory"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, check=False)
    path = res.stdout.strip()
    return path if res.returncode == 0 and os.path.isfile(path) else None


@pytest.fixture(scope="session")
def lab() -> Lab:
    wanted = os.environ.get("ARMADA_LAB_INVENTORY")
    if wanted:
        if not os.path.isfile(wanted):
            pytest.fail("ARMADA_LAB_INVENTORY=%s does not exist: the lab the runner booted is gone" % wanted)
        status = subprocess.run([LAB_TOOL, "status"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, check=False)
        if status.returncode != 0:
            pytest.fail("ARMADA_LAB_INVENTORY is set but the lab is not healthy:\n%s" % status.stdout)
        return Lab(wanted)
    found = _running_inventory()
    if not found:
        pytest.skip("no qemu lab running and ARMADA_LAB_INVENTORY unset: `make test` boots one "
                    "(or run `tests/lab/lab up 3` first)")
    return Lab(found)


def pytest_collection_modifyitems(session, config, items):
    """Run the journeys last. They leave the lab the way a fleet is left after a real rollout (the
    learned workload profile enforced, rules in its ``local/`` include, host state under
    /var/lib/armada-apparmor), which the per-feature lab tests must not inherit: their own profile for
    the same workload includes that ``local/`` file.

    The power-cut test (test_kill_lab.py) runs right before the journeys: it kills a guest and boots it
    again, so that host comes back fresh (image state). Running it after every other per-feature test
    means none of them can meet a host replaced under its feet; the journeys start from a clean fleet
    anyway (they remove their own state first)."""
    journeys = [it for it in items if it.nodeid.startswith("tests/integration/test_journeys.py")]
    kill = [it for it in items if it.nodeid.startswith("tests/integration/test_kill_lab.py")]
    if journeys or kill:
        rest = [it for it in items if it not in journeys and it not in kill]
        items[:] = rest + kill + journeys
