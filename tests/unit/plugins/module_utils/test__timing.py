from __future__ import annotations

import math
import random

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _timing
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import (
    FAILURE_FAST,
    FAILURE_TIMEOUT,
    Profile,
    ProfileError,
    Window,
    down_window,
    parse_profile,
    remaining_wait,
    transition_window,
    up_window,
)
from ansible_collections.l4vip.rollout.tests.unit.fakes import FakeClock


def test_defaults_are_the_seed_device():
    profile = parse_profile(None)
    assert profile == Profile(
        interval=10, retry=1, rise=1, check_timeout=3, idle_timeout=600,
        reset_on_port_fail=False, health_check='l7', health_check_path='/health_check.html',
    )
    assert parse_profile({}) == profile


@pytest.mark.parametrize(
    ('profile', 'failure', 'low', 'high'),
    [
        # The seed's case: 10 s / retry 1 is "11 to 20 s": more than 10, at most 20.
        ({}, FAILURE_FAST, 10, 20),
        ({'retry': 2}, FAILURE_FAST, 20, 30),
        ({'retry': 0}, FAILURE_FAST, 0, 10),
        ({'interval': 0.2, 'retry': 1}, FAILURE_FAST, 0.2, 0.4),
        # A timing-out check is only known to have failed check_timeout later.
        ({}, FAILURE_TIMEOUT, 13, 23),
        ({'retry': 2, 'check_timeout': 1}, FAILURE_TIMEOUT, 21, 31),
        # ...but never later than the next check: the effective timeout is capped by the interval.
        ({'interval': 1, 'check_timeout': 3}, FAILURE_TIMEOUT, 2, 3),
    ],
)
def test_down_window(profile, failure, low, high):
    window = down_window(parse_profile(profile), failure)
    assert window.low == pytest.approx(low)
    assert window.high == pytest.approx(high)


@pytest.mark.parametrize(
    ('profile', 'low', 'high'),
    [
        ({}, 0, 10),  # one good answer binds it again, within one interval
        ({'rise': 2}, 10, 20),
        ({'rise': 3, 'interval': 0.5}, 1.0, 1.5),
    ],
)
def test_up_window(profile, low, high):
    window = up_window(parse_profile(profile))
    assert (window.low, window.high) == (pytest.approx(low), pytest.approx(high))


def test_window_is_open_below_and_closed_above():
    window = down_window(parse_profile({}))
    assert 10 not in window
    assert 10.001 in window
    assert 20 in window
    assert 20.001 not in window
    assert 20.4 in window.widened(0.5)


def test_transition_window_dispatches_and_rejects_unknown_states():
    profile = parse_profile({'rise': 2})
    assert transition_window(profile, 'down') == down_window(profile)
    assert transition_window(profile, 'up') == up_window(profile)
    with pytest.raises(ValueError, match="state: expected down or up, got 'sideways'"):
        transition_window(profile, 'sideways')
    with pytest.raises(ValueError, match="failure: expected one of fast, timeout, got 'slow'"):
        down_window(profile, 'slow')


# A brute-force L4 that steps through its checks one by one. Its rules are written here, from the device's
# description (docs/how-it-works.md), not taken from _timing.py, so that a wrong rule there fails against them:
# - the first failed check makes the member Suspect; `retry` more failed checks in a row take it down;
# - a check that gets no answer has failed once the device gives up on it: at its check timeout, or when
#   the member's next check is due, if that comes first (a device has one check of a member in flight);
# - a member that is down is bound again by `rise` passing checks in a row.

def simulate_mark_down(profile: Profile, phase: float, start_failing: float, failure: str) -> float:
    """Seconds from ``start_failing`` until the simulated L4 takes the member down."""
    suspect, failed_since_suspect = False, 0
    for k in range(10_000):
        sent = phase + k * profile.interval
        if sent <= start_failing:
            continue  # answered before the member started failing: a pass
        if failure == FAILURE_TIMEOUT:
            failed_at = min(sent + profile.check_timeout, sent + profile.interval)
        else:
            failed_at = sent  # a 404 or a refused connection is known at once
        if suspect:
            failed_since_suspect += 1
        suspect = True
        if failed_since_suspect == profile.retry:
            return failed_at - start_failing
    raise AssertionError('never went down')


def simulate_bind(profile: Profile, phase: float, start_passing: float) -> float:
    """Seconds from ``start_passing`` (the first moment a check can pass) until the simulated L4 binds the member."""
    passed = 0
    for k in range(10_000):
        sent = phase + k * profile.interval
        if sent <= start_passing:
            continue
        passed += 1
        if passed == profile.rise:
            return sent - start_passing
    raise AssertionError('never bound')


def assert_tight(seen: list[float], window: Window) -> None:
    """Every simulated time in the window, and the simulated L4 comes close to both of its ends."""
    assert all(seconds in window.widened(1e-9) for seconds in seen), (sorted(seen)[:3], sorted(seen)[-3:], window)
    span = window.high - window.low
    assert min(seen) - window.low < 0.05 * span, (min(seen), window)
    assert window.high - max(seen) < 0.05 * span, (max(seen), window)


@pytest.mark.parametrize('raw', [{}, {'retry': 2}, {'retry': 0, 'interval': 0.2}, {'interval': 3, 'check_timeout': 1},
                                 {'interval': 1, 'check_timeout': 3}])
@pytest.mark.parametrize('failure', [FAILURE_FAST, FAILURE_TIMEOUT])
def test_down_window_matches_brute_force_l4(raw, failure):
    profile = parse_profile(raw)
    rng = random.Random(7)
    seen = [simulate_mark_down(profile, rng.uniform(0, profile.interval), rng.uniform(0, 50), failure) for _trial in range(500)]
    assert_tight(seen, down_window(profile, failure))


