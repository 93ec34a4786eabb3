# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the fleet report (thin adapters over module_utils/report.py and report_html.py)."""

import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.armada.apparmor.plugins.filter.pending_answers import _Dumper, _plain, _Unsafe
from ansible_collections.armada.apparmor.plugins.module_utils import report as report_mod
from ansible_collections.armada.apparmor.plugins.module_utils import report_html

DOCUMENTATION = r"""
name: fleet_report
short_description: Build the fleet report (docs/report.md) from what every host returned
version_added: 0.2.0
author: armada.apparmor contributors
description:
  - Validates and coerces what the hosts returned (untrusted data) and builds the report - per host and profile the
    mode in the kernel and in the file, drift, converged / pending / never exercised, processes, last update,
    backups; the possible intrusions (DENIED records, grouped, each with the answer that would allow it); the
    unverified ones (records from sources a local user can forge); the complain-mode accesses no answer decides.
  - Returns C(report) (the content of report.json) and C(positions) (host -> position token, only well-formed ones,
    for the controller's position file).
  - The companion filters C(report_html), C(report_text) and C(report_notice) render a report as the HTML page,
    as plain text for mail, and as the JSON body of the webhook.
positional: _input
options:
  _input:
    description:
      - Mapping of inventory host to C({status, convergence, denials, backups, failed, error, had_position}).
    type: dict
    required: true
  programs:
    description: C(apparmor_programs) - paths, or C({path, profile}).
    type: list
    elements: raw
  answers:
    description: The inventory answers (every C(apparmor_answers*) variable), to tell which accesses are answered.
    type: list
    elements: dict
  profiles:
    description: Only these profiles in the status rows (exact names); empty = programs, tracked and loaded ones.
    type: list
    elements: str
  all_loaded:
    description: Also list profiles that are only defined by a file.
    type: bool
    default: false
  report_id:
    description: The report's id (default - the UTC time, C(YYYYMMDDTHHMMSSZ)).
    type: str
  scope:
    description: C(full) (the report role) or C(status) (the status playbook - no logs read).
    type: str
    default: full
"""

EXAMPLES = r"""
- name: Build the report
  ansible.builtin.set_fact:
    report: "{{ collected | armada.apparmor.fleet_report(programs=apparmor_programs, answers=answers) }}"
  run_once: true

- name: The page
  ansible.builtin.copy:
    content: "{{ report.report | armada.apparmor.report_html }}"
    dest: apparmor-report/index.html
    mode: "0644"
"""

RETURN = r"""
_value:
  description: C({report, positions}).
  type: dict
"""


def answer_yaml(entry):
    """An answer entry as the YAML block a person pastes under apparmor_answers (``!unsafe``: host data)."""
    if not entry:
        return ""
    return yaml.dump([_Unsafe(_plain(entry))], Dumper=_Dumper, default_flow_style=False, sort_keys=False,
                     allow_unicode=True, width=10000)


def _with_yaml(report):
    """The report with each group's answer entry written as YAML text (report.json and the page show text)."""
    groups = list(report.get("intrusions") or []) + list(report.get("unverified") or [])
    groups += [g for p in report.get("unanswered") or [] for g in p["items"]]
    for g in groups:
        g["answer"] = answer_yaml(g.get("answer"))
    return report


def fleet_report(hosts, programs=None, answers=None, profiles=None, all_loaded=False, report_id="", scope="full"):
    """Filter entry point; input errors become AnsibleFilterError."""
    try:
        built = report_mod.build(hosts, programs=programs, answers=answers, profiles=profiles,
                                 all_loaded=bool(all_loaded), report_id=report_id or "", scope=scope)
        _with_yaml(built["report"])
        return built
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("fleet_report: %s" % exc) from None


def report_html_filter(report):
    """The self-contained page of a report."""
    return report_html.render(report)


def enforce_report_html(reports, unknown=None):
    """The enforce rollout's fleet summary page from the per-host reports."""
    return report_html.enforce_summary([r for r in reports or [] if isinstance(r, dict)], list(unknown or []))


def report_text(report, path=""):
    """Plain-text summary (mail body)."""
    return report_mod.summary_text(report, path)


def report_notice(report, path=""):
    """The webhook's JSON body (a dict)."""
    return report_mod.notice(report, path)


def report_positions(content, update=None):
    """Parse positions.json content to {host: token}; with ``update`` ({host: token}), the new file's content."""
    try:
        if update is not None:
            return report_mod.dump_positions(content if isinstance(content, dict) else
                                             report_mod.load_positions(content), update)
        return report_mod.load_positions(content)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("report_positions: %s" % exc) from None


def pass_table(result, records):
    """The profile_fleet pass table: lines of profile, hosts, allowed, denied, pending, converged."""
    try:
        return report_mod.pass_table(result, records)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("pass_table: %s" % exc) from None


def program_path(program):
    """The path of an apparmor_programs entry (a path, or {path, profile})."""
    try:
        return report_mod.program_path(program)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("program_path: %s" % exc) from None


class FilterModule:
    """armada.apparmor.fleet_report, report_html, report_text, report_notice, report_positions, program_path,
    pass_table, enforce_report_html"""

    def filters(self):
        return {"fleet_report": fleet_report, "report_html": report_html_filter, "report_text": report_text,
                "report_notice": report_notice, "report_positions": report_positions, "program_path": program_path,
                "pass_table": pass_table, "enforce_report_html": enforce_report_html}
