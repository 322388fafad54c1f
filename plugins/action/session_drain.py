# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""session_drain: in the controller's process when the task runs on the controller, else the module (see plugin_utils/_in_process.py)."""

from __future__ import annotations

from ansible_collections.l4vip.rollout.plugins.module_utils import _session_drain
from ansible_collections.l4vip.rollout.plugins.plugin_utils._in_process import L4StepAction


class ActionModule(L4StepAction):
    argument_spec = staticmethod(_session_drain.session_drain_spec)
    step = staticmethod(_session_drain.session_drain)
