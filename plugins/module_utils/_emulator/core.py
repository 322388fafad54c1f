# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The emulator itself: its VIPs and members, the health-check schedule, the session table and its aging.

Internal to the l4vip.rollout collection; not a public API. An Emulator starts and stops inside
a running event loop. It does not know the control API: whoever builds it passes the function
that serves one (``daemon.with_control_api``), so the API is typed against a protocol of its
own and neither file imports the other.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import os
import random
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import ConfigError, EmulatorConfig, Endpoint
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.datapath import ClientSide, MemberSide, Session, Vip, send_rst
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.health import ADMIN_STATES, HEALTH_DOWN, CheckResult, Member, check
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.metrics import prometheus_text

EVENT_LOG_SIZE = 10_000
# In DSR the client's SYN reaches the member itself, so a client waits for a slow member as long as
# its own connect timeout allows (SYN retransmissions at 1 s, 3 s, 7 s...), not the L4's check
# timeout: a member's full accept queue in a burst of new connections costs time, not a reset.
# A refused connect still comes back at once.
MEMBER_CONNECT_TIMEOUT = 10.0
# Pending connections a VIP's listener queues (the kernel caps it at net.core.somaxconn): a VIP takes
# bursts of thousands of new connections, as when every client reconnects at once.
LISTEN_BACKLOG = 4096

# Listens for the control API on the endpoint for this emulator (api.serve_control).
ServeControl = t.Callable[['Emulator', Endpoint], t.Awaitable[asyncio.AbstractServer]]


class Emulator:
    """The whole L4: start it inside a running event loop, stop it the same way."""

    def __init__(self, config: EmulatorConfig, serve_control: ServeControl | None = None) -> None:
        self.config = config
        self._serve_control = serve_control  # None: no control API (the core alone, as unit tests build it)
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
        self.claim_tables: dict[str, tuple[int, dict[str, t.Any]]] = {}  # the rollouts' claims, kept for the control API
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
                vip.listen = _listening_endpoint(vip.server)
            if self._serve_control is not None:
                self.control = await self._serve_control(self, self.config.control)
                self.control_endpoint = _listening_endpoint(self.control)
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

    def take_check(self, member: Member, result: CheckResult) -> None:
        """One health check's result: the member's health moves (and is logged) when the profile says so."""
        changed = member.observe(result, self.config.profile)
        if changed:
            self.set_health(member, changed, result.detail)

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
            ok, detail = await check(member.address, self.config.profile, self.config.check_source)
            self.take_check(member, CheckResult(time.time(), ok, detail))
            # The next check keeps the schedule; a slow check never shifts the phase.
            k = max(k + 1, int((loop.time() - first) // interval) + 1)

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
        return prometheus_text(self.vips.values(), self.api_requests, self.last_sweep)


def _listening_endpoint(server: asyncio.AbstractServer) -> Endpoint:
    host, port = server.sockets[0].getsockname()[:2]
    return Endpoint(host, port)
