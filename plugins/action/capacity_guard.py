# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""capacity_guard: in the controller's process when the task runs on the controller, else the module (see plugin_utils/_in_process.py).

Either way the claims are the rollout's: the ansible-playbook process that runs it, named here on the controller.
"""

from __future__ import annotations

import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _claims, _guard
from ansible_collections.l4vip.rollout.plugins.plugin_utils._in_process import L4StepAction, rollout_owner


class ActionModule(L4StepAction):
    argument_spec = staticmethod(_guard.capacity_guard_spec)
    step = staticmethod(_guard.capacity_guard)

    def mutually_exclusive(self) -> list[t.Any]:
        return _guard.MUTUALLY_EXCLUSIVE

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        if not self._task.args.get('owner'):
            self._task.args['owner'] = rollout_owner(task_vars or {}).as_dict()
        result = super().run(tmp, task_vars)
        # Claims kept on another host cannot see this controller's processes: the owners of blocking (or listed) claims that
        # ran here and are gone are proved gone here, and the guard asked once more with them named.
        here = _claims.this_machine()
        holders = list(result.get('blocked_by') or []) + [c['owner'] for c in (result.get('claims') or {}).values() if not c['lapsed']]
        gone = sorted({owner.key for owner in map(_claims.Owner.from_dict, holders) if owner.gone(here)})
        if (result.get('failed') or result.get('claims')) and gone and not self._task.args.get('gone_owners'):
            self._task.args['gone_owners'] = gone
            result = super().run(tmp, task_vars)
        return result
