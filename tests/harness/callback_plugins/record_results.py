# Test-only: writes every task result to the JSON file named by L4VIP_TEST_RESULTS.
from __future__ import annotations

DOCUMENTATION = '''
name: record_results
type: aggregate
short_description: Record task results as JSON for the test harness
description:
  - Test-only; appends each task's result per host to the file named by L4VIP_TEST_RESULTS.
  - Each entry also holds C(started) and C(ended), epoch times of the task's start on that host and of its result,
    so that end-to-end tests can place client requests within a rollout's steps.
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'record_results'
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict] = []
        self.started: dict[tuple[str, str], float] = {}
        self.play = ''

    def v2_playbook_on_play_start(self, play) -> None:
        self.play = play.get_name()

    def v2_runner_on_start(self, host, task) -> None:
        self.started[(host.get_name(), task._uuid)] = time.time()

    def _record(self, result, status: str) -> None:
        host = result._host.get_name()
        self.results.append({'task': result.task_name, 'host': host, 'status': status, 'action': result._task.action, 'play': self.play,
                             'started': self.started.get((host, result._task._uuid)), 'ended': time.time(),
                             'result': dict(self._convert(result._result), failed=status == 'failed')})

    @staticmethod
    def _convert(value):
        return json.loads(json.dumps(value, default=str))

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._record(result, 'failed')

    def v2_runner_on_skipped(self, result) -> None:
        self._record(result, 'skipped')

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, 'unreachable')

    def v2_playbook_on_stats(self, stats) -> None:
        with open(os.environ['L4VIP_TEST_RESULTS'], 'w', encoding='utf-8') as handle:
            json.dump(self.results, handle)
