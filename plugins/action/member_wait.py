# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""member_wait: in the controller's process when the task runs on the controller, else the module (see plugin_utils/_in_process.py).

Claims it releases are the rollout's: the ansible-playbook process that runs it, named here on the controller.
"""

from __future__ import annotations

import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _guard
from ansible_collections.l4vip.rollout.plugins.plugin_utils._in_process import L4StepAction, rollout_owner


class ActionModule(L4StepAction):
    argument_spec = staticmethod(_guard.member_wait_spec)
    step = staticmethod(_guard.member_wait)

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        if self._task.args.get('release_claims') and not self._task.args.get('owner'):
            self._task.args['owner'] = rollout_owner(task_vars or {}).as_dict()
        return super().run(tmp, task_vars)
