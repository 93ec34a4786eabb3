"""Open a fleet report (apparmor-report/index.html) in headless Chromium through Selenium, and check it.

Shared by the unit browser test (hostile names) and the lab test (a report of real enforce-mode denials).
Chromium comes from Debian (`chromium`, `chromium-driver`: the Makefile's APT_PACKAGES); Selenium is pinned
in requirements.txt. The expected numbers always come from report.json, read here with json, never from the
code that rendered the page.
"""
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.environ.get("ARMADA_TEST_ARTIFACTS") or os.path.join(ROOT, "build", "test-artifacts")
COUNT_KEYS = ("hosts", "hosts_unreachable", "profiles", "drifted", "intrusions", "intrusion_records", "unverified",
              "unanswered")


class Browser:
    """One headless Chromium with console and network logging, in a fresh profile directory."""

    def __init__(self) -> None:
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.path.exists(path):
                pytest.fail("%s is missing: install Debian's chromium and chromium-driver (make setup, "
                            "scripts/ensure-apt.sh chromium chromium-driver)" % path)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.profile = tempfile.mkdtemp(prefix="armada-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1000", "--user-data-dir=" + self.profile):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, path: str) -> None:
        """Load the page; the logs of the start page (Chromium's new tab page) are drained first."""
        self.driver.get_log("performance")
        self.driver.get_log("browser")
        self.driver.get("file://" + os.path.abspath(path))

    def console_errors(self) -> List[Dict[str, Any]]:
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def requests(self, page_url: str) -> List[str]:
        """Every URL the load of ``page_url`` asked the network stack for (DevTools Network.requestWillBeSent of its
        loaderId), the page itself first. Chromium's own start page is another load and is left out."""
        sent = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                sent.append((msg["params"].get("loaderId"), msg["params"]["request"]["url"]))
        frames = {f for f, url in sent if url == page_url}
        return [url for f, url in sent if f in frames]

    def text(self, css: str) -> str:
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def rows(self, table_id: str, visible_only: bool = True) -> List[Any]:
        from selenium.webdriver.common.by import By
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#%s tbody tr" % table_id)
        return [r for r in rows if r.is_displayed()] if visible_only else rows

    def choose(self, select_id: str, value: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
        Select(self.driver.find_element(By.ID, select_id)).select_by_value(value)

    def screenshot(self, name: str) -> str:
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name)
        self.driver.save_screenshot(path)
        return path


def check_report_page(browser: Browser, report_dir: str, screenshot: str) -> Dict[str, Any]:
    """The checks every report page must pass; returns report.json for more specific assertions."""
    with open(os.path.join(report_dir, "report.json"), encoding="utf-8") as fh:
        report = json.load(fh)
    page = os.path.join(report_dir, "index.html")
    browser.open(page)
    for key in COUNT_KEYS:
        shown = browser.text("#count-" + key.replace("_", "-"))
        assert shown == str(report["summary"][key]), (key, shown, report["summary"][key])
    assert len(browser.rows("intrusions")) == len(report["intrusions"])
    assert len(browser.rows("unverified")) == len(report["unverified"])
    errors = browser.console_errors()
    assert errors == [], errors
    # the page itself is the one request (so the log is live), and nothing else was asked for
    url = "file://" + os.path.abspath(page)
    requests = browser.requests(url)
    assert requests == [url], requests
    browser.screenshot(screenshot)
    return report
