# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The embedded L4 emulator: VIPs, health checks, a session table and a control API.

Internal to the l4vip.rollout collection; not a public API. Standard library only, so that
it runs wherever the collection's modules run.

It behaves like the L4 docs/how-it-works.md describes, in direct-server-return spirit:
- a new client connection goes to a bound member (up or Suspect, administratively enabled);
- packets from the client are forwarded by the session table, not by the binding list, so a
  member marked down keeps its sessions (the keep-alive trap) until it closes them (FIN) or
  they sit idle past ``idle_timeout``;
- the return path does not depend on the table (in DSR it bypasses the L4), so a member's
  FIN always reaches its client;
- with ``reset_on_port_fail`` the clients of a member marked down get RST and the sessions
  leave the table, while the member's side stays open (a zombie session: the member never
  sees the RST).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import heapq
import ipaddress
import itertools
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator_api import serve_control
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Profile, ProfileError, parse_profile

HEALTH_UP = 'up'
HEALTH_SUSPECT = 'suspect'
HEALTH_DOWN = 'down'
ADMIN_STATES = ('enabled', 'drain', 'disabled')
BALANCING = ('round_robin', 'least_sessions')
AGED_SESSION_ACTIONS = ('rst', 'drop')
DEFAULT_CHECK_SOURCE = '127.0.0.2'
EVENT_LOG_SIZE = 10_000
CHECKS_KEPT = 10
# In DSR the client's SYN reaches the member itself, so a client waits for a slow member as long as
# its own connect timeout allows (SYN retransmissions at 1 s, 3 s, 7 s...), not the L4's check
# timeout: a member's full accept queue in a burst of new connections costs time, not a reset.
# A refused connect still comes back at once.
MEMBER_CONNECT_TIMEOUT = 10.0
# Pending connections a VIP's listener queues (the kernel caps it at net.core.somaxconn): a VIP takes
# bursts of thousands of new connections, as when every client reconnects at once.
LISTEN_BACKLOG = 4096


class ConfigError(ValueError):
    """A configuration key has a bad value; names the key's path and the value."""

    def __init__(self, path: str, value: t.Any, expected: str) -> None:
        self.path = path
        self.value = value
        super().__init__(f'{path}: {expected}, got {value!r}')


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclasses.dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f'[{self.host}]:{self.port}' if ':' in self.host else f'{self.host}:{self.port}'


@dataclasses.dataclass(frozen=True)
class MemberConfig:
    name: str
    address: Endpoint


