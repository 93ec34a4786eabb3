# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback for test_check_mode_lab.py: every task result with its play and role, as one JSON file.

ansible-core 2.19 ships no json stdout callback; the test needs to know WHICH role reported a change, so each
record carries the play name and the role name (None for plain play tasks).
"""
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: check_mode_results
type: aggregate
short_description: Write task results (play, role, task, host) and stats to the file named by ARMADA_CHECK_RESULTS
description:
  - Test helper for tests/integration/test_check_mode_lab.py.
requirements:
  - enabled with ANSIBLE_CALLBACKS_ENABLED=check_mode_results
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "check_mode_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks = []
        self.play = ""

    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name()

    def _add(self, result, status):
        task = result._task
        role = task._role.get_name(include_role_fqcn=False) if task._role else None
        self.tasks.append({"play": self.play, "role": role, "task": task.get_name(), "host": result._host.get_name(),
                           "status": status, "result": dict(result._result)})

    def v2_runner_on_ok(self, result, **kwargs):
        self._add(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._add(result, "failed")

    def v2_runner_on_skipped(self, result, **kwargs):
        self._add(result, "skipped")

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._add(result, "unreachable")

    def v2_runner_item_on_ok(self, result):
        self._add(result, "item_ok")

    def v2_playbook_on_stats(self, stats):
        out = {"tasks": self.tasks, "stats": {h: stats.summarize(h) for h in sorted(stats.processed)}}
        path = os.environ.get("ARMADA_CHECK_RESULTS")
        if path:
            with open(path + ".tmp", "w", encoding="utf-8") as fh:
                json.dump(out, fh, default=str)
            os.replace(path + ".tmp", path)
