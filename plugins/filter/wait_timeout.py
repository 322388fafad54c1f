# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: wait_timeout
short_description: How long a wait for the L4 gives up after, by the timing model
version_added: 0.1.0
description:
  - The limit M(l4vip.rollout.member_wait) uses when it is given no O(l4vip.rollout.member_wait#module:timeout) - the
    worst case of the transition for the profile, plus one interval. The roles show it in their task names, so every
    wait says how long it may take.
author:
  - l4vip.rollout maintainers (@l4vip)
positional: state, failure
options:
  _input:
    description: The L4 profile.
    type: dict
    required: true
  state:
    description: The transition waited for.
    type: str
    choices: [down, up]
    required: true
  failure:
    description: How the member fails its checks (for V(down)).
    type: str
    choices: [fast, timeout]
    default: fast
'''

EXAMPLES = r'''
- name: A 10 s interval and one retry (the reference device) - a wait for down gives up after 30 s
  ansible.builtin.debug:
    msg: "{{ {'interval': 10, 'retry': 1} | l4vip.rollout.wait_timeout('down') }}"
'''

RETURN = r'''
_value:
  description: Seconds.
  type: float
'''

from ansible.errors import AnsibleFilterError


def wait_timeout(profile, state, failure='fast'):
    # Imported when called, as every filter of this collection does (docs/architecture.md, Filters).
    from ansible_collections.l4vip.rollout.plugins.module_utils._timing import default_timeout, parse_profile, transition_window

    try:
        parsed = parse_profile(profile)
        return round(default_timeout(transition_window(parsed, state, failure), parsed), 3)  # to the ms: it is read by people
    except ValueError as error:  # a bad profile (ProfileError is one), state or failure
        raise AnsibleFilterError(f'wait_timeout: {error}') from None


class FilterModule:
    def filters(self):
        return {'wait_timeout': wait_timeout}
