"""Debian 13 (trixie: kernel 6.12, AppArmor 4.1 userspace) end to end, through the playbooks users run.

One chained scenario on the lab's `trixie` host (tests/lab/lab flavour trixie; kept out of the groups
lab/canary/rest, so no other test runs on it): profile_fleet learns tests/integration/trixie_playbooks/
armada-abi4 in complain mode and updates it with an ABI 4.0 rule (`userns create,`) -> enforce rollout ->
the program works, with no DENIED record -> an access outside the profile is DENIED -> restore gives back the
pre-enforce file (sha256) -> cleanup leaves the host as it was.

What the 6.12 kernel with Debian's policy logs (measured, docs/lab.md "Debian 13"): `userns_create` (class
namespace) for a profile compiled with `abi <abi/4.0>`; `uring_sqpoll` only for policy compiled against the
kernel's features, because Debian's abi/4.0 file has no io_uring class (so under the ABI 4.0 profiles learn
writes, io_uring is not mediated: no record, and the setup works in enforce mode); no fine-grained unix
(network_v8 only), no mqueue (no ipc feature). Expectations come from those kernel records, read raw from
audit.log, and from what the program reports - never from the code under test.
"""
import json
import os
import shutil
import time

import pytest
import yaml
from chained_steps import step_chain
from test_journeys import Journey, task_results

pytestmark = pytest.mark.lab

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = "/usr/local/bin/armada-abi4"
PROFILE_FILE = "/etc/apparmor.d/usr.local.bin.armada-abi4"
STATE = "/var/lib/armada-apparmor"
SECRET = "/var/tmp/armada-abi4-secret.txt"
# Debian 13's apparmor package ships ~100 profile files (unconfined `userns,` stubs). Every status read parses
# each file (host.status: names from one apparmor_parser run, flags from the profile model): measured ~7 min
# per read under TCG on the loaded machine. The scenario moves them aside and puts them back at the end.
SHIPPED = "/var/tmp/armada-abi4-shipped"
ALL_OK = {"config": "ok", "io_uring": "ok", "unix": "ok", "userns": "ok"}

step = step_chain("trixie")


class Trixie(Journey):
    """The journey's working directory, with this scenario's inventory (group_vars) and the trixie host."""

    def __init__(self, lab, work):
        super().__init__(lab, work)
        shutil.rmtree(os.path.join(self.inv, "group_vars"))
        shutil.copytree(os.path.join(HERE, "trixie_playbooks", "group_vars"), os.path.join(self.inv, "group_vars"))
        self.host = lab.groups["trixie"][0]
        self.hosts = [self.host]

    def records(self, since: float, needle: str = "apparmor="):
        """Raw AppArmor records of our profile in audit.log stamped after SINCE (the guest's clock)."""
        out = self.must(self.host, "grep -h 'profile=\"%s' /var/log/audit/audit.log || true" % PROGRAM)
        res = []
        for line in out.splitlines():
            stamp = line.split("audit(", 1)[1].split(":", 1)[0] if "audit(" in line else "0"
            if float(stamp) >= since and needle in line:
                res.append(line)
        return res

    # the journey's helpers default to the workload's profile: this scenario's program instead
    def record(self, host):
        return json.loads(self.must(host, "cat %s/convergence.json" % STATE))["profiles"][PROGRAM]

    def kernel_mode(self, host, name=PROGRAM):
        return super().kernel_mode(host, name)

    def sha(self, host, path=PROFILE_FILE):
        return super().sha(host, path)

    def now(self) -> float:
        return float(self.must(self.host, "date +%s.%N"))

    def program(self, args: str = ""):
        rc, out = self.sh(self.host, "%s %s" % (PROGRAM, args))
        return rc, json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trixie(lab, tmp_path_factory):
    if not lab.groups.get("trixie"):
        pytest.skip("the lab has no trixie host (make test boots one: tests/lab/lab up 4 --flavours "
                    "auditd,kernlog,journald,trixie)")
    t = Trixie(lab, str(tmp_path_factory.mktemp("trixie")))
    with open(os.path.join(HERE, "trixie_playbooks", "armada-abi4"), encoding="utf-8") as fh:
        prog = fh.read()
    # lab.ssh gives the command no stdin: the program goes in a here-document
    res = lab.ssh(t.host, "cat > %s <<'ARMADA_ABI4_EOF'\n%sARMADA_ABI4_EOF\nchmod 0755 %s" % (PROGRAM, prog, PROGRAM))
    assert res.returncode == 0, res.stderr
    # unload by name (securityfs): an interrupted run may have left the profile loaded without its file
    unload = "printf %%s %s > /sys/kernel/security/apparmor/.remove 2>/dev/null" % PROGRAM
    t.must(t.host, unload + "; rm -rf %s %s /var/backups/armada-apparmor; "
                   "mkdir -p /etc/armada-abi4 && echo 'interval=1' > /etc/armada-abi4/abi4.conf && "
                   "echo 'not for the program' > %s; true" % (PROFILE_FILE, STATE, SECRET))
    # an interrupted run left them aside: back first, so the listing compared at the end is Debian's
    t.must(t.host, "if [ -d {s} ]; then mv -t /etc/apparmor.d {s}/* && rmdir {s}; fi".format(s=SHIPPED))
    t.shipped = t.must(t.host, "ls /etc/apparmor.d | sort | sha256sum")
    t.must(t.host, "mkdir {s} && find /etc/apparmor.d -maxdepth 1 -type f -exec mv -t {s} {{}} +".format(s=SHIPPED))
    yield t
    t.sh(t.host, unload + "; rm -rf %s %s /var/backups/armada-apparmor /etc/armada-abi4 %s %s"
         % (PROFILE_FILE, STATE, SECRET, PROGRAM))
    t.must(t.host, "mv -t /etc/apparmor.d {s}/* && rmdir {s}".format(s=SHIPPED))
    assert t.must(t.host, "ls /etc/apparmor.d | sort | sha256sum") == t.shipped, "the shipped profiles are not back"


