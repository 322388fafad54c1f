# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The emulator's data path: a VIP's listener, the two sides of each client connection, the session between them.

Internal to the l4vip.rollout collection; not a public API. Packets from the client are
forwarded by the session table, not by the binding list, so a member marked down keeps its
sessions until it closes them (FIN) or they idle out; the return path does not depend on the
table (in DSR it bypasses the L4), so a member's FIN always reaches its client; a client reset
leaves the member's side open (a zombie: the member never sees the RST).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import random
import socket
import struct
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import EmulatorConfig, Endpoint, VipConfig
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.health import Member


@t.runtime_checkable
class SessionTable(t.Protocol):
    """What the data path needs of the emulator it runs in (the core's Emulator): the table, the settings, a task."""

    config: EmulatorConfig
    sessions: dict[int, Session]
    # Reset or aged sessions whose member side is still open: out of the table, closed at stop.
    cut_sessions: set[Session]

    def count_reset(self, vip: Vip, reason: str) -> None: ...  # noqa: E704

    def spawn(self, coroutine: t.Coroutine[t.Any, t.Any, t.Any]) -> None: ...  # noqa: E704

    async def connect_member(self, session: Session) -> None: ...  # noqa: E704

    def age_out(self, session: Session) -> None: ...  # noqa: E704


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

    def __init__(self, emulator: SessionTable, vip: Vip, client: ClientSide) -> None:
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

    def __init__(self, emulator: SessionTable, vip: Vip) -> None:
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
