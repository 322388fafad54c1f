# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""health_check: in the controller's process when the member is the controller itself, else the module (see plugin_utils/_in_process.py)."""

from __future__ import annotations

import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _health_check, _l4_steps
from ansible_collections.l4vip.rollout.plugins.plugin_utils._in_process import InProcessAction


class ActionModule(InProcessAction):
    argument_spec = staticmethod(_health_check.argument_spec)

    def step(self, params: t.Mapping[str, t.Any], ctx: _l4_steps.Context) -> dict[str, t.Any]:
        try:
            return _health_check.run(params, check_mode=ctx.check_mode, want_diff=ctx.diff, run_command=ctx.run_command)
        except _health_check.ERRORS as error:
            raise _l4_steps.StepFailed(str(error), **error.detail) from None
