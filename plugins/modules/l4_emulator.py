#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: l4_emulator
short_description: Start, query and stop the embedded L4 emulator as a background service
version_added: 0.1.0
description:
  - Runs the collection's embedded L4 emulator on the target as a background process, with VIP listeners that balance
    client connections over members, health checks with Suspect, retry and rise, a session table with idle aging,
    optional reset on port fail, and a JSON control API with Prometheus metrics.
  - Meant for tests, molecule scenarios and rehearsals of a rollout; it behaves like an L4 in direct server return
    mode as far as clients and web servers can tell, including the keep-alive trap.
  - Starting with a configuration the running emulator already has is no change; a different configuration restarts it.
author:
  - l4vip.rollout maintainers (@l4vip)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description:
      - V(started) starts the emulator unless it already runs with this O(config), and waits until it is ready.
      - V(stopped) stops it (SIGTERM, SIGKILL after O(stop_timeout)) and leaves no process behind.
      - V(query) changes nothing and reports whether it runs and where.
    type: str
    choices: [started, stopped, query]
    default: started
  config:
    description:
      - The emulator's configuration; required with O(state=started).
      - C(vips) (required) is a list of VIPs, each with C(name), C(listen) (C(address:port), port 0 picks a free one),
        C(balancing) (C(round_robin) or C(least_sessions)) and C(members), a list of C(name) and C(address) (C(address:port)).
      - C(profile) is the L4 profile, the same dict as the C(profile) option of the other modules of this collection.
      - C(control) is where the control API listens, C(127.0.0.1:0) by default (loopback, a free port). The API has no
        authentication; an address that is not loopback is accepted with a warning.
      - C(aged_session_action) is what a packet of an aged-out session meets, C(rst) (default) or C(drop).
      - C(check_source) is the address health checks leave from, C(127.0.0.2) by default, distinct from the data path's
        as an L4's self IP is; V(null) lets the kernel choose.
      - C(seed) makes the health checks' phases repeatable.
    type: dict
  pidfile:
    description:
      - Where the emulator's process id is kept. Its state (C(<pidfile>.state.json)), configuration, log and a copy of
        its sources are kept beside it. The directory must exist.
    type: path
    required: true
  startup_timeout:
    description:
      - Seconds to wait for the emulator to be ready before failing with the tail of its log.
    type: float
    default: 10.0
  stop_timeout:
    description:
      - Seconds to wait after SIGTERM before SIGKILL.
    type: float
    default: 10.0
'''

EXAMPLES = r'''
- name: Start an emulated VIP in front of two web servers
  l4vip.rollout.l4_emulator:
    pidfile: /tmp/l4vip-emulator.pid
    config:
      profile:
        interval: 1
        retry: 1
      vips:
        - name: web
          listen: 127.0.0.10:8080
          members:
            - name: web1
              address: 127.0.0.11:8080
            - name: web2
              address: 127.0.0.12:8080
  register: emulator

- name: Read the members' state from the control API
  ansible.builtin.uri:
    url: "{{ emulator.control_url }}/api/vips/web"
  register: vip

- name: Stop it
  l4vip.rollout.l4_emulator:
    pidfile: /tmp/l4vip-emulator.pid
    state: stopped
'''

RETURN = r'''
running:
  description: Whether the emulator runs after the task (in check mode, whether it would).
  type: bool
  returned: always
  sample: true
pid:
  description: Its process id.
  type: int
  returned: when running
  sample: 4242
control_url:
  description: Base URL of the control API.
  type: str
  returned: when running
  sample: http://127.0.0.1:40123
vips:
  description: Each VIP's name and the address it listens on.
  type: dict
  returned: when running
  sample: {"web": "127.0.0.10:8080"}
config_digest:
  description: Identifies the running configuration; the same configuration gives the same digest.
  type: str
  returned: when running
  sample: 3f2a9c0d1e2b4a5c
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _emulator_service as service


def main() -> None:
    module = AnsibleModule(argument_spec=service.ARGUMENT_SPEC, required_if=service.REQUIRED_IF, supports_check_mode=True)
    try:
        result = service.run(module.params, check_mode=module.check_mode, warn=module.warn)
    except service.ServiceError as error:
        module.fail_json(msg=str(error), **error.detail)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
