#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: check_inputs
short_description: Check a role's variables against its argument spec, then the role's own checks, in one task
version_added: 0.2.0
description:
  - Validates the variables a role's argument spec names (O(argument_spec), as Ansible's own role validation does),
    and only when they pass, renders the variable O(errors_var) names - the role's own checks of what a spec cannot
    say (a file that must exist, two options that go together), a list of messages - and fails with every message.
  - The order matters. The role's checks may read its variables as the spec declares them (a dict's keys, a list's
    items); with a variable of the wrong type they would fail on the expression, not with a message that names it.
  - The deploy roles run it before anything changes, once per member. Changes nothing.
  - Runs on the controller, as an action; there is no module to run on a host.
author:
  - l4vip.rollout maintainers (@l4vip)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Changes nothing in any mode.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  argument_spec:
    description:
      - The role's C(meta/argument_specs.yml), read on the controller.
      - Omitted, only O(errors_var) is checked (where Ansible validated the role's entry point itself).
    type: path
  entry_point:
    description: The entry point of O(argument_spec) whose options to validate.
    type: str
    default: main
  errors_var:
    description:
      - The name of a variable whose value is a list of error messages, empty when every input is right.
    type: str
    required: true
'''

EXAMPLES = r'''
- name: Check the role's variables, then what its argument spec cannot say
  l4vip.rollout.check_inputs:
    argument_spec: "{{ role_path }}/meta/argument_specs.yml"
    errors_var: my_role_input_errors
  vars:
    my_role_input_errors: >-
      {{ [] if my_role_config_file is file else ['my_role_config_file: ' ~ (my_role_config_file | to_json) ~ ' is no file'] }}
'''

RETURN = r'''
argument_errors:
  description: What the argument spec found wrong; the role's own checks did not run when this is not empty.
  returned: always
  type: list
  elements: str
input_errors:
  description: The messages of O(errors_var).
  returned: when the argument spec passed
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(argument_spec={'argument_spec': {'type': 'path'}, 'entry_point': {'type': 'str', 'default': 'main'},
                                          'errors_var': {'type': 'str', 'required': True}}, supports_check_mode=True)
    module.fail_json(msg='l4vip.rollout.check_inputs runs on the controller as an action; it has no module to run on a host')


if __name__ == '__main__':
    main()
