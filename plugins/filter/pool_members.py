# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: pool_members
short_description: The members of one L4 pool, as the inventory knows them
version_added: 0.2.0
description:
  - From a list of inventory hosts, the names (as the L4 knows them) of those whose L4 settings name O(pool) - for the
    capacity guard where the L4 cannot list its pool (the V(timer) and V(http) providers).
  - A host's L4 settings are the dict in its variable O(variable) (for example C(l7_vip_deploy_l4)); its member name is
    that dict's C(member), else the host's name. Hosts without the variable are in no pool.
author:
  - l4vip.rollout maintainers (@l4vip)
positional: hostvars, variable, pool
options:
  _input:
    description: The hosts to look at, for example C(ansible_play_hosts_all).
    type: list
    elements: str
    required: true
  hostvars:
    description: Pass the C(hostvars) magic variable.
    type: dict
    required: true
  variable:
    description: The name of the variable that holds each host's L4 settings.
    type: str
    required: true
  pool:
    description: The pool.
    type: str
    required: true
'''

EXAMPLES = r'''
- name: Every member of this host's pool
  ansible.builtin.debug:
    msg: "{{ ansible_play_hosts_all | l4vip.rollout.pool_members(hostvars, 'l7_vip_deploy_l4', l7_vip_deploy_l4.pool) }}"
'''

RETURN = r'''
_value:
  description: Member names, in the order of the input.
  type: list
  elements: str
'''


def pool_members(hosts, hostvars, variable, pool):
    members = []
    for host in hosts:
        settings = hostvars[host].get(variable) or {}
        if pool is not None and settings.get('pool') == pool:
            members.append(settings.get('member') or host)
    return members


class FilterModule:
    def filters(self):
        return {'pool_members': pool_members}
