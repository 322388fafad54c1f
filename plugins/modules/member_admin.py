#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: member_admin
short_description: Take a member out of its L4 pool administratively, or put it back
version_added: 0.1.0
description:
  - Tells the L4 to stop giving a member new connections (V(disabled) or V(drain)) or to give it new connections again
    (V(enabled)), without waiting for health checks. This closes the window of an L4-checked VIP, where the web server's
    port is closed before the L4 has noticed.
  - Works through the providers that can write - V(emulator), V(haproxy) (C(set server <pool>/<member> state
    maint|drain|ready)), V(http) (a request you describe in O(admin_request), for F5 iControl REST or NetScaler NITRO, or
    the one its O(preset) knows), V(ipvs) (weight 0, removed, back as before) and V(aws_elbv2) (deregistered for V(drain)
    and V(disabled) alike, registered for V(enabled)).
  - With O(members), sets the state of every member of a batch (V(emulator), V(haproxy), V(ipvs), V(aws_elbv2), V(http)
    with O(preset)).
  - Reads the current state first and changes nothing when it is already as asked. With V(http) that needs O(query) and
    O(admin_values); without them every run reports a change.
author:
  - l4vip.rollout maintainers (@l4vip)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - l4vip.rollout.provider
  - l4vip.rollout.profile
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  state:
    description:
      - V(disabled) takes the member out (HAProxy MAINT, F5 forced offline); V(drain) stops new connections and keeps
        existing ones (HAProxy DRAIN, F5 disabled); V(enabled) puts it back.
      - Existing sessions continue in every state; M(l4vip.rollout.session_drain) tells when they are gone.
    type: str
    choices: [disabled, drain, enabled]
    required: true
  admin_request:
    description:
      - V(http) only. The request that sets this task's O(state) - one request per task, so a task that disables and one
        that enables each give their own.
    type: dict
    suboptions:
      method:
        description: HTTP method.
        type: str
        default: PATCH
      url:
        description: URL; O(endpoint) when not given.
        type: str
      body:
        description: JSON body.
        type: raw
  admin_values:
    description:
      - V(http) only. For each admin state, the answers of O(query) over O(endpoint) that mean it, so the module can
        read before it writes.
    type: dict
notes:
  - The timer and access_log providers cannot write; choosing them is an error.
seealso:
  - module: l4vip.rollout.member_wait
'''

EXAMPLES = r'''
- name: Put web1 in maintenance on HAProxy
  l4vip.rollout.member_admin:
    state: disabled
    provider: haproxy
    endpoint: /run/haproxy/admin.sock
    pool: web
    member: web1

- name: Force a BIG-IP pool member offline (iControl REST)
  l4vip.rollout.member_admin:
    state: disabled
    provider: http
    endpoint: https://bigip.example.com/mgmt/tm/ltm/pool/~Common~web/members/~Common~web1:80
    headers:
      X-F5-Auth-Token: "{{ f5_token }}"
    query: session
    admin_values:
      disabled: [user-disabled]
      enabled: [monitor-enabled, user-enabled]
    admin_request:
      method: PATCH
      body:
        session: user-disabled
        state: user-down
'''

RETURN = r'''
admin_state:
  description: The member's admin state after the task (in check mode, what it would be).
  type: str
  returned: success
  sample: disabled
previous_admin_state:
  description: The admin state read before the task; null when the provider cannot read it, or when the members of a batch differ.
  type: str
  returned: success
  sample: enabled
members:
  description: Each member's own C(changed), C(admin_state) and C(previous_admin_state), by name.
  type: dict
  returned: success
  sample: {"web1": {"changed": true, "admin_state": "disabled", "previous_admin_state": "enabled"}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _l4_steps


def main() -> None:
    module = AnsibleModule(argument_spec=_l4_steps.member_admin_spec(), required_if=_l4_steps.MEMBER_ADMIN_REQUIRED_IF, supports_check_mode=True)
    _l4_steps.run_in_module(module, _l4_steps.member_admin)


if __name__ == '__main__':
    main()
