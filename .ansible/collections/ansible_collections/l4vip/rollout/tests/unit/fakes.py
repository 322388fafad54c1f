"""Test doubles shared by the unit tests."""

from __future__ import annotations

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Clock


class FakeClock(Clock):
    """A clock that only moves when told to, or when slept on."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
