# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: every task result and the play recap as one JSON file, for test_journeys.py.

ansible-core 2.19 no longer ships a json stdout callback (it moved to ansible.posix, not installed here), so
the journey tests keep the default human-readable output for their logs and read results from this file.
"""
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: journey_results
type: aggregate
short_description: Write task results and stats to the JSON file named by ARMADA_JOURNEY_RESULTS
description:
  - Test helper for tests/integration/test_journeys.py.
requirements:
  - enabled with ANSIBLE_CALLBACKS_ENABLED=journey_results
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "journey_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks = []

    def _add(self, result, status):
        res = dict(result._result)
        res["_status"] = status
        self.tasks.append({"task": result._task.get_name(), "host": result._host.get_name(), "result": res})

    def v2_runner_on_ok(self, result, **kwargs):
        self._add(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._add(result, "failed")

    def v2_runner_on_skipped(self, result, **kwargs):
        self._add(result, "skipped")

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._add(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        out = {"tasks": self.tasks, "stats": {h: stats.summarize(h) for h in sorted(stats.processed)}}
        path = os.environ.get("ARMADA_JOURNEY_RESULTS")
        if path:
            with open(path + ".tmp", "w", encoding="utf-8") as fh:
                json.dump(out, fh, default=str)
            os.replace(path + ".tmp", path)
