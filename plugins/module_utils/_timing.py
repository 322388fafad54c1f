# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The L4 profile and the timing model: the one place that knows how long an L4 takes.

Internal to the l4vip.rollout collection; not a public API.

An L4 checks each member every ``interval``. The first failed check makes the member
Suspect (still bound); ``retry`` more failed checks take it down. The member can start
failing at any moment between two checks, so the first failed check lands in
``(0, interval]`` after it starts failing and the mark-down in
``(retry*interval, (retry+1)*interval]``. A check that times out rather than being
refused or answered 404 is only known to have failed ``check_timeout`` later. Coming
back, ``rise`` passing checks are needed, the first within one interval.
"""

from __future__ import annotations

import dataclasses
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._options import SECONDS, OptionError, seconds

HEALTH_CHECK_KINDS = ('l7', 'l4')

# How a member fails its health checks; changes how long the L4 needs to notice.
FAILURE_FAST = 'fast'  # 404, refused connection, RST: known at once
FAILURE_TIMEOUT = 'timeout'  # no answer: known only after check_timeout
FAILURE_KINDS = (FAILURE_FAST, FAILURE_TIMEOUT)


class ProfileError(OptionError):
    """A profile key has a bad value; the message names it as ``profile.<key>``, with the value."""

    def __init__(self, key: str, value: t.Any, expected: str) -> None:
        super().__init__(f'profile.{key}', value, expected)
        self.key = key


@dataclasses.dataclass(frozen=True)
class Profile:
    """How one L4 checks and remembers a member. Defaults are the reference device's (docs/how-it-works.md)."""

    interval: float = 10.0
    retry: int = 1
    rise: int = 1
    check_timeout: float = 3.0
    idle_timeout: float = 600.0
    reset_on_port_fail: bool = False
    health_check: str = 'l7'
    health_check_path: str = '/health_check.html'

    def __post_init__(self) -> None:
        for key in ('interval', 'check_timeout', 'idle_timeout'):
            _require_positive_number(key, getattr(self, key))
        _require_int(self, 'retry', minimum=0)
        _require_int(self, 'rise', minimum=1)
        if not isinstance(self.reset_on_port_fail, bool):
            raise ProfileError('reset_on_port_fail', self.reset_on_port_fail, 'expected true or false')
        if self.health_check not in HEALTH_CHECK_KINDS:
            raise ProfileError('health_check', self.health_check, f'expected one of {", ".join(HEALTH_CHECK_KINDS)}')
        path = self.health_check_path
        if not isinstance(path, str) or not path.startswith('/') or any(c.isspace() for c in path):
            raise ProfileError('health_check_path', path, 'expected an absolute URL path such as /health_check.html')

    @property
    def effective_check_timeout(self) -> float:
        """A check still unanswered when the next one is due has failed: an L4 never overlaps its own checks."""
        return min(self.check_timeout, self.interval)

    @property
    def fall(self) -> int:
        """Consecutive failed checks that take a member down (HAProxy's ``fall``)."""
        return self.retry + 1

    def as_dict(self) -> dict[str, t.Any]:
        return dataclasses.asdict(self)

    def scaled(self, factor: float) -> Profile:
        """The same L4 with every time multiplied by ``factor`` (a rehearsal of a real device, faster)."""
        return dataclasses.replace(self, interval=self.interval * factor, check_timeout=self.check_timeout * factor,
                                   idle_timeout=self.idle_timeout * factor)


def _require_positive_number(key: str, value: t.Any) -> None:
    seconds(key, value, error=ProfileError)


def _require_int(profile: Profile, key: str, minimum: int) -> None:
    value = getattr(profile, key)
    if isinstance(value, float) and value.is_integer():
        # YAML and JSON readers may hand over 2.0 for 2; accept it, but nothing fractional.
        object.__setattr__(profile, key, int(value))
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProfileError(key, value, f'expected a whole number of at least {minimum}')


PROFILE_DEFAULTS: dict[str, t.Any] = Profile().as_dict()

