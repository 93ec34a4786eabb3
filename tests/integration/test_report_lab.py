"""The fleet report of real enforce-mode denials on the lab, opened in headless Chromium (issue 18).

On every lab host two copies of cat run under their own enforce-mode profiles (which allow nothing but the
program itself and abstractions/base) and read files they may not: /etc/hostname, and - for the first probe - a
file whose name holds quotes, ``<script>``, ``{{ }}`` and a newline. The kernel DENIES each read and logs it.
Then armada.apparmor.report runs twice through ansible-playbook:

1. the report lists those denials as possible intrusions, grouped across hosts (expected from what the probes
   did, read back from report.json with json); the page shows the counts of report.json, the hostile name as
   text, a profile filter narrows the intrusion table, no console error, no network request; a screenshot is
   saved (build/test-artifacts/report-lab.png);
2. nothing new happened: the probes are not in the second report, and every host has a position.

Everything the test adds is removed at the end (profiles unloaded, files deleted).
"""
import json
import os
import subprocess
import tempfile

import pytest
from chained_steps import step_chain
from report_browser import Browser, check_report_page

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
PROBES = ["armada-report-probe", "armada-report-probe2"]
# a file name cannot hold "/": no closing tag, but an opening <script> and an <img onerror=...>
HOSTILE = "/var/tmp/armada-report \"q\" '<script>alert(1)<img src=x onerror=alert(2)>'\n{{ lookup('env','HOME') }}"
PROFILE = """abi <abi/3.0>,
include <tunables/global>
profile {name} /usr/local/bin/{name} {{
  include <abstractions/base>
  /usr/local/bin/{name} mr,
}}
"""

step = step_chain("report")


def _printf_quote(text):
    """TEXT as a printf format that writes it (newlines as \\n), single-quoted for sh."""
    return "'%s'" % text.replace("\\", "\\\\").replace("\n", "\\n").replace("'", "'\\''").replace("%", "%%")


def setup_command():
    cmds = []
    for name in PROBES:
        cmds.append("cp /bin/cat /usr/local/bin/%s" % name)
        cmds.append("printf '%%s' %s > /etc/apparmor.d/%s" % (_sh(PROFILE.format(name=name)), name))
        cmds.append("apparmor_parser -r -W /etc/apparmor.d/%s" % name)
    name = _printf_quote(HOSTILE) + "'\\000'"  # NUL-terminated for xargs -0
    cmds.append("printf %s | xargs -0 sh -c 'echo secret > \"$1\"' sh" % name)
    # each read is refused in enforce mode (cat fails: || true); the kernel logs one DENIED record per open
    cmds.append("printf %s | xargs -0 /usr/local/bin/armada-report-probe >/dev/null 2>&1 || true" % name)
    for name in PROBES:
        cmds.append("/usr/local/bin/%s /etc/hostname >/dev/null 2>&1 || true" % name)
    return "set -e; " + "; ".join(cmds)


def _sh(text):
    return "'%s'" % text.replace("'", "'\\''")


def cleanup_command():
    cmds = []
    for name in PROBES:
        cmds.append("apparmor_parser -R /etc/apparmor.d/%s 2>/dev/null" % name)
        cmds.append("rm -f /etc/apparmor.d/%s /usr/local/bin/%s" % (name, name))
    cmds.append("rm -f /var/tmp/armada-report*")
    return "; ".join(cmds) + "; true"


class Run:
    def __init__(self, lab):
        self.lab = lab
        self.work = tempfile.mkdtemp(prefix="armada-report-lab-")
        self.hosts = sorted(lab.hosts)

    def report(self):
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
                   ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_FORKS="5",
                   ANSIBLE_NOCOLOR="1", PWD=self.work)
        extra = {"apparmor_programs": [{"path": "/usr/local/bin/" + n, "profile": n} for n in PROBES],
                 "apparmor_report_check_drift": False}
        # --limit: the lab's own hosts only (a trixie host, when booted, is in the inventory but not in group lab)
        res = subprocess.run([ANSIBLE_PLAYBOOK, "-i", self.lab.inventory, "--limit", ",".join(self.hosts),
                              "armada.apparmor.report",
                              "-e", json.dumps(extra)], cwd=self.work, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200, check=False)
        assert res.returncode == 0, res.stdout[-6000:]
        with open(os.path.join(self.work, "apparmor-report", "report.json"), encoding="utf-8") as fh:
            return json.load(fh)


@pytest.fixture(scope="module")
def run(lab):
    r = Run(lab)
    for h in r.hosts:
        res = lab.ssh(h, setup_command())
        assert res.returncode == 0, (h, res.stdout, res.stderr)
    yield r
    for h in r.hosts:
        lab.ssh(h, cleanup_command())


def probe_groups(report):
    return {(g["profile"], g["target"]): g for g in report["intrusions"] if g["profile"] in PROBES}


@step("1")
def test_report_lists_the_denials_and_the_page_shows_them(run):
    report = run.report()
    groups = probe_groups(report)
    expected = {("armada-report-probe", HOSTILE), ("armada-report-probe", "/etc/hostname"),
                ("armada-report-probe2", "/etc/hostname")}
    assert set(groups) == expected, sorted(groups)
    for g in groups.values():
        assert sorted(g["hosts"]) == run.hosts and g["kind"] == "file" and g["mask"] == "r", g
        assert g["comms"] == [g["profile"][:15]] and "open" in g["operations"]  # comm: 15 characters
        assert g["rule"] and g["answer"], g
    for h in report["hosts"]:
        rows = {r["profile"]: r for r in h["profiles"]}
        for name in PROBES:
            assert (rows[name]["mode_kernel"], rows[name]["mode_file"]) == ("enforce", "enforce"), rows[name]
            assert rows[name]["processes"] == {"confined": 0, "unconfined": 0}
    assert report["unverified"] == [] or all(g["profile"] not in PROBES for g in report["unverified"])

    browser = Browser()
    try:
        check_report_page(browser, os.path.join(run.work, "apparmor-report"), "report-lab.png")
        targets = [r.find_elements("tag name", "td")[3].text for r in browser.rows("intrusions")]
        assert HOSTILE.replace("\n", "\\n") in targets, targets
        assert len(browser.driver.find_elements("tag name", "script")) == 1
        browser.choose("f-profile", "armada-report-probe2")
        shown = browser.rows("intrusions")
        assert len(shown) == 1 < len(report["intrusions"])
        assert shown[0].find_elements("tag name", "td")[3].text == "/etc/hostname"
        assert browser.console_errors() == []
    finally:
        browser.close()


@step("2")
def test_second_report_has_nothing_new_of_the_probes(run):
    report = run.report()
    assert probe_groups(report) == {}
    with open(os.path.join(run.work, "apparmor-report", "positions.json"), encoding="utf-8") as fh:
        assert sorted(json.load(fh)["positions"]) == run.hosts
    assert len(os.listdir(os.path.join(run.work, "apparmor-report", "history"))) == 2
