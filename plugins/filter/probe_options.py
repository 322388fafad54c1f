# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: probe_options
short_description: Check the options of a rollout's probe of its VIP, with their defaults filled
version_added: 0.1.0
description:
  - The probe is the collection's traffic generator sent at the user's own VIP from the controller for the whole
    rollout (the C(rolling_deploy_probe) variable of the C(l4vip.rollout.rolling_deploy) playbook). This filter checks
    its options and fills in the defaults; a wrong option fails with its name and value.
  - The result also holds C(arguments), the generator's command-line arguments for these options.
author:
  - l4vip.rollout maintainers (@l4vip)
positional: name
options:
  _input:
    description: The probe's options.
    type: dict
    required: true
    suboptions:
      urls:
        description: One or more http:// or https:// URLs of the VIP; the clients take them in turn.
        type: list
        elements: str
        required: true
      host_header:
        description: The C(Host) header to send (and, for https, the name the certificate must carry).
        type: str
      validate_certs:
        description: Verify https certificates (the system's authorities, or O(_input.ca_path)).
        type: bool
        default: true
      ca_path:
        description: A PEM file of the authorities to verify https certificates with.
        type: path
      keepalive_clients:
        description: Clients that each hold one keep-alive connection, the sessions an L4 keeps pinned to a member.
        type: int
        default: 2
      keepalive_interval:
        description: Seconds between one keep-alive client's requests.
        type: float
        default: 0.5
      new_connection_rate:
        description: Fresh one-request connections a second, the ones the L4 balances anew.
        type: float
        default: 2.0
      timeout:
        description: Seconds for each connect and each answer before the request counts as failed.
        type: float
        default: 2.0
      max_failed:
        description: The most failed requests the rollout may cost before the run fails.
        type: int
        default: 0
      dir:
        description:
          - Where the probe writes C(probe.json), its counts and every failed request; relative to the directory
            C(ansible-playbook) was started in.
        type: path
        default: rollout-report
  name:
    description: What the options are called in an error message.
    type: str
    default: probe
'''

EXAMPLES = r'''
- name: The probe's options, checked
  ansible.builtin.set_fact:
    probe: "{{ {'urls': ['https://www.example.com/'], 'max_failed': 0} | l4vip.rollout.probe_options('my_probe') }}"
'''

RETURN = r'''
_value:
  description: The options with every default filled, and C(arguments), the traffic generator's arguments.
  type: dict
'''

from ansible.errors import AnsibleFilterError


def probe_options(options, name='probe'):
    # Imported when called, as every filter of this collection does (docs/architecture.md, Filters).
    from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError
    from ansible_collections.l4vip.rollout.plugins.plugin_utils._probe import probe_options as _probe_options

    try:
        return _probe_options(options)
    except OptionError as error:
        raise AnsibleFilterError(f'{name}: {error}') from None


class FilterModule:
    def filters(self):
        return {'probe_options': probe_options}