# Argument spec for the ``profile`` option, derived from the dataclass so the two cannot drift.
_ARG_TYPES = {float: 'float', int: 'int', bool: 'bool', str: 'str'}
PROFILE_ARGUMENT_SPEC: dict[str, t.Any] = {
    'type': 'dict',
    'default': {},
    'options': {
        field.name: {'type': _ARG_TYPES[type(PROFILE_DEFAULTS[field.name])], 'default': PROFILE_DEFAULTS[field.name]}
        | ({'choices': list(HEALTH_CHECK_KINDS)} if field.name == 'health_check' else {})
        for field in dataclasses.fields(Profile)
    },
}


def parse_profile(raw: t.Mapping[str, t.Any] | None) -> Profile:
    """Build a Profile from user input, naming the first bad key. Missing keys take the defaults."""
    if raw is None:
        return Profile()
    if not isinstance(raw, t.Mapping):
        raise ProfileError('<profile>', raw, 'expected a dict of profile keys')
    unknown = sorted(set(raw) - set(PROFILE_DEFAULTS))
    if unknown:
        raise ProfileError(unknown[0], raw[unknown[0]], f'unknown key; valid keys are {", ".join(PROFILE_DEFAULTS)}')
    values = {key: value for key, value in raw.items() if value is not None}
    for key in ('interval', 'check_timeout', 'idle_timeout'):
        # Accept numeric strings the way Ansible's float type would, reject the rest by name.
        if isinstance(values.get(key), str):
            try:
                values[key] = float(values[key])
            except ValueError:
                raise ProfileError(key, raw[key], SECONDS) from None
    return Profile(**values)


@dataclasses.dataclass(frozen=True)
class Window:
    """A span of seconds after an event, open below and closed above: ``(low, high]``."""

    low: float
    high: float

    def __contains__(self, seconds: float) -> bool:
        return self.low < seconds <= self.high

    def widened(self, tolerance: float) -> Window:
        return Window(self.low - tolerance, self.high + tolerance)


def down_window(profile: Profile, failure: str = FAILURE_FAST) -> Window:
    """When the L4 marks a member down, counted from the moment its checks start failing."""
    if failure not in FAILURE_KINDS:
        raise ValueError(f'failure: expected one of {", ".join(FAILURE_KINDS)}, got {failure!r}')
    delay = profile.effective_check_timeout if failure == FAILURE_TIMEOUT else 0.0
    return Window(profile.retry * profile.interval + delay, profile.fall * profile.interval + delay)


def up_window(profile: Profile) -> Window:
    """When the L4 binds a member again, counted from the moment it can first pass a check."""
    return Window((profile.rise - 1) * profile.interval, profile.rise * profile.interval)


def transition_window(profile: Profile, state: str, failure: str = FAILURE_FAST) -> Window:
    """The window for reaching ``state`` (``down`` or ``up``)."""
    if state == 'down':
        return down_window(profile, failure)
    if state == 'up':
        return up_window(profile)
    raise ValueError(f'state: expected down or up, got {state!r}')


class Clock:
    """Wall time, monotonic time and sleep, in one object that tests replace."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = Clock()


def remaining_wait(limit: float, since: float | None, clock: Clock = SYSTEM_CLOCK) -> float:
    """Seconds still to wait for ``limit`` counted from ``since`` (epoch seconds); the whole limit without ``since``.

    A ``since`` in the future (clock skew between hosts) counts as now, never as extra time saved.
    """
    if since is None:
        return limit
    elapsed = max(0.0, clock.time() - since)
    return max(0.0, limit - elapsed)


def default_timeout(window: Window, profile: Profile) -> float:
    """How long a wait for a transition gives the L4 before it gives up: the worst case and one more interval."""
    return window.high + profile.interval


T = t.TypeVar('T')


@dataclasses.dataclass(frozen=True)
class Polled(t.Generic[T]):
    """The end of a limited wait: whether it got there, and what it saw last."""

    reached: bool
    last: T
    elapsed: float
    polls: int


def poll_until(probe: t.Callable[[], T], done: t.Callable[[T], bool], timeout: float, poll_interval: float,
               clock: Clock = SYSTEM_CLOCK) -> Polled[T]:
    """Ask ``probe`` at once, then every ``poll_interval``, and once more at the deadline, never sleeping past it."""
    started = clock.monotonic()
    polls = 0
    while True:
        last = probe()
        polls += 1
        elapsed = clock.monotonic() - started
        if done(last) or elapsed >= timeout:
            return Polled(done(last), last, elapsed, polls)
        clock.sleep(min(poll_interval, timeout - elapsed))
