# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: batch_plan
short_description: Cut VIP groups into rolling-deploy batches, group by group
version_added: 0.1.0
description:
  - Cuts each inventory group of the input list into batches by the rules of C(serial) (a host count, or a percentage
    of that group; the last item repeats), and puts the groups' batches one after the other.
  - The result's C(hosts) and C(serial) make a play whose batches never hold hosts of two groups.
  - A host in several groups goes with the first group that names it.
author:
  - l4vip.rollout maintainers (@l4vip)
positional: groups, serial, first, max_out
options:
  _input:
    description: The inventory groups, in the order to deploy them.
    type: list
    elements: str
    required: true
  groups:
    description: The inventory's groups and their hosts; pass the C(groups) magic variable.
    type: dict
    required: true
  serial:
    description: A host count, a percentage such as V(25%), or a list of them (V([1, "50%"]) deploys one host first).
    type: raw
    required: true
  first:
    description:
      - Hosts an earlier, half-done run left out of the VIP. Each group's such hosts make its first batch, on their own,
        so finishing them takes no other member out.
    type: list
    elements: str
    default: []
  max_out:
    description:
      - Slots instead of batches - a host count, or a percentage of each group (rounded down, at least 1). Each group is
        then one batch (its left-out hosts first), and C(max_out) in the result gives each host its group's number.
      - V(serial) is then not used for cutting.
    type: raw
'''

EXAMPLES = r'''
- name: Plan batches over two VIPs, one canary host first in each
  ansible.builtin.set_fact:
    plan: "{{ ['vip_a', 'vip_b'] | l4vip.rollout.batch_plan(groups, [1, '50%']) }}"

- name: Or slots - at most a quarter of each VIP out at once, each member going as soon as another is back
  ansible.builtin.set_fact:
    plan: "{{ ['vip_a', 'vip_b'] | l4vip.rollout.batch_plan(groups, 1, [], '25%') }}"
'''

RETURN = r'''
_value:
  description: The plan.
  type: dict
  contains:
    hosts:
      description: Every host, in deploy order.
      type: list
      elements: str
    serial:
      description: The size of each batch, in order; a play's C(serial) list.
      type: list
      elements: int
    batches:
      description: Each batch with its C(group), its C(number) within the group and its C(hosts).
      type: list
      elements: dict
    max_out:
      description: With O(max_out), each host's slots (its group's count); empty without.
      type: dict
'''

from ansible.errors import AnsibleFilterError


def batch_plan(group_names, groups, serial, first=None, max_out=None):
    # Imported when called, as every filter of this collection does (docs/architecture.md, Filters).
    from ansible_collections.l4vip.rollout.plugins.plugin_utils._batches import BatchError, plan

    try:
        return plan(group_names, groups, serial, first or (), max_out).as_dict()
    except BatchError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {'batch_plan': batch_plan}
