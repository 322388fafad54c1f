# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: profile
short_description: Complete and check an L4 profile, optionally scaled in time
version_added: 0.1.0
description:
  - Fills in the defaults of an L4 profile (the same dict every module and role takes), refuses unknown keys and bad
    values with an error that names the key, and multiplies its times (C(interval), C(check_timeout), C(idle_timeout))
    by O(scale) - to rehearse a real L4's numbers faster.
author:
  - l4vip.rollout maintainers (@l4vip)
positional: scale
options:
  _input:
    description: The profile; missing keys take their defaults.
    type: dict
    required: true
  scale:
    description: Multiplies the profile's times; V(1) keeps them.
    type: float
    default: 1
'''

EXAMPLES = r'''
- name: A 10 s interval and one retry (the reference device) at 1/20 speed - checks every 0.5 s
  ansible.builtin.debug:
    msg: "{{ {'interval': 10, 'retry': 1} | l4vip.rollout.profile(0.05) }}"
'''

RETURN = r'''
_value:
  description: The complete profile.
  type: dict
'''

import math

from ansible.errors import AnsibleFilterError


def profile(value, scale=1.0):
    # Imported when called, as every filter of this collection does (docs/architecture.md, Filters).
    from ansible_collections.l4vip.rollout.plugins.module_utils._timing import ProfileError, parse_profile

    try:
        factor = float(scale)
    except (TypeError, ValueError):
        factor = math.nan
    if not math.isfinite(factor) or factor <= 0:
        raise AnsibleFilterError(f'profile: scale must be a number above 0, got {scale!r}')
    try:
        return parse_profile(value).scaled(factor).as_dict()
    except ProfileError as error:
        raise AnsibleFilterError(f'profile: {error}') from None


class FilterModule:
    def filters(self):
        return {'profile': profile}
