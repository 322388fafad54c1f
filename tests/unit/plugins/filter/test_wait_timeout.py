"""wait_timeout: how long a wait for the L4 gives up after - the transition's worst case and one more interval."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.l4vip.rollout.plugins.filter.wait_timeout import wait_timeout


@pytest.mark.parametrize(
    ('profile', 'state', 'failure', 'seconds'),
    [
        # The reference device: down at most 20 s after the 404, a wait gives it until 30 s.
        ({'interval': 10, 'retry': 1}, 'down', 'fast', 30),
        # A check that times out is known 3 s later: 23 s, and the interval.
        ({'interval': 10, 'retry': 1, 'check_timeout': 3}, 'down', 'timeout', 33),
        ({'interval': 2, 'retry': 2}, 'down', 'fast', 8),
        ({'interval': 10, 'rise': 1}, 'up', 'fast', 20),
        ({'interval': 0.2, 'rise': 3}, 'up', 'fast', 0.8),
    ],
)
def test_the_worst_case_and_one_more_interval(profile, state, failure, seconds):
    assert wait_timeout(profile, state, failure) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ('profile', 'state', 'failure', 'message'),
    [
        ({'interval': 0}, 'down', 'fast', 'wait_timeout: profile.interval: expected a number of seconds greater than 0, got 0'),
        ({}, 'sideways', 'fast', "wait_timeout: state: expected down or up, got 'sideways'"),
        ({}, 'down', 'slow', "wait_timeout: failure: expected one of fast, timeout, got 'slow'"),
    ],
)
def test_bad_input_is_a_filter_error_naming_it(profile, state, failure, message):
    with pytest.raises(AnsibleFilterError) as raised:
        wait_timeout(profile, state, failure)
    assert str(raised.value) == message
