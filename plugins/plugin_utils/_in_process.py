# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugins that run their step in the controller's process when the task runs on the controller.

Internal to the l4vip.rollout collection; not a public API.

A module run costs a fork, an interpreter start and the module's imports (about half a second on
a small machine), several times per batch; the step itself is a few HTTP or runtime-API requests
or a file rename. So when the task's connection is the controller's own (``local``, without
become), the step runs in the worker process Ansible already has: the L4 steps (wait for the L4,
admin state, capacity guard, session count), which run on the controller by default, and the
member steps of members that are the controller itself. Anywhere else (over SSH, a become user),
or with the variable ``l4vip_rollout_in_process`` false, the module runs as usual, with the same
options and the same result.
"""

from __future__ import annotations

import os
import socket
import typing as t

# The HTTP providers' URL library, loaded here because ansible-playbook's own process loads this file (its strategy looks
# at the step's action class): the workers it forks for the L4 steps inherit it instead of importing it each (27 ms here).
import ansible.module_utils.urls  # noqa: F401  pylint: disable=unused-import
from ansible import constants as C
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase

from ansible_collections.l4vip.rollout.plugins.module_utils import _claims, _l4_steps, _provider_base


def preload() -> None:
    """Build here, once, what every worker would otherwise build for its first request to an HTTP L4: the default TLS
    context (the system's CA bundle, 30 ms of CPU to load on a small machine)."""
    _provider_base.tls_context(_provider_base.HttpSettings())


preload()  # in ansible-playbook's own process, as the URL library above


def rollout_owner(task_vars: t.Mapping[str, t.Any]) -> _claims.Owner:
    """This rollout: the worker's parent is the ansible-playbook process; AWX names its job in a variable and the environment."""
    job = task_vars.get('awx_job_id') or task_vars.get('tower_job_id') or os.environ.get('JOB_ID') or ''
    return _claims.Owner.of_process(os.getppid(), str(job))


def controller_claims() -> _l4_steps.ClaimsPlace:
    """Claims kept on the controller live under ANSIBLE_HOME: only the rollouts started here with that home see them."""
    return _l4_steps.ClaimsPlace(os.path.join(C.config.get_config_value('ANSIBLE_HOME'), 'l4vip.rollout', 'claims'), socket.gethostname(),
                                 controller_only=True)


class InProcessAction(ActionBase):
    """Subclasses name the step and its argument spec, both shared with the module."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def argument_spec(self) -> dict[str, t.Any]:
        raise NotImplementedError

    def required_if(self) -> list[t.Any]:
        return []

    def mutually_exclusive(self) -> list[t.Any]:
        return []

    def step(self, params: t.Mapping[str, t.Any], ctx: _l4_steps.Context) -> dict[str, t.Any]:
        """The step; a failure raises ``_l4_steps.StepFailed``."""
        raise NotImplementedError

    def runs_in_process(self, task_vars: dict[str, t.Any]) -> bool:
        wanted = self._templar.template(task_vars.get('l4vip_rollout_in_process', True))
        return bool(wanted) and getattr(self._connection, 'transport', None) == 'local' and not self._play_context.become

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        if not self.runs_in_process(task_vars or {}):
            result.update(self._execute_module(module_name=self._task.resolved_action or self._task.action, module_args=self._task.args,
                                               task_vars=task_vars))
            return result
        validator = ArgumentSpecValidator(self.argument_spec(), required_if=self.required_if(), mutually_exclusive=self.mutually_exclusive())
        validation = validator.validate(self._task.args)
        hidden = validation._no_log_values  # pylint: disable=protected-access  # the values no_log options carry
        if validation.error_messages:
            result.update(failed=True, msg=', '.join(validation.error_messages))
            return result
        params = validation.validated_parameters
        ctx = _l4_steps.Context(check_mode=bool(self._play_context.check_mode), diff=bool(self._play_context.diff),
                                claims=controller_claims())
        try:
            outcome = self.step(params, ctx)
        except _l4_steps.StepFailed as error:
            outcome = dict(error.detail, failed=True, msg=str(error))
        outcome.setdefault('changed', False)
        if ctx.warnings:
            outcome['warnings'] = ctx.warnings
        outcome['invocation'] = {'module_args': params}
        result.update(remove_values(outcome, hidden))
        return result


class L4StepAction(InProcessAction):
    """The L4 steps: their options share the provider's required_if."""

    def required_if(self) -> list[t.Any]:
        return _l4_steps.PROVIDER_REQUIRED_IF
