#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: capacity_guard
short_description: Refuse to take members out of a pool when too few would stay bound
version_added: 0.1.0
description:
  - Asks the L4 which members of O(pool) are bound now, and fails when taking O(leaving) out would leave fewer than
    O(min_bound) of them. The count comes from the L4, so a member that is already out (a half-done earlier run, a
    concurrent rollout, a dead server) counts as out.
  - Changes nothing on the L4. With O(claims_dir) it writes (and with O(release) removes) a claim file there.
  - Only the providers that can list a pool (V(emulator), V(haproxy)) can be asked. With the others the module returns
    RV(checked=false) and a warning, and does not fail.
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
    support: none
  platform:
    platforms: posix
options:
  leaving:
    description:
      - The members about to go out of O(pool) together (the batch), as the L4 names them. O(member) when not given.
    type: list
    elements: str
  min_bound:
    description:
      - How many members must stay bound.
    type: int
    default: 1
  claims_dir:
    description:
      - A directory every rollout of this pool shares (on the host that runs the guard). With it, the guard runs under a
        lock per pool, counts the members other rollouts have claimed as already out, and claims O(member) when it lets
        it go - so two rollouts started at once cannot take out more than O(min_bound) allows, even before the L4 has
        noticed the first one.
      - Without it the count is the L4's alone, which lags by up to the L4's detection time.
    type: path
  claim_ttl:
    description:
      - Seconds a claim holds before it expires (a rollout that died without releasing it).
    type: float
    default: 3600
  release:
    description:
      - Release O(member)'s claim in O(claims_dir) (when it is back in the VIP) instead of judging.
    type: bool
    default: false
seealso:
  - module: l4vip.rollout.member_wait
  - module: l4vip.rollout.member_admin
'''

EXAMPLES = r'''
- name: Keep at least two members of the web backend bound while web1 and web2 go out
  l4vip.rollout.capacity_guard:
    provider: haproxy
    endpoint: /run/haproxy/admin.sock
    pool: web
    member: web1
    leaving: [web1, web2]
    min_bound: 2
'''

RETURN = r'''
checked:
  description: Whether the L4 could be asked. False with the providers that cannot list a pool.
  type: bool
  returned: always
  sample: true
bound:
  description: The members bound now.
  type: list
  elements: str
  returned: when checked
  sample: [web1, web2, web3, web4]
remaining:
  description: The members that stay bound once O(leaving) is out.
  type: list
  elements: str
  returned: when checked
  sample: [web3, web4]
claimed_by_others:
  description: Members of the pool other rollouts hold (with O(claims_dir)); counted as out.
  type: list
  elements: str
  returned: when checked with O(claims_dir)
  sample: [web3]
leaving:
  description: The members going out.
  type: list
  elements: str
  returned: always
  sample: [web1, web2]
'''

import math
import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _capacity, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import ProfileError, parse_profile


def main() -> None:
    argument_spec = _providers.provider_argument_spec()
    argument_spec.update(
        leaving=dict(type='list', elements='str'),
        min_bound=dict(type='int', default=1),
        claims_dir=dict(type='path'),
        claim_ttl=dict(type='float', default=3600.0),
        release=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, required_if=_providers.PROVIDER_REQUIRED_IF, supports_check_mode=True)
    params = module.params
    try:
        _providers.check_common_options(params)
    except _providers.ProviderError as error:
        module.fail_json(msg=str(error))
    leaving = params['leaving'] if params['leaving'] is not None else [m for m in [params['member']] if m]
    try:
        _capacity.check_min_bound(params['min_bound'])
    except _capacity.CapacityError as error:
        module.fail_json(msg=str(error))
    if not (math.isfinite(params['claim_ttl']) and params['claim_ttl'] > 0):
        module.fail_json(msg=f"claim_ttl: must be a number of seconds above 0, got {params['claim_ttl']!r}")
    if params['release']:
        if not params['claims_dir'] or not params['member']:
            module.fail_json(msg='release: needs claims_dir and member')
        released = False if module.check_mode else _capacity.release_claim(params['claims_dir'], params['pool'] or '', params['member'])
        module.exit_json(changed=released, checked=False, leaving=leaving)
    if params['provider'] not in _providers.POOL_PROVIDERS:
        module.warn(f"capacity not checked: provider {params['provider']!r} cannot list the pool "
                    f"(only {', '.join(_providers.POOL_PROVIDERS)} can)")
        module.exit_json(changed=False, checked=False, leaving=leaving)
    others: list[str] = []
    try:
        provider = _providers.build_provider(params, parse_profile(params['profile']))
        if params['claims_dir'] and not module.check_mode:
            verdict, others = _capacity.judge_and_claim(
                params['claims_dir'], params['pool'], provider.pool_bindings, leaving, params['member'], params['min_bound'],
                owner=f'{socket.gethostname()}:{os.getppid()}', ttl=params['claim_ttl'], now=time.time)
        else:
            verdict = _capacity.judge(params['pool'], provider.pool_bindings(), leaving, params['min_bound'])
    except ProfileError as error:
        module.fail_json(msg=str(error), key=f'profile.{error.key}', value=error.value)
    except (_providers.ProviderError, _capacity.CapacityError) as error:
        module.fail_json(msg=str(error), leaving=leaving)
    except OSError as error:
        module.fail_json(msg=f"claims_dir: {error}", leaving=leaving)
    claimed = f"; claimed by another rollout: {', '.join(others)}" if others else ''
    if not verdict.allowed:
        module.fail_json(msg=f'capacity guard: {verdict.explain()}{claimed}', checked=True, claimed_by_others=others, **verdict.as_dict())
    module.exit_json(changed=bool(params['claims_dir']) and not module.check_mode, checked=True, msg=verdict.explain() + claimed,
                     claimed_by_others=others, **verdict.as_dict())


if __name__ == '__main__':
    main()
