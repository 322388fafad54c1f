from __future__ import annotations

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._capacity import CapacityError, judge

FOUR_BOUND = {'web1': True, 'web2': True, 'web3': True, 'web4': True}


@pytest.mark.parametrize(
    ('bindings', 'leaving', 'min_bound', 'remaining', 'allowed'),
    [
        (FOUR_BOUND, ['web1'], 1, ['web2', 'web3', 'web4'], True),
        (FOUR_BOUND, ['web1', 'web2'], 2, ['web3', 'web4'], True),
        (FOUR_BOUND, ['web1', 'web2', 'web3'], 2, ['web4'], False),
        # A member already out (an earlier run, a dead server) is not counted as staying.
        ({**FOUR_BOUND, 'web3': False}, ['web1', 'web2'], 2, ['web4'], False),
        # The leaving member itself already out: nothing more is lost.
        ({'web1': False, 'web2': True}, ['web1'], 1, ['web2'], True),
        ({'web1': True}, ['web1'], 1, [], False),
        ({'web1': True}, ['web1'], 0, [], True),
    ],
)
def test_counts_what_stays_bound(bindings, leaving, min_bound, remaining, allowed):
    verdict = judge('vip', bindings, leaving, min_bound)
    assert (verdict.remaining, verdict.allowed) == (remaining, allowed)


def test_explains_who_goes_and_who_stays():
    verdict = judge('vip', {**FOUR_BOUND, 'web4': False}, ['web1', 'web2'], 2)
    assert verdict.explain() == ("taking out web1, web2 leaves 1 of 3 bound member(s) in pool 'vip' (web3); min_bound is 2")
    assert verdict.as_dict()['allowed'] is False


def test_unknown_member_names_the_pool_and_its_members():
    with pytest.raises(CapacityError, match=r"leaving: the L4 has no member 'web9' in pool 'vip'; its members are web1, web2"):
        judge('vip', {'web1': True, 'web2': True}, ['web9'], 1)


def test_negative_min_bound_is_refused():
    with pytest.raises(CapacityError, match=r'min_bound: must be 0 or more, got -1'):
        judge('vip', FOUR_BOUND, ['web1'], -1)


def test_the_verdict_names_the_bound_members_as_a_list_and_min_bound_as_a_count():
    verdict = judge('vip', {**FOUR_BOUND, 'web4': False}, ['web1'], 2)
    assert verdict.as_dict() == {'pool': 'vip', 'bound_members': ['web1', 'web2', 'web3'], 'leaving': ['web1'], 'remaining': ['web2', 'web3'],
                                 'min_bound': 2, 'out': ['web4'], 'max_out': None, 'allowed': True}


def test_slots_count_every_member_out_whyever_it_is_out():
    # web4 is down for its own reasons: with web1 leaving, two are out.
    assert judge('vip', {**FOUR_BOUND, 'web4': False}, ['web1'], 1, max_out=2).allowed
    full = judge('vip', {**FOUR_BOUND, 'web4': False}, ['web1'], 1, max_out=1)
    assert not full.allowed and not full.room and full.explain().endswith('out already: web4, max_out is 1')
    # A member that is out already and leaves again takes no second slot.
    assert judge('vip', {**FOUR_BOUND, 'web4': False}, ['web4'], 1, max_out=1).allowed


def test_max_out_below_one_is_refused_naming_it():
    with pytest.raises(CapacityError, match='max_out: must be 1 or more, got 0'):
        judge('vip', FOUR_BOUND, ['web1'], 1, max_out=0)
