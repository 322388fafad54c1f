from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ansible_collections.l4vip.rollout.plugins.plugin_utils._batches import BatchError, batch_size, plan, split

HOSTS = [f'web{n}' for n in range(1, 9)]


@pytest.mark.parametrize(
    ('item', 'group_size', 'size'),
    [(1, 8, 1), ('3', 8, 3), ('25%', 8, 2), ('50%', 3, 1), ('10%', 4, 1), ('100%', 5, 5), (' 50 % ', 4, 2), ('12.5%', 8, 1)],
)
def test_batch_size_follows_serial(item, group_size, size):
    assert batch_size(item, group_size) == size


@pytest.mark.parametrize(
    ('item', 'message'),
    [(0, "serial: 0 must be at least 1"), (-2, "serial: -2 must be at least 1"), ('0%', "serial: '0%' must be a percentage"),
     ('150%', "serial: '150%' must be a percentage"), ('half', "serial: 'half' is neither"), (True, 'serial: True is neither'),
     (None, 'serial: None is neither'), (1.5, 'serial: 1.5 is neither')],
)
def test_bad_serial_items_name_the_option_and_value(item, message):
    with pytest.raises(BatchError, match='^' + message.replace('(', r'\(')):
        batch_size(item, 4)


def test_last_item_repeats_like_serial():
    assert split(HOSTS, [1, '25%']) == [['web1'], ['web2', 'web3'], ['web4', 'web5'], ['web6', 'web7'], ['web8']]
    assert split(HOSTS[:4], [1, '50%']) == [['web1'], ['web2', 'web3'], ['web4']]


def test_each_group_is_cut_on_its_own_and_in_the_order_given():
    members = {'vip_a': ['a1', 'a2', 'a3', 'a4'], 'vip_b': ['b1', 'b2', 'b3', 'b4'], 'all': []}
    result = plan(['vip_b', 'vip_a'], members, [1, '50%'])
    assert result.hosts == ['b1', 'b2', 'b3', 'b4', 'a1', 'a2', 'a3', 'a4']
    assert result.serial == [1, 2, 1, 1, 2, 1]
    assert [(b['group'], b['number'], b['hosts']) for b in result.batches][:3] == [
        ('vip_b', 1, ['b1']), ('vip_b', 2, ['b2', 'b3']), ('vip_b', 3, ['b4'])]


def test_a_host_in_two_groups_goes_with_the_first():
    result = plan(['vip_a', 'vip_b'], {'vip_a': ['x', 'a1'], 'vip_b': ['x', 'b1']}, 5)
    assert result.hosts == ['x', 'a1', 'b1'] and result.serial == [2, 1]


def test_unknown_or_empty_groups_are_refused():
    with pytest.raises(BatchError, match=r"groups: the inventory has no group 'vip_c'; it has vip_a"):
        plan(['vip_c'], {'vip_a': ['a1']}, 1)
    with pytest.raises(BatchError, match=r'groups: vip_a hold no host'):
        plan(['vip_a'], {'vip_a': []}, 1)
    with pytest.raises(BatchError, match=r"serial: expected a count, a percentage or a list of them, got \{'a': 1\}"):
        plan(['vip_a'], {'vip_a': ['a1']}, {'a': 1})


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4),
    serial=st.lists(st.one_of(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=100).map(lambda p: f'{p}%')),
                    min_size=1, max_size=3),
)
def test_batches_never_straddle_groups_and_place_every_host_once(sizes, serial):
    members = {f'g{g}': [f'g{g}h{h}' for h in range(size)] for g, size in enumerate(sizes)}
    result = plan(list(members), members, serial)
    assert sorted(result.hosts) == sorted(h for hosts in members.values() for h in hosts)
    assert sum(result.serial) == len(result.hosts)
    start = 0
    for size, batch in zip(result.serial, result.batches):
        hosts = result.hosts[start:start + size]
        assert hosts == batch['hosts'] and {h.split('h')[0] for h in hosts} == {batch['group']}
        start += size


def test_hosts_left_out_by_an_earlier_run_open_their_group_alone():
    members = {'vip_a': ['a1', 'a2', 'a3', 'a4'], 'vip_b': ['b1', 'b2', 'b3']}
    result = plan(['vip_a', 'vip_b'], members, 1, first=['a3', 'b2', 'b3'])
    assert [b['hosts'] for b in result.batches] == [['a3'], ['a1'], ['a2'], ['a4'], ['b2', 'b3'], ['b1']]
    assert result.serial == [1, 1, 1, 1, 2, 1]


def test_slots_make_each_group_one_batch_left_out_first_with_its_own_count():
    members = {'vip_a': [f'a{n}' for n in range(1, 9)], 'vip_b': ['b1', 'b2', 'b3']}
    result = plan(['vip_a', 'vip_b'], members, 1, first=['a5'], max_out='25%')
    assert [b['hosts'] for b in result.batches] == [['a5', 'a1', 'a2', 'a3', 'a4', 'a6', 'a7', 'a8'], ['b1', 'b2', 'b3']]
    assert result.serial == [8, 3]
    # A quarter of 8 is 2; of 3, rounded down, 0 - at least 1.
    assert result.max_out == {**{f'a{n}': 2 for n in range(1, 9)}, 'b1': 1, 'b2': 1, 'b3': 1}
    assert plan(['vip_b'], members, 1, max_out=2).max_out == {'b1': 2, 'b2': 2, 'b3': 2}


@pytest.mark.parametrize(('max_out', 'message'), [
    (0, 'max_out: 0 must be at least 1'),
    ('none', 'max_out: \'none\' is neither a host count nor a percentage such as "25%"'),
    (True, 'max_out: True is neither a host count nor a percentage'),
])
def test_bad_max_out_is_refused_naming_it(max_out, message):
    with pytest.raises(BatchError, match=message.replace('(', r'\(')):
        plan(['vip_b'], {'vip_b': ['b1']}, 1, max_out=max_out)
