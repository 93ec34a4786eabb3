"""The report page in a real headless Chromium: hostile names from host data are text, never markup.

The report is built by the report engine from events whose names carry quotes, ``<script>``, ``{{ }}`` and
newlines (a local user can put any of them in a file name and get it logged). What the browser shows is
compared with those names; the counts with report.json; the page must raise no console error, make no
network request and run no script but its own.
"""
import json
import os

import pytest
from report_browser import Browser, check_report_page

from ansible_collections.armada.apparmor.plugins.filter import fleet_report
from ansible_collections.armada.apparmor.plugins.module_utils import report_html

HOSTILE_PATH = "/tmp/\"quoted\" '<script>alert(document.title)</script>'\n{{ lookup('env','HOME') }}"
HOSTILE_COMM = "<img src=x onerror=alert(1)>"
HOSTILE_PROFILE = "/usr/bin/x<b>bold</b>"


def event(host, path, mode="DENIED", profile="/usr/bin/app", comm="app", forgeable=False, kind="file"):
    ev = {"id": "0" * 16, "kind": kind, "host": host, "profile": profile, "parent": profile, "child": None,
          "operations": ["open"], "modes": [mode], "mask": {"requested": "r", "denied": "r"}, "owner": True,
          "count": 2, "first_seen": 1700000000.5, "last_seen": 1700000100.5, "pids": [10], "comms": [comm],
          "forgeable": forgeable}
    if kind == "capability":
        ev.update(capname="net_admin", capability=12)
    else:
        ev["path"] = path
    return ev


def host_data(host, events, mode="enforce"):
    status = {"kernel": {"enabled": True}, "loaded": {"/usr/bin/app": mode, HOSTILE_PROFILE: "enforce"},
              "files": {"usr.bin.app": {"path": "/etc/apparmor.d/usr.bin.app", "mtime": 1700000000,
                                        "profiles": {"/usr/bin/app": {"mode": mode}}}},
              "drift": {}, "processes": {}}
    return {"status": status, "denials": {"events": events, "position": "aac1.0123456789abcdef.AAAA"},
            "backups": []}


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def write_report(tmp_path, hosts):
    built = fleet_report.fleet_report(hosts, programs=["/usr/bin/app"], report_id="20251205T160000Z")
    out = tmp_path / "apparmor-report"
    out.mkdir()
    (out / "report.json").write_text(json.dumps(built["report"]))
    (out / "index.html").write_text(report_html.render(built["report"]))
    return str(out)


def test_hostile_names_render_as_text_and_filters_narrow_the_table(tmp_path, browser):
    hosts = {
        "web1": host_data("web1", [event("web1", HOSTILE_PATH, comm=HOSTILE_COMM),
                                   event("web1", "/etc/shadow"),
                                   event("web1", None, kind="capability", profile=HOSTILE_PROFILE),
                                   event("web1", "/var/forged", forgeable=True)]),
        "web2": host_data("web2", [event("web2", HOSTILE_PATH, comm=HOSTILE_COMM)]),
        "db1": host_data("db1", [event("db1", "/etc/passwd", mode="ALLOWED")], mode="complain"),
    }
    report = check_report_page(browser, write_report(tmp_path, hosts), "report-hostile-names.png")
    d = browser.driver
    # no script of the names ran: no alert, the title untouched, exactly the page's own script element
    assert d.title.startswith("AppArmor fleet report")
    assert len(d.find_elements("tag name", "script")) == 1 and d.find_elements("tag name", "img") == []
    assert d.find_elements("css selector", "#intrusions b") == []
    cells = [r.find_elements("tag name", "td") for r in browser.rows("intrusions")]
    targets = [c[3].text for c in cells]
    # the newline is shown as the two characters \n (one_line), everything else verbatim
    assert HOSTILE_PATH.replace("\n", "\\n") in targets, targets
    assert HOSTILE_COMM in [c[5].text for c in cells]
    assert HOSTILE_PROFILE in [c[0].text for c in cells]
    assert len(report["intrusions"]) == 3 and len(report["unverified"]) == 1
    # the unverified record is not among the intrusions
    assert "/var/forged" not in targets and browser.rows("unverified")[0].find_elements("tag name", "td")[3].text \
        == "/var/forged"

    # filters: by host, then kind, then back to all
    browser.choose("f-host", "web2")
    shown = browser.rows("intrusions")
    assert len(shown) == 1 and shown[0].find_elements("tag name", "td")[3].text == HOSTILE_PATH.replace("\n", "\\n")
    assert browser.text("#intrusions-shown") == "1"
    browser.choose("f-host", "")
    browser.choose("f-kind", "capability")
    assert [r.find_elements("tag name", "td")[3].text for r in browser.rows("intrusions")] == ["net_admin"]
    browser.choose("f-kind", "")
    assert len(browser.rows("intrusions")) == 3
    # sorting by count puts the two-host group (4 records) last, then first
    header = d.find_elements("css selector", "#intrusions thead th")[7]
    header.click()
    assert browser.rows("intrusions")[-1].find_elements("tag name", "td")[7].text == "4"
    header.click()
    assert browser.rows("intrusions")[0].find_elements("tag name", "td")[7].text == "4"
    assert browser.console_errors() == []
    os.makedirs(os.path.dirname(browser.screenshot("report-hostile-names-filtered.png")), exist_ok=True)