@dataclasses.dataclass(frozen=True)
class VipConfig:
    name: str
    listen: Endpoint
    members: tuple[MemberConfig, ...]
    balancing: str = 'round_robin'


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    vips: tuple[VipConfig, ...]
    profile: Profile
    control: Endpoint
    aged_session_action: str = 'rst'
    check_source: str | None = DEFAULT_CHECK_SOURCE
    seed: int | None = None

    def digest(self) -> str:
        """Identifies the configuration, so a second start with the same one can be a no-op."""
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_endpoint(path: str, value: t.Any, default_port: int | None = None) -> Endpoint:
    """``host:port`` or ``[v6]:port``; the host must be an IP address (an L4 has no resolver)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(path, value, 'expected "address:port"')
    host, sep, port_text = value.rpartition(':')
    if not sep:
        host, port_text = value, ''
    host = host.strip('[]')
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(path, value, 'expected "address:port" with an IP address') from None
    if not port_text and default_port is not None:
        return Endpoint(host, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(path, value, 'expected "address:port" with a port from 0 to 65535')
    return Endpoint(host, int(port_text))


def _require_name(path: str, value: t.Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() or c in '/?#' for c in value):
        raise ConfigError(path, value, 'expected a name without spaces or /?#')
    return value


def _require_mapping(path: str, value: t.Any, allowed: t.Iterable[str]) -> t.Mapping[str, t.Any]:
    if not isinstance(value, t.Mapping):
        raise ConfigError(path, value, 'expected a dict')
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(f'{path}.{unknown[0]}' if path else unknown[0], value[unknown[0]], f'unknown key; valid keys are {", ".join(allowed)}')
    return value


def _parse_member(path: str, raw: t.Any) -> MemberConfig:
    raw = _require_mapping(path, raw, ('name', 'address'))
    return MemberConfig(_require_name(f'{path}.name', raw.get('name')), parse_endpoint(f'{path}.address', raw.get('address')))


def _parse_vip(path: str, raw: t.Any) -> VipConfig:
    raw = _require_mapping(path, raw, ('name', 'listen', 'members', 'balancing'))
    members_raw = raw.get('members')
    if not isinstance(members_raw, list) or not members_raw:
        raise ConfigError(f'{path}.members', members_raw, 'expected a non-empty list of members')
    members = tuple(_parse_member(f'{path}.members[{i}]', m) for i, m in enumerate(members_raw))
    names = [m.name for m in members]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f'{path}.members', duplicate, 'expected unique member names')
    balancing = raw.get('balancing', 'round_robin')
    if balancing not in BALANCING:
        raise ConfigError(f'{path}.balancing', balancing, f'expected one of {", ".join(BALANCING)}')
    return VipConfig(_require_name(f'{path}.name', raw.get('name')), parse_endpoint(f'{path}.listen', raw.get('listen')), members, balancing)


def parse_config(raw: t.Any) -> EmulatorConfig:
    """Validate a configuration dict (as read from YAML or JSON), naming the first bad key."""
    raw = _require_mapping('', raw, ('vips', 'profile', 'control', 'aged_session_action', 'check_source', 'seed'))
    vips_raw = raw.get('vips')
    if not isinstance(vips_raw, list) or not vips_raw:
        raise ConfigError('vips', vips_raw, 'expected a non-empty list of VIPs')
    vips = tuple(_parse_vip(f'vips[{i}]', v) for i, v in enumerate(vips_raw))
    names = [v.name for v in vips]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError('vips', duplicate, 'expected unique VIP names')
    try:
        profile = parse_profile(raw.get('profile'))
    except ProfileError as error:
        raise ConfigError(f'profile.{error.key}', error.value, error.expected) from None
    action = raw.get('aged_session_action', 'rst')
    if action not in AGED_SESSION_ACTIONS:
        raise ConfigError('aged_session_action', action, f'expected one of {", ".join(AGED_SESSION_ACTIONS)}')
    check_source = raw.get('check_source', DEFAULT_CHECK_SOURCE)
    if check_source is not None:
        try:
            ipaddress.ip_address(check_source)
        except ValueError:
            raise ConfigError('check_source', check_source, 'expected an IP address or null') from None
    seed = raw.get('seed')
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError('seed', seed, 'expected an integer or null')
    control = parse_endpoint('control', raw.get('control', '127.0.0.1:0'))
    return EmulatorConfig(vips, profile, control, action, check_source, seed)


def control_warnings(config: EmulatorConfig) -> list[str]:
    """What to tell the user about where the control API listens: nothing on loopback (the default)."""
    host = config.control.host
    if ipaddress.ip_address(host).is_loopback:
        return []
    return [f'control: the control API listens on {host}, which is not a loopback address; it has no authentication, so '
            'anyone who can reach it can take members out of the VIP (use a 127.0.0.x address unless this is meant)']


def load_config(path: str) -> EmulatorConfig:
    """Read a configuration file: JSON, or YAML where PyYAML is installed."""
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    try:
        data = json.loads(text)
    except ValueError:
        try:
            import yaml  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise ConfigError('<file>', path, 'expected JSON (PyYAML is not installed to read YAML)') from None
        data = yaml.safe_load(text)
    return parse_config(data)


# ---------------------------------------------------------------------------------------------
# Members and their health


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
        self.sessions: set[Session] = set()
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


# ---------------------------------------------------------------------------------------------
# The data path


def send_rst(transport: asyncio.BaseTransport | None) -> None:
    """Close with RST rather than FIN: SO_LINGER 0 makes the kernel reset the connection."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info('socket')
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    transport.abort()