@step("platform")
def test_platform_is_debian13_with_apparmor4(trixie):
    t = trixie
    out = t.must(t.host, "uname -r; /usr/sbin/apparmor_parser --version | head -1; ls /etc/apparmor.d/abi; "
                         "cat /etc/debian_version")
    assert out.splitlines()[0].startswith("6.12."), out
    assert "AppArmor parser version 4.1" in out, out
    assert "4.0" in out.split() and out.splitlines()[-1].startswith("13."), out


@step("learn")
def test_learn_and_update_with_abi4_rules(trixie):
    t = trixie
    t0 = t.now()
    t.play("profile_fleet", {"apparmor_profile_fleet_passes": 2, "apparmor_update_default": "allow"})
    runs = 1
    while not t.record(t.host)["converged"] and runs < 3:
        t.play("profile_fleet", {"apparmor_update_default": "allow"})
        runs += 1
    rec = t.record(t.host)
    assert rec["converged"] is True and rec["pending"] == 0, rec
    assert t.kernel_mode(t.host) == "complain"
    text = t.must(t.host, "cat %s" % PROFILE_FILE)
    # learn wrote the host's newest ABI (Debian 13 ships abi/3.0 and abi/4.0), update the ABI 4.0 rule
    assert "abi <abi/4.0>," in text, text
    assert "userns create," in text, text
    assert "%s r," % "/etc/armada-abi4/abi4.conf" in text, text
    assert "io_uring" not in text, text
    # the kernel itself logged the user namespace (complain: ALLOWED), and nothing for io_uring under ABI 4.0
    userns = t.records(t0, 'operation="userns_create"')
    assert userns and all('apparmor="ALLOWED"' in r and 'class="namespace"' in r for r in userns), userns
    assert not t.records(t0, "uring_"), t.records(t0, "uring_")
    # the guest's own apparmor_parser 4.1 compiles the written profile
    t.must(t.host, "apparmor_parser -QK %s" % PROFILE_FILE)


@step("enforce")
def test_enforce_then_the_program_runs_without_denials(trixie):
    t = trixie
    t.original = t.sha(t.host)
    t.play("enforce", {"apparmor_enforce_soak_seconds": 5})
    with open(os.path.join(t.work, "apparmor-enforce-report", t.host + ".yml")) as fh:
        assert yaml.safe_load(fh)["status"] == "enforced"
    assert t.kernel_mode(t.host) == "enforce"
    t0 = t.now()
    rc, out = t.program()
    assert rc == 0 and out == ALL_OK, out
    t.must(t.host, "sleep 1")
    assert not t.records(t0, 'apparmor="DENIED"'), t.records(t0, 'apparmor="DENIED"')


@step("denied")
def test_an_access_outside_the_profile_is_denied(trixie):
    t = trixie
    t0 = t.now()
    rc, out = t.program("--outside %s" % SECRET)
    assert out["outside"].startswith("errno 13"), out
    assert rc == 0 and {k: v for k, v in out.items() if k != "outside"} == ALL_OK, out
    records = []
    for _ in range(10):
        records = t.records(t0, 'apparmor="DENIED"')
        if records:
            break
        time.sleep(1)
    assert len(records) == 1 and 'name="%s"' % SECRET in records[0], records


@step("restore")
def test_restore_gives_back_the_pre_enforce_profile(trixie):
    t = trixie
    t.play("restore")
    assert t.sha(t.host) == t.original
    assert t.kernel_mode(t.host) == "complain"
    rows = task_results(t.play("status"), "Fleet table")
    lines = list(rows.values())[0]["msg"]
    assert [line for line in lines if line.startswith(t.host + " ") and PROGRAM in line and "complain" in line], lines
