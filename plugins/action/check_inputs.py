# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""check_inputs: a role's argument spec, then its own checks, in one task on the controller."""

from __future__ import annotations

import typing as t

import yaml
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


def entry_point_options(path: str, entry_point: str) -> dict[str, t.Any]:
    """The options of one entry point of a role's meta/argument_specs.yml (each task runs in a process of its own, so
    nothing is kept between calls: 1 ms with libyaml for the deploy roles' 12 kB)."""
    with open(path, encoding='utf-8') as spec_file:
        specs = (yaml.load(spec_file, Loader=_Loader) or {}).get('argument_specs', {})
    if entry_point not in specs:
        raise AnsibleActionFail(f'entry_point: {entry_point!r} is not an entry point of {path} (it has {", ".join(specs) or "none"})')
    return specs[entry_point].get('options') or {}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(('argument_spec', 'entry_point', 'errors_var'))

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._task.args
        errors_var = args.get('errors_var')
        if not isinstance(errors_var, str) or not errors_var:
            raise AnsibleActionFail(f'errors_var: expected the name of a variable, got {errors_var!r}')
        result['changed'] = False
        result['argument_errors'] = []
        if args.get('argument_spec'):
            options = entry_point_options(str(args['argument_spec']), str(args.get('entry_point') or 'main'))
            # As Ansible's own role validation: the variables the spec names, rendered.
            given = self._templar.template({name: task_vars[name] for name in options if name in task_vars})
            found = ArgumentSpecValidator(options).validate(given, validate_role_argument_spec=True).error_messages
            if found:
                result.update(failed=True, argument_errors=found, msg='Validation of arguments failed:\n' + '\n'.join(found))
                return result
        if errors_var not in task_vars:
            raise AnsibleActionFail(f'errors_var: no variable {errors_var} is defined')
        messages = self._templar.template(task_vars[errors_var])
        if not isinstance(messages, list) or not all(isinstance(message, str) for message in messages):
            raise AnsibleActionFail(f'errors_var: {errors_var} must be a list of messages, got {messages!r}')
        result['input_errors'] = messages
        if messages:
            result.update(failed=True, msg='; '.join(messages))
        else:
            result['msg'] = 'Every input checked'
        return result