class Session:
    """One client connection and its pinned member: a row of the session table."""

    _ids = itertools.count(1)

    def __init__(self, emulator: Emulator, vip: Vip, client: ClientSide) -> None:
        self.id = next(self._ids)
        self.emulator = emulator
        self.vip = vip
        self.client = client
        self.member: Member | None = None
        self.member_side: MemberSide | None = None
        self.created = time.time()
        self.last_activity = time.monotonic()
        self.in_table = False
        self.cut = False  # aged out or reset: client packets no longer reach the member
        self.bytes_in = 0
        self.bytes_out = 0

    def as_dict(self) -> dict[str, t.Any]:
        return {
            'id': self.id,
            'vip': self.vip.config.name,
            'member': self.member.name if self.member else None,
            'client': self.client.peer,
            'created': self.created,
            'idle': round(time.monotonic() - self.last_activity, 3),
            'bytes_in': self.bytes_in,
            'bytes_out': self.bytes_out,
        }

    def forget(self) -> None:
        """Leave the session table (FIN from the member, aging, reset)."""
        if self.in_table:
            self.in_table = False
            self.emulator.sessions.pop(self.id, None)
            if self.member is not None:
                self.member.sessions.discard(self)

    def reset_client(self, reason: str) -> None:
        """RST to the client only; the member's side stays open, as on the reference device."""
        self.cut = True
        self.forget()
        self.emulator.cut_sessions.add(self)
        self.emulator.count_reset(self.vip, reason)
        send_rst(self.client.transport)

    def close(self) -> None:
        self.forget()
        if self.client.transport is not None:
            self.client.transport.close()
        if self.member_side is not None and self.member_side.transport is not None:
            self.member_side.transport.close()


class ClientSide(asyncio.Protocol):
    """The client's connection to the VIP."""

    def __init__(self, emulator: Emulator, vip: Vip) -> None:
        self.emulator = emulator
        self.vip = vip
        self.transport: asyncio.Transport | None = None
        self.peer = ''
        self.session: Session | None = None
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t.cast(asyncio.Transport, transport)
        peer = transport.get_extra_info('peername') or ('?', 0)
        self.peer = str(Endpoint(peer[0], peer[1]))
        # Nothing may reach a member before it is chosen and connected.
        self.transport.pause_reading()
        self.session = Session(self.emulator, self.vip, self)
        self.emulator.spawn(self.emulator.connect_member(self.session))

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None:
            return
        now = time.monotonic()
        if not session.cut and now - session.last_activity > self.emulator.config.profile.idle_timeout:
            self.emulator.age_out(session)
        if session.cut:
            # No table entry any more: the packet meets an L4 that does not know it.
            if self.emulator.config.aged_session_action == 'rst':
                send_rst(self.transport)
            return
        session.last_activity = now
        session.bytes_in += len(data)
        if session.member_side is not None and session.member_side.transport is not None:
            session.member_side.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        session = self.session
        if session is not None and not session.cut and session.member_side is not None:
            transport = session.member_side.transport
            if transport is not None and not transport.is_closing() and transport.can_write_eof():
                transport.write_eof()
        return self._keep_half_open()

    def _keep_half_open(self) -> bool:
        member_side = self.session.member_side if self.session else None
        return member_side is not None and not member_side.eof

    def connection_lost(self, exc: Exception | None) -> None:
        session = self.session
        if session is None:
            return
        session.forget()
        if session.member_side is not None and session.member_side.transport is not None and not session.cut:
            session.member_side.transport.close()

    def pause_writing(self) -> None:
        if self.session and self.session.member_side and self.session.member_side.transport:
            self.session.member_side.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.session and self.session.member_side and self.session.member_side.transport:
            self.session.member_side.transport.resume_reading()


