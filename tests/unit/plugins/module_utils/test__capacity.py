from __future__ import annotations

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _capacity
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


# --- claims ----------------------------------------------------------------------------------


def claim(directory, member, now=1000.0, ttl=60.0):
    verdict, others, _claimed = _capacity.judge_and_claim(str(directory), 'vip', lambda: FOUR_BOUND, [member], 3, 'test', ttl, lambda: now)
    return verdict, others


def test_a_batch_claims_every_member_and_a_renewed_claim_is_not_new(tmp_path):
    verdict, _others, claimed = _capacity.judge_and_claim(str(tmp_path), 'vip', lambda: FOUR_BOUND, ['web1', 'web2'], 2, 'test', 60.0,
                                                          lambda: 1000.0)
    assert verdict.allowed and claimed == ['web1', 'web2']
    assert sorted(p.name for p in tmp_path.glob('*.claim')) == ['vip.web1.claim', 'vip.web2.claim']
    # The same batch again (a re-run): allowed, nothing new claimed.
    assert _capacity.judge_and_claim(str(tmp_path), 'vip', lambda: FOUR_BOUND, ['web1', 'web2'], 2, 'test', 60.0, lambda: 1001.0)[2] == []
    # Another rollout's batch sees both out.
    refused, others, claimed = _capacity.judge_and_claim(str(tmp_path), 'vip', lambda: FOUR_BOUND, ['web3'], 2, 'other', 60.0, lambda: 1002.0)
    assert not refused.allowed and others == ['web1', 'web2'] and claimed == []


def test_a_claim_counts_as_out_for_the_next_guard(tmp_path):
    first, others = claim(tmp_path, 'web1')
    assert first.allowed and others == []
    # The L4 still binds web1, but its claim holds: web2 may not go too.
    second, others = claim(tmp_path, 'web2')
    assert not second.allowed and others == ['web1'] and second.remaining == ['web3', 'web4']
    assert sorted(p.name for p in tmp_path.glob('*.claim')) == ['vip.web1.claim']


def test_expired_and_released_claims_no_longer_count(tmp_path):
    claim(tmp_path, 'web1', now=1000.0, ttl=60.0)
    assert claim(tmp_path, 'web2', now=1061.0)[0].allowed  # web1's claim expired at 1060
    assert _capacity.release_claim(str(tmp_path), 'vip', 'web2') and not _capacity.release_claim(str(tmp_path), 'vip', 'web2')


def test_a_members_own_claim_does_not_count_against_it(tmp_path):
    claim(tmp_path, 'web1')
    again, others = claim(tmp_path, 'web1')  # a re-run of the same member
    assert again.allowed and others == []


def test_claims_dir_must_exist(tmp_path):
    with pytest.raises(CapacityError, match='claims_dir: .* is not a directory'):
        claim(tmp_path / 'missing', 'web1')


def test_the_verdict_names_the_bound_members_as_a_list_and_min_bound_as_a_count():
    verdict = judge('vip', {**FOUR_BOUND, 'web4': False}, ['web1'], 2)
    assert verdict.as_dict() == {'pool': 'vip', 'bound_members': ['web1', 'web2', 'web3'], 'leaving': ['web1'], 'remaining': ['web2', 'web3'],
                                 'min_bound': 2, 'allowed': True}


def test_a_dry_run_reads_the_claims_and_writes_nothing(tmp_path):
    def dry(member, directory=tmp_path):
        return _capacity.judge_and_claim(str(directory), 'vip', lambda: FOUR_BOUND, [member], 3, 'test', 60.0, lambda: 1000.0, dry_run=True)

    verdict, others, claimed = dry('web1', tmp_path / 'missing')  # no directory yet: nothing held, nothing created
    assert verdict.allowed and (others, claimed) == ([], ['web1']) and not (tmp_path / 'missing').exists()
    claim(tmp_path, 'web1')
    before = sorted(p.name for p in tmp_path.iterdir())
    assert dry('web1')[2] == []  # already held: a real run would only renew it
    refused, others, claimed = dry('web2')
    assert not refused.allowed and others == ['web1'] and claimed == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert _capacity.release_claim(str(tmp_path), 'vip', 'web1', dry_run=True) and (tmp_path / 'vip.web1.claim').exists()
