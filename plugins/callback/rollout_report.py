# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: rollout_report
type: aggregate
short_description: Write a rollout report - JSON, and a timeline picture of each host out of the VIP
version_added: 0.1.0
description:
  - Records when each step of the roles P(l4vip.rollout.l7_vip_deploy#role) and P(l4vip.rollout.l4_vip_deploy#role) ran on each
    host, and, at the end of the playbook, writes C(report.json), C(timeline.svg) (one bar per host, in the order the
    rollout ran - when it was leaving, out of, and coming back into the VIP) and C(report.md), which embeds the picture
    and compares the L4's detection times with the timing model's windows.
  - The per-host figures come from the summaries the roles publish with C(set_stats) - the same AWX shows.
  - Enable it with C(callbacks_enabled = l4vip.rollout.rollout_report) in C(ansible.cfg) or C(ANSIBLE_CALLBACKS_ENABLED).
author:
  - l4vip.rollout maintainers (@l4vip)
requirements:
  - enable in configuration
options:
  report_dir:
    description: The directory the report is written to (created when missing).
    type: path
    default: rollout-report
    env:
      - name: L4VIP_ROLLOUT_REPORT_DIR
    ini:
      - section: callback_rollout_report
        key: report_dir
  traffic_file:
    description:
      - The traffic generator's JSON, when it has been written by the end of the playbook; its failed requests are marked
        on the timeline. Otherwise add it later with C(python -m ansible_collections.l4vip.rollout.plugins.plugin_utils._report).
      - When the rolling deploy ran a probe of the VIP (C(rolling_deploy_probe)), the report takes what the probe saw
        instead, and this file is not read.
    type: path
    env:
      - name: L4VIP_ROLLOUT_TRAFFIC_FILE
    ini:
      - section: callback_rollout_report
        key: traffic_file
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase

from ansible_collections.l4vip.rollout.plugins.plugin_utils import _report

ROLES = ('l7_vip_deploy', 'l4_vip_deploy')


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'l4vip.rollout.rollout_report'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.playbook: str | None = None
        self.steps: dict[str, list[dict]] = {}
        self.started: dict[tuple[str, str], float] = {}

    @staticmethod
    def _is_role_step(task) -> bool:
        role = getattr(task, '_role', None)
        return role is not None and role.get_name().split('.')[-1] in ROLES

    def v2_playbook_on_start(self, playbook) -> None:
        self.playbook = os.path.basename(playbook._file_name)

    def v2_runner_on_start(self, host, task) -> None:
        if self._is_role_step(task):
            self.started[(host.get_name(), task._uuid)] = time.time()

    def _finish(self, result, status: str) -> None:
        task = result._task
        if not self._is_role_step(task):
            return
        host = result._host.get_name()
        start = self.started.pop((host, task._uuid), None)
        name = task.get_name().split(' : ', 1)[-1]  # without the role's prefix
        self.steps.setdefault(host, []).append({'name': name, 'status': status, 'start': start, 'end': time.time(),
                                                'changed': bool(result._result.get('changed'))})

    def v2_runner_on_ok(self, result) -> None:
        self._finish(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._finish(result, 'failed')

    def v2_runner_on_unreachable(self, result) -> None:
        self._finish(result, 'unreachable')

    def v2_playbook_on_stats(self, stats) -> None:
        summaries = (stats.custom or {}).get('_run', {}).get('l4vip_rollout', {})
        if not summaries and not self.steps:
            return  # no deploy role ran: nothing to report
        # What the rolling deploy's probe of the VIP saw (published with set_stats), else a traffic file.
        traffic = (stats.custom or {}).get('_run', {}).get('l4vip_rollout_probe')
        traffic_file = self.get_option('traffic_file')
        if traffic is None and traffic_file and os.path.exists(traffic_file):
            with open(traffic_file, encoding='utf-8') as handle:
                traffic = json.load(handle)
        report = _report.build(summaries, self.steps, traffic, self.playbook, time.time())
        paths = _report.write(report, self.get_option('report_dir'))
        self._display.display(f"rollout report: {paths[_report.REPORT_MD]} (timeline: {paths[_report.TIMELINE_SVG]})")