class MemberSide(asyncio.Protocol):
    """The emulator's connection to a member, carrying one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.transport: asyncio.Transport | None = None
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        session = self.session
        client = session.client.transport
        if client is None or client.is_closing():
            return  # a zombie: the client was reset, the member does not know
        session.last_activity = time.monotonic()
        session.bytes_out += len(data)
        client.write(data)

    def eof_received(self) -> bool:
        # The member's FIN ends the session and goes on to the client.
        self.eof = True
        session = self.session
        session.forget()
        client = session.client.transport
        if client is not None and not client.is_closing() and client.can_write_eof():
            client.write_eof()
        if session.client.eof:
            return False
        return client is not None and not client.is_closing()

    def connection_lost(self, exc: Exception | None) -> None:
        session = self.session
        session.forget()
        session.emulator.cut_sessions.discard(session)
        client = session.client.transport
        if client is None or client.is_closing():
            return
        if isinstance(exc, ConnectionResetError):
            send_rst(client)
        else:
            client.close()

    def pause_writing(self) -> None:
        if self.session.client.transport:
            self.session.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.session.client.transport:
            self.session.client.transport.resume_reading()


class Vip:
    """A listener and the members bound behind it."""

    def __init__(self, config: VipConfig, members: list[Member], rng: random.Random) -> None:
        self.config = config
        self.members = members
        self.by_name = {m.name: m for m in members}
        self.server: asyncio.AbstractServer | None = None
        self.listen = config.listen
        self.rejected_total: collections.Counter[str] = collections.Counter()
        self._turn = rng.randrange(len(members))

    def pick(self) -> Member | None:
        bound = [m for m in self.members if m.bound]
        if not bound:
            return None
        if self.config.balancing == 'least_sessions':
            return min(bound, key=lambda m: len(m.sessions))
        self._turn += 1
        return bound[self._turn % len(bound)]

    def as_dict(self) -> dict[str, t.Any]:
        return {
            'name': self.config.name,
            'listen': str(self.listen),
            'balancing': self.config.balancing,
            'bound': [m.name for m in self.members if m.bound],
            'members': [m.as_dict() for m in self.members],
            'rejected_total': dict(self.rejected_total),
        }


# ---------------------------------------------------------------------------------------------
# The emulator


class Emulator:
    """The whole L4: start it inside a running event loop, stop it the same way."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        now = time.time()
        self.vips = {
            v.name: Vip(v, [Member(v.name, m, now) for m in v.members], self.rng)
            for v in config.vips
        }
        self.sessions: dict[int, Session] = {}
        # Reset or aged sessions whose member side is still open (the zombies): out of the table, closed at stop.
        self.cut_sessions: set[Session] = set()
        self.events: collections.deque[dict[str, t.Any]] = collections.deque(maxlen=EVENT_LOG_SIZE)
        self.control: asyncio.AbstractServer | None = None
        self.control_endpoint = config.control
        self.api_requests = 0  # answered on the control API, /metrics included
        # Aging: (a last_activity seen, session id), oldest first. A session's key is never newer than its
        # real last activity, so a sweep looks only at keys past the idle timeout, not at the whole table.
        self.aging: list[tuple[float, int]] = []
        self.last_sweep = {'seconds': 0.0, 'looked_at': 0, 'aged': 0}
        self.started = 0.0
        self._tasks: set[asyncio.Task[t.Any]] = set()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for vip in self.vips.values():
                vip.server = await loop.create_server(
                    lambda vip=vip: ClientSide(self, vip), vip.config.listen.host, vip.config.listen.port, reuse_address=True,
                    backlog=LISTEN_BACKLOG)
                vip.listen = _bound_endpoint(vip.server)
            self.control = await serve_control(self, self.config.control)
            self.control_endpoint = _bound_endpoint(self.control)
        except BaseException:
            await self.stop()
            raise
        self.started = time.time()
        interval = self.config.profile.interval
        for vip in self.vips.values():
            for member in vip.members:
                # Phased like a real device: each member's checks keep their own offset.
                self.spawn(self._check_loop(member, self.rng.uniform(0, interval)))
        self.spawn(self._age_sessions())
        self.log_event(None, None, 'emulator', 'started', f'control {self.control_url}')

    async def stop(self) -> None:
        self._stopping = True
        servers = [v.server for v in self.vips.values() if v.server] + ([self.control] if self.control else [])
        for server in servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in list(self.sessions.values()) + list(self.cut_sessions):
            session.close()
        for vip in self.vips.values():
            for member in vip.members:
                for session in list(member.sessions):
                    session.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    @property
    def control_url(self) -> str:
        return f'http://{self.control_endpoint}'

    def vip_endpoint(self, name: str) -> Endpoint:
        return self.vips[name].listen

    def spawn(self, coroutine: t.Coroutine[t.Any, t.Any, t.Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- events ------------------------------------------------------------------------------

    def log_event(self, vip: str | None, member: str | None, kind: str, to: str, detail: str, previous: str | None = None) -> None:
        self.events.append({'at': time.time(), 'vip': vip, 'member': member, 'kind': kind, 'from': previous, 'to': to, 'detail': detail})

    def count_reset(self, vip: Vip, reason: str) -> None:
        vip.rejected_total[reason] += 1

    # -- members -----------------------------------------------------------------------------

    def member(self, vip: str, name: str) -> Member:
        return self.vips[vip].by_name[name]

    def set_health(self, member: Member, health: str, detail: str) -> None:
        previous = member.health
        member.health = health
        member.since = time.time()
        if health != HEALTH_DOWN:
            member.passes = 0
        self.log_event(member.vip, member.name, 'health', health, detail, previous)
        if health == HEALTH_DOWN and self.config.profile.reset_on_port_fail:
            sessions = list(member.sessions)
            for session in sessions:
                session.reset_client('reset_on_port_fail')
            if sessions:
                self.log_event(member.vip, member.name, 'reset', 'sessions_reset', f'{len(sessions)} client sessions reset')

    def set_admin(self, member: Member, state: str) -> bool:
        """Set the administrative state; returns whether it changed."""
        if state not in ADMIN_STATES:
            raise ConfigError('state', state, f'expected one of {", ".join(ADMIN_STATES)}')
        if member.admin == state:
            return False
        previous, member.admin = member.admin, state
        self.log_event(member.vip, member.name, 'admin', state, 'set through the control API', previous)
        return True

    # -- health checks -----------------------------------------------------------------------

    async def _check_loop(self, member: Member, phase: float) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.profile.interval
        first = loop.time() + phase
        k = 0
        while not self._stopping:
            await asyncio.sleep(max(0.0, first + k * interval - loop.time()))
            ok, detail = await self.check(member)
            result = CheckResult(time.time(), ok, detail)
            changed = member.observe(result, self.config.profile)
            if changed:
                self.set_health(member, changed, detail)
            # The next check keeps the schedule; a slow check never shifts the phase.
            k = max(k + 1, int((loop.time() - first) // interval) + 1)

    async def check(self, member: Member) -> tuple[bool, str]:
        profile = self.config.profile
        try:
            return await asyncio.wait_for(self._probe(member), profile.effective_check_timeout)
        except asyncio.TimeoutError:
            return False, f'no answer within {profile.effective_check_timeout:g}s'
        except ConnectionRefusedError:
            return False, 'connection refused'
        except OSError as error:
            return False, f'{type(error).__name__}: {error.strerror or error}'

    async def _probe(self, member: Member) -> tuple[bool, str]:
        profile = self.config.profile
        host, port = member.address.host, member.address.port
        local = None
        source = self.config.check_source
        if source is not None and ipaddress.ip_address(source).version == ipaddress.ip_address(host).version:
            local = (source, 0)
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        try:
            if profile.health_check == 'l4':
                return True, 'port open'
            writer.write(
                f'GET {profile.health_check_path} HTTP/1.1\r\nHost: {member.address}\r\n'
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

    # -- the data path -----------------------------------------------------------------------

    async def connect_member(self, session: Session) -> None:
        vip, client = session.vip, session.client
        member = vip.pick()
        if member is None:
            vip.rejected_total['no_bound_member'] += 1
            send_rst(client.transport)
            return
        loop = asyncio.get_running_loop()
        try:
            _transport, member_side = await asyncio.wait_for(
                loop.create_connection(lambda: MemberSide(session), member.address.host, member.address.port),
                MEMBER_CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as error:
            # A DSR L4 forwards the SYN; the server's kernel answers RST. The client sees a reset.
            vip.rejected_total['member_refused' if isinstance(error, ConnectionRefusedError) else 'member_unreachable'] += 1
            send_rst(client.transport)
            return
        if client.transport is None or client.transport.is_closing():
            member_side.transport.close()
            return
        session.member = member
        session.member_side = member_side
        session.in_table = True
        session.last_activity = time.monotonic()
        member.sessions.add(session)
        member.connections_total += 1
        self.sessions[session.id] = session
        heapq.heappush(self.aging, (session.last_activity, session.id))
        client.transport.resume_reading()

    def age_out(self, session: Session) -> None:
        session.cut = True
        session.forget()
        self.cut_sessions.add(session)
        self.log_event(session.vip.config.name, session.member.name if session.member else None, 'session', 'aged',
                       f'session {session.id} from {session.client.peer} idle past {self.config.profile.idle_timeout:g}s')

    async def _age_sessions(self) -> None:
        while not self._stopping:
            await asyncio.sleep(min(1.0, self.config.profile.idle_timeout / 5))
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> int:
        """Age out every session idle past the timeout at ``now``; how many it aged.

        Pops only the keys older than the cutoff: a session still active goes back with its newer
        last activity, one that left the table is dropped. So a session costs a sweep about once per
        idle timeout, however many sessions the table holds.
        """
        started, cutoff = time.perf_counter(), now - self.config.profile.idle_timeout
        looked_at = aged = 0
        while self.aging and self.aging[0][0] < cutoff:
            _key, session_id = heapq.heappop(self.aging)
            looked_at += 1
            session = self.sessions.get(session_id)
            if session is None:
                continue
            if session.last_activity < cutoff:
                self.age_out(session)
                aged += 1
            else:
                heapq.heappush(self.aging, (session.last_activity, session_id))
        self.last_sweep = {'seconds': time.perf_counter() - started, 'looked_at': looked_at, 'aged': aged}
        return aged

    # -- views -------------------------------------------------------------------------------

    def status(self) -> dict[str, t.Any]:
        return {
            'ready': self.started > 0,
            'pid': os.getpid(),
            'started': self.started,
            'control_url': self.control_url,
            'config_digest': self.config.digest(),
            'profile': self.config.profile.as_dict(),
            'vips': {name: str(vip.listen) for name, vip in self.vips.items()},
        }

    def session_rows(self, vip: str | None = None, member: str | None = None) -> list[dict[str, t.Any]]:
        return [
            s.as_dict() for s in self.sessions.values()
            if (vip is None or s.vip.config.name == vip) and (member is None or (s.member and s.member.name == member))
        ]

    def metrics(self) -> str:
        lines = [
            '# HELP l4vip_member_bound Whether the member takes new connections.',
            '# TYPE l4vip_member_bound gauge',
        ]
        rows = [(v, m) for v in self.vips.values() for m in v.members]
        lines += [f'l4vip_member_bound{{vip="{v.config.name}",member="{m.name}"}} {int(m.bound)}' for v, m in rows]
        lines += ['# HELP l4vip_member_health Health state of the member (1 for the current one).', '# TYPE l4vip_member_health gauge']
        lines += [
            f'l4vip_member_health{{vip="{v.config.name}",member="{m.name}",state="{state}"}} {int(m.health == state)}'
            for v, m in rows for state in (HEALTH_UP, HEALTH_SUSPECT, HEALTH_DOWN)
        ]
        lines += ['# HELP l4vip_sessions Session table entries.', '# TYPE l4vip_sessions gauge']
        lines += [f'l4vip_sessions{{vip="{v.config.name}",member="{m.name}"}} {len(m.sessions)}' for v, m in rows]
        lines += ['# HELP l4vip_connections_total Client connections forwarded.', '# TYPE l4vip_connections_total counter']
        lines += [f'l4vip_connections_total{{vip="{v.config.name}",member="{m.name}"}} {m.connections_total}' for v, m in rows]
        lines += ['# HELP l4vip_checks_total Health checks by result.', '# TYPE l4vip_checks_total counter']
        lines += [
            f'l4vip_checks_total{{vip="{v.config.name}",member="{m.name}",result="{"pass" if ok else "fail"}"}} {m.checks_total[ok]}'
            for v, m in rows for ok in (True, False)
        ]
        lines += ['# HELP l4vip_rejected_total Client connections refused or reset by the L4.', '# TYPE l4vip_rejected_total counter']
        lines += [f'l4vip_rejected_total{{vip="{v.config.name}",reason="{r}"}} {n}' for v in self.vips.values() for r, n in sorted(v.rejected_total.items())]
        lines += ['# HELP l4vip_api_requests_total Requests answered on the control API.', '# TYPE l4vip_api_requests_total counter',
                  f'l4vip_api_requests_total {self.api_requests}']
        lines += ['# HELP l4vip_aging_sweep_seconds How long the last aging sweep took.', '# TYPE l4vip_aging_sweep_seconds gauge',
                  f'l4vip_aging_sweep_seconds {self.last_sweep["seconds"]:.6f}',
                  '# HELP l4vip_aging_sweep_looked_at Session keys the last aging sweep looked at.', '# TYPE l4vip_aging_sweep_looked_at gauge',
                  f'l4vip_aging_sweep_looked_at {self.last_sweep["looked_at"]}']
        return '\n'.join(lines) + '\n'


def _bound_endpoint(server: asyncio.AbstractServer) -> Endpoint:
    host, port = server.sockets[0].getsockname()[:2]
    return Endpoint(host, port)


# ---------------------------------------------------------------------------------------------
# Running it: in a thread (tests), or as a process (the command line and the l4_emulator module)


class LoopThread:
    """An event loop in a daemon thread, so synchronous code (tests, rehearsals) can host servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name='l4vip-loop', daemon=True)
        self._thread.start()

    def run(self, coroutine: t.Coroutine[t.Any, t.Any, t.Any], timeout: float = 10.0) -> t.Any:
        """Run a coroutine on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def call(self, function: t.Callable[[], t.Any], timeout: float = 5.0) -> t.Any:
        """Run a function on the loop (the servers' state is not thread-safe) and return its result."""
        async def run() -> t.Any:
            return function()
        return self.run(run(), timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class EmulatorThread:
    """An Emulator on a LoopThread (its own, or one shared with other servers); a context manager."""

    def __init__(self, config: EmulatorConfig | t.Mapping[str, t.Any], loop_thread: LoopThread | None = None) -> None:
        self.config = config if isinstance(config, EmulatorConfig) else parse_config(config)
        self.emulator = Emulator(self.config)
        self._owns_loop = loop_thread is None
        self.loop_thread = loop_thread or LoopThread()
        self._running = False

    def __enter__(self) -> Emulator:
        self.start()
        return self.emulator

    def __exit__(self, *exc_info: t.Any) -> None:
        self.stop()

    def start(self) -> Emulator:
        try:
            self.loop_thread.run(self.emulator.start())
        except BaseException:
            self._close_loop()
            raise
        self._running = True
        return self.emulator

    def run(self, coroutine: t.Coroutine[t.Any, t.Any, t.Any], timeout: float = 10.0) -> t.Any:
        return self.loop_thread.run(coroutine, timeout)

    def call(self, function: t.Callable[[], t.Any], timeout: float = 5.0) -> t.Any:
        return self.loop_thread.call(function, timeout)

    def stop(self) -> None:
        try:
            if self._running:
                self._running = False
                self.loop_thread.run(self.emulator.stop())
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        if self._owns_loop:
            self.loop_thread.close()


def _write_atomically(path: str, text: str) -> None:
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.replace(tmp, path)


async def serve_forever(config: EmulatorConfig, pidfile: str | None, state_file: str | None) -> None:
    """Run until SIGTERM or SIGINT; the state file says where the control API listens."""
    emulator = Emulator(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await emulator.start()
    try:
        if pidfile:
            _write_atomically(pidfile, f'{os.getpid()}\n')
        if state_file:
            _write_atomically(state_file, json.dumps(emulator.status(), indent=2))
        _say(sys.stdout, f'l4vip emulator ready: control {emulator.control_url}, VIPs ' +
             ', '.join(f'{n} {v.listen}' for n, v in emulator.vips.items()))
        await stop.wait()
    finally:
        await emulator.stop()
        for path in (pidfile, state_file):
            if path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def _say(stream: t.TextIO, line: str) -> None:
    """Command-line output (this file is also module_utils, where print() is reserved for modules)."""
    stream.write(line + '\n')
    stream.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='l4vip-emulator', description='The embedded L4 emulator of l4vip.rollout.')
    parser.add_argument('--config', required=True, help='configuration file (JSON, or YAML with PyYAML)')
    parser.add_argument('--pidfile', help='write the process id here once ready; removed at exit')
    parser.add_argument('--state-file', help='write the control URL and bound addresses here (JSON) once ready')
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (OSError, ConfigError) as error:
        _say(sys.stderr, f'l4vip-emulator: {args.config}: {error}')
        return 2
    for warning in control_warnings(config):
        _say(sys.stderr, f'l4vip-emulator: warning: {warning}')
    try:
        asyncio.run(serve_forever(config, args.pidfile, args.state_file))
    except OSError as error:
        _say(sys.stderr, f'l4vip-emulator: cannot listen: {error}')
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
