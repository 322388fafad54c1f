"""pool_members: the inventory's members of one pool, by the L4's names."""

from __future__ import annotations

from ansible_collections.l4vip.rollout.plugins.filter.pool_members import pool_members

HOSTVARS = {
    'web1': {'l7_vip_deploy_l4': {'pool': 'web', 'member': 'srv-a'}},
    'web2': {'l7_vip_deploy_l4': {'pool': 'web'}},
    'api1': {'l7_vip_deploy_l4': {'pool': 'api'}},
    'lb': {},
}


def test_members_of_the_pool_by_their_l4_name_in_inventory_order():
    assert pool_members(['lb', 'web1', 'api1', 'web2'], HOSTVARS, 'l7_vip_deploy_l4', 'web') == ['srv-a', 'web2']


def test_no_pool_is_no_member():
    assert pool_members(list(HOSTVARS), HOSTVARS, 'l7_vip_deploy_l4', None) == []
