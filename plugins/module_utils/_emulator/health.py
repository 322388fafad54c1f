# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A member's health: the check the emulator sends it, and the state machine each result feeds.

Internal to the l4vip.rollout collection; not a public API. A new member starts down and is
bound once ``rise`` checks passed; its first failed check makes it Suspect (still bound) and
``retry`` more take it down, as the timing model (``_timing.py``) describes. The admin state
beside it is the operator's: drain and disabled take no new connections whatever the health.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import Endpoint, MemberConfig
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Profile

HEALTH_UP = 'up'
HEALTH_SUSPECT = 'suspect'
HEALTH_DOWN = 'down'
ADMIN_STATES = ('enabled', 'drain', 'disabled')
CHECKS_KEPT = 10


@t.runtime_checkable
class PinnedSession(t.Protocol):
    """A session table row as its member holds it (the data path's Session): what is done to it when the member goes."""

    def reset_client(self, reason: str) -> None: ...  # noqa: E704

    def close(self) -> None: ...  # noqa: E704


@dataclasses.dataclass
class CheckResult:
    at: float
    ok: bool
    detail: str


class Member:
    """One real server as the L4 sees it: health from checks, admin state from the operator."""

    def __init__(self, vip: str, config: MemberConfig, now: float) -> None:
        self.vip = vip
        self.name = config.name
        self.address = config.address
        self.health = HEALTH_DOWN  # an L4 binds a new member only once a check passed
        self.admin = 'enabled'
        self.since = now
        self.failures = 0
        self.passes = 0
        self.checks: collections.deque[CheckResult] = collections.deque(maxlen=CHECKS_KEPT)
        self.sessions: set[PinnedSession] = set()
        self.connections_total = 0
        self.checks_total = {True: 0, False: 0}

    @property
    def bound(self) -> bool:
        """Takes new connections: Suspect still does; drain and disabled do not."""
        return self.health in (HEALTH_UP, HEALTH_SUSPECT) and self.admin == 'enabled'

    def observe(self, result: CheckResult, profile: Profile) -> str | None:
        """Feed one check result to the state machine; return the new health when it changed."""
        self.checks.append(result)
        self.checks_total[result.ok] += 1
        if result.ok:
            self.failures = 0
            if self.health == HEALTH_DOWN:
                self.passes += 1
                return HEALTH_UP if self.passes >= profile.rise else None
            return HEALTH_UP if self.health == HEALTH_SUSPECT else None
        self.passes = 0
        self.failures += 1
        if self.health == HEALTH_DOWN:
            return None
        if self.failures > profile.retry:
            return HEALTH_DOWN
        return HEALTH_SUSPECT if self.health == HEALTH_UP else None

    def as_dict(self) -> dict[str, t.Any]:
        return {
            'vip': self.vip,
            'name': self.name,
            'address': str(self.address),
            'state': self.health,
            'admin_state': self.admin,
            'bound': self.bound,
            'since': self.since,
            'sessions': len(self.sessions),
            'connections_total': self.connections_total,
            'checks': [dataclasses.asdict(c) for c in self.checks],
        }


async def check(address: Endpoint, profile: Profile, check_source: str | None) -> tuple[bool, str]:
    """One health check of the member at ``address``: whether it passed, and what was seen."""
    try:
        return await asyncio.wait_for(_probe(address, profile, check_source), profile.effective_check_timeout)
    except asyncio.TimeoutError:
        return False, f'no answer within {profile.effective_check_timeout:g}s'
    except ConnectionRefusedError:
        return False, 'connection refused'
    except OSError as error:
        return False, f'{type(error).__name__}: {error.strerror or error}'


async def _probe(address: Endpoint, profile: Profile, check_source: str | None) -> tuple[bool, str]:
    host, port = address.host, address.port
    local = None
    if check_source is not None and ipaddress.ip_address(check_source).version == ipaddress.ip_address(host).version:
        local = (check_source, 0)
    reader, writer = await asyncio.open_connection(host, port, local_addr=local)
    try:
        if profile.health_check == 'l4':
            return True, 'port open'
        writer.write(
            f'GET {profile.health_check_path} HTTP/1.1\r\nHost: {address}\r\n'
            f'User-Agent: l4vip-emulator-check\r\nConnection: close\r\n\r\n'.encode())
        status_line = await reader.readline()
        parts = status_line.decode('latin-1').split(None, 2)
        if len(parts) < 2 or not parts[0].startswith('HTTP/'):
            return False, f'not an HTTP answer: {status_line[:60]!r}'
        return parts[1] == '200', f'HTTP {parts[1]}'
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