@pytest.mark.parametrize('raw', [{}, {'rise': 2}, {'rise': 3, 'interval': 0.2}])
def test_up_window_matches_brute_force_l4(raw):
    profile = parse_profile(raw)
    rng = random.Random(11)
    seen = [simulate_bind(profile, rng.uniform(0, profile.interval), rng.uniform(0, 50)) for _trial in range(500)]
    assert_tight(seen, up_window(profile))


@pytest.mark.parametrize(
    ('raw', 'key', 'message'),
    [
        ({'interval': 0}, 'interval', 'greater than 0'),
        ({'interval': -10}, 'interval', 'greater than 0'),
        ({'interval': math.inf}, 'interval', 'greater than 0'),
        ({'interval': 'ten'}, 'interval', 'greater than 0'),
        ({'interval': True}, 'interval', 'greater than 0'),
        ({'check_timeout': 0}, 'check_timeout', 'greater than 0'),
        ({'idle_timeout': -1}, 'idle_timeout', 'greater than 0'),
        ({'retry': 1.5}, 'retry', 'whole number of at least 0'),
        ({'retry': -1}, 'retry', 'whole number of at least 0'),
        ({'retry': '1'}, 'retry', 'whole number of at least 0'),
        ({'rise': 0}, 'rise', 'whole number of at least 1'),
        ({'reset_on_port_fail': 'yes'}, 'reset_on_port_fail', 'true or false'),
        ({'health_check': 'l3'}, 'health_check', 'one of l7, l4'),
        ({'health_check_path': 'health_check.html'}, 'health_check_path', 'absolute URL path'),
        ({'health_check_path': '/a b'}, 'health_check_path', 'absolute URL path'),
        ({'intervall': 10}, 'intervall', 'unknown key'),
    ],
)
def test_bad_values_name_the_key_and_the_value(raw, key, message):
    with pytest.raises(ProfileError) as caught:
        parse_profile(raw)
    assert caught.value.key == key
    assert caught.value.value == raw[key]
    assert str(caught.value).startswith(f'profile.{key}: ')
    assert message in str(caught.value)
    assert repr(raw[key]) in str(caught.value)


def test_lenient_where_ansible_would_be():
    profile = parse_profile({'interval': '0.2', 'retry': 2.0, 'rise': None})
    assert profile.interval == 0.2
    assert profile.retry == 2 and isinstance(profile.retry, int)
    assert profile.rise == 1


def test_profile_must_be_a_dict():
    with pytest.raises(ProfileError, match='expected a dict'):
        parse_profile(['interval', 10])


def test_argument_spec_is_derived_from_the_profile():
    options = _timing.PROFILE_ARGUMENT_SPEC['options']
    assert set(options) == set(_timing.PROFILE_DEFAULTS)
    assert options['interval'] == {'type': 'float', 'default': 10.0}
    assert options['retry'] == {'type': 'int', 'default': 1}
    assert options['reset_on_port_fail'] == {'type': 'bool', 'default': False}
    assert options['health_check'] == {'type': 'str', 'default': 'l7', 'choices': ['l7', 'l4']}


@pytest.mark.parametrize(
    ('limit', 'since_ago', 'expected'),
    [
        (20, None, 20),  # no since: the whole limit
        (20, 0, 20),
        (20, 5, 15),
        (20, 20, 0),
        (20, 300, 0),  # long gone: nothing left to wait
        (20, -30, 20),  # since in the future (clock skew) counts as now
    ],
)
def test_remaining_wait(limit, since_ago, expected):
    clock = FakeClock()
    since = None if since_ago is None else clock.time() - since_ago
    assert remaining_wait(limit, since, clock) == pytest.approx(expected)


def test_window_dataclass_is_value_like():
    assert Window(1, 2) == Window(1, 2)
    assert Window(1, 2).widened(0.5) == Window(0.5, 2.5)


def test_scaled_multiplies_every_time_and_nothing_else():
    profile = Profile(interval=10, retry=2, rise=3, check_timeout=3, idle_timeout=600, reset_on_port_fail=True, health_check='l4')
    assert profile.scaled(0.5) == Profile(interval=5, retry=2, rise=3, check_timeout=1.5, idle_timeout=300, reset_on_port_fail=True,
                                          health_check='l4')


def test_poll_until_is_limited_in_time_and_in_polls_and_says_what_it_last_saw():
    clock, seen = FakeClock(0.0), iter(range(100))
    polled = _timing.poll_until(lambda: next(seen), lambda value: value >= 100, timeout=1.0, poll_interval=0.3, clock=clock)
    # asked at 0, 0.3, 0.6, 0.9 and once more at the deadline: never slept past it, on the injected clock alone
    assert (polled.reached, polled.last, polled.polls, polled.elapsed) == (False, 4, 5, pytest.approx(1.0))
    assert clock.slept == pytest.approx([0.3, 0.3, 0.3, 0.1])


def test_poll_until_stops_at_the_first_answer_that_will_do():
    clock, seen = FakeClock(0.0), iter(['down', 'down', 'up', 'never asked'])
    polled = _timing.poll_until(lambda: next(seen), lambda state: state == 'up', timeout=60.0, poll_interval=2.0, clock=clock)
    assert (polled.reached, polled.last, polled.polls, polled.elapsed) == (True, 'up', 3, 4.0)


def test_poll_until_asks_once_when_the_limit_is_zero():
    clock = FakeClock()
    polled = _timing.poll_until(lambda: 'down', lambda state: state == 'up', timeout=0.0, poll_interval=1.0, clock=clock)
    assert (polled.reached, polled.last, polled.polls, clock.slept) == (False, 'down', 1, [])
