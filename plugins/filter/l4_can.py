# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: l4_can
short_description: What an L4 can be asked, from the options that reach it
version_added: 0.2.0
description:
  - The capabilities the provider (or the device preset) of these L4 options declares - the same declarations the modules
    act on, so that a role or playbook never keeps its own list of provider names.
  - V(observe) tells whether a member is bound; V(admin) reads and sets its admin state; V(sessions) counts the L4's
    sessions of a member; V(pool) lists the pool's members; V(batches) follows several members in one task; V(claims)
    keeps the rollouts' claims in the L4.
author:
  - l4vip.rollout maintainers (@l4vip)
options:
  _input:
    description: The L4 options, as for the modules (C(provider), and C(preset) with V(http)); a missing provider is V(timer).
    type: dict
    required: true
'''

EXAMPLES = r'''
- name: Count the L4's sessions only where it can
  l4vip.rollout.session_drain:
    members: [web1]
  when: "'sessions' in (my_l4 | l4vip.rollout.l4_can)"
'''

RETURN = r'''
_value:
  description: The capability names, sorted.
  type: list
  elements: str
'''

from ansible.errors import AnsibleFilterError


def l4_can(options):
    # Imported when called, as every filter of this collection does (docs/architecture.md, Filters).
    from ansible_collections.l4vip.rollout.plugins.module_utils import _providers

    if not isinstance(options, dict):
        raise AnsibleFilterError(f'l4_can: expected the L4 options as a dict, got {options!r}')
    try:
        cls = _providers.provider_class_for(dict(options, provider=options.get('provider') or 'timer'))
    except _providers.ProviderError as error:
        raise AnsibleFilterError(f'l4_can: {error}') from None
    return sorted(capability.name.lower() for capability in cls.capabilities)


class FilterModule:
    def filters(self):
        return {'l4_can': l4_can}
