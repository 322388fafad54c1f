# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: host_profile
short_description: The L4 profile of a host's VIP, from the one variable that sets it
version_added: 0.2.0
description:
  - Picks the L4 profile a host's deploy role gets in C(l4vip.rollout.rolling_deploy) - O(rolling_deploy), else the
    L7 role's own O(l7), else the L4 role's own O(l4) (which makes the health check C(l4) unless it says otherwise),
    else an empty profile (every default) - and refuses a host where O(rolling_deploy) and a role's own profile are
    both set and differ, naming both variables and their values.
  - The profile's C(health_check) then picks the role. A null value counts as unset.
author:
  - l4vip.rollout maintainers (@l4vip)
positional: rolling_deploy, l7, l4
options:
  _input:
    description: The host's name, for the error message.
    type: str
    required: true
  rolling_deploy:
    description: The host's C(rolling_deploy_profile).
    type: dict
  l7:
    description: The host's C(l7_vip_deploy_profile).
    type: dict
  l4:
    description: The host's C(l4_vip_deploy_profile).
    type: dict
'''

EXAMPLES = r'''
- name: The profile this host's deploy role gets
  ansible.builtin.set_fact:
    host_profile: >-
      {{ inventory_hostname | l4vip.rollout.host_profile(rolling_deploy_profile | default(none),
                                                         l7_vip_deploy_profile | default(none), l4_vip_deploy_profile | default(none)) }}
'''

RETURN = r'''
_value:
  description: The profile, as given (the role completes it with its defaults).
  type: dict
'''

import json
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

_NAMES = {'rolling_deploy': 'rolling_deploy_profile', 'l7': 'l7_vip_deploy_profile', 'l4': 'l4_vip_deploy_profile'}


def _shown(value: object) -> str:
    return json.dumps(value, default=str)


def host_profile(host: str, rolling_deploy: Mapping | None = None, l7: Mapping | None = None, l4: Mapping | None = None) -> dict:
    given = {key: value for key, value in (('rolling_deploy', rolling_deploy), ('l7', l7), ('l4', l4)) if value is not None}
    for key, value in given.items():
        if not isinstance(value, Mapping):
            raise AnsibleFilterError(f'{_NAMES[key]}: expected a dict (the L4 profile of {host}\'s VIP), got {_shown(value)}')
    if 'rolling_deploy' in given:
        differing = [f'{_NAMES[key]}: {_shown(given[key])}' for key in ('l7', 'l4') if key in given and dict(given[key]) != dict(rolling_deploy)]
        if differing:
            raise AnsibleFilterError(
                f'rolling_deploy_profile: {_shown(rolling_deploy)} and {" and ".join(differing)} are both set for {host} and differ: '
                'set the profile once (rolling_deploy_profile picks the role)')
        return dict(rolling_deploy)
    if 'l7' in given:
        return dict(l7)
    if 'l4' in given:
        return {'health_check': 'l4', **l4}
    return {}


class FilterModule:
    def filters(self):
        return {'host_profile': host_profile}
