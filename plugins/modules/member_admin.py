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
    maint|drain|ready)) and V(http) (a request you describe in O(admin_request), for F5 iControl REST or NetScaler NITRO).
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
  description: The admin state read before the task; null when the provider cannot read it.
  type: str
  returned: success
  sample: enabled
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import ProfileError, parse_profile


def main() -> None:
    argument_spec = _providers.provider_argument_spec()
    argument_spec.update(
        state=dict(type='str', choices=list(_providers.ADMIN_STATES), required=True),
        admin_request=dict(type='dict', options=dict(
            method=dict(type='str', default='PATCH'), url=dict(type='str'), body=dict(type='raw'))),
        admin_values=dict(type='dict'),
    )
    required_if = [rule for rule in _providers.PROVIDER_REQUIRED_IF if rule[1] != 'http']
    required_if.append(('provider', 'http', ['endpoint', 'admin_request']))
    module = AnsibleModule(argument_spec=argument_spec, required_if=required_if, supports_check_mode=True)
    params = module.params
    try:
        _providers.check_common_options(params)
    except _providers.ProviderError as error:
        module.fail_json(msg=str(error))
    if params['provider'] not in _providers.ADMIN_PROVIDERS:
        module.fail_json(msg=f"provider: {params['provider']!r} cannot set an admin state; use one of {', '.join(_providers.ADMIN_PROVIDERS)}")
    if params['admin_values'] is not None and not params['query']:
        module.fail_json(msg='admin_values: needs query, the JMESPath expression that reads the admin state')
    unknown = sorted(set(params['admin_values'] or {}) - set(_providers.ADMIN_STATES))
    if unknown:
        module.fail_json(msg=f"admin_values: {unknown[0]!r} is not an admin state; use {', '.join(_providers.ADMIN_STATES)}")
    try:
        profile = parse_profile(params['profile'])
        provider = _providers.build_provider(params, profile)
        before = provider.admin_state()
        changed = before != params['state']
        if changed and not module.check_mode:
            provider.set_admin(params['state'])
            after = provider.admin_state()
            if after is not None and after != params['state']:
                module.fail_json(msg=f"the L4 still reports admin state {after!r} after being told {params['state']!r}",
                                 admin_state=after, previous_admin_state=before)
    except ProfileError as error:
        module.fail_json(msg=str(error), key=f'profile.{error.key}', value=error.value)
    except _providers.ProviderError as error:
        module.fail_json(msg=str(error))
    result = dict(changed=changed, admin_state=params['state'], previous_admin_state=before)
    if module._diff:
        result['diff'] = dict(before=f'admin_state: {before}\n', after=f"admin_state: {params['state']}\n")
    module.exit_json(**result)


if __name__ == '__main__':
    main()
