# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HAProxy's runtime API: read a server's state and set its admin state.

Internal to the l4vip.rollout collection; not a public API.
"""

from __future__ import annotations

import dataclasses
import socket
import typing as t

# srv_op_state in `show servers state`.
OP_STATES = {0: 'STOPPED', 1: 'STARTING', 2: 'RUNNING', 3: 'STOPPING'}
# srv_admin_state bits: forced, inherited, config, resolver and hostname maintenance, and drain.
ADMIN_BITS = {0x01: 'FMAINT', 0x02: 'IMAINT', 0x04: 'CMAINT', 0x08: 'FDRAIN', 0x10: 'IDRAIN', 0x20: 'RMAINT', 0x40: 'HMAINT'}
MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
DRAIN_BITS = 0x08 | 0x10
# Our admin states and HAProxy's `set server ... state` words.
ADMIN_COMMANDS = {'disabled': 'maint', 'drain': 'drain', 'enabled': 'ready'}


class RuntimeApiError(OSError):
    """The runtime API could not be reached, or answered with an error."""


@dataclasses.dataclass(frozen=True)
class ServerState:
    backend: str
    name: str
    op_state: int
    admin_bits: int
    check_health: int | None

    @property
    def admin_state(self) -> str:
        if self.admin_bits & MAINT_BITS:
            return 'disabled'
        if self.admin_bits & DRAIN_BITS:
            return 'drain'
        return 'enabled'

    @property
    def bound(self) -> bool:
        """Takes new connections: running or starting (a server going down is still running), and not in MAINT or DRAIN."""
        return self.op_state in (1, 2) and self.admin_state == 'enabled'

    def describe(self) -> str:
        """HAProxy's own words, e.g. ``RUNNING`` or ``STOPPED+MAINT``."""
        flags = [name for bit, name in ADMIN_BITS.items() if self.admin_bits & bit]
        return '+'.join([OP_STATES.get(self.op_state, str(self.op_state))] + flags)


def parse_endpoint(endpoint: str) -> tuple[int, t.Any]:
    """A unix socket path, or ``host:port`` / ``[v6]:port``: (address family, address)."""
    if endpoint.startswith('/'):
        return socket.AF_UNIX, endpoint
    host, sep, port = endpoint.rpartition(':')
    if not sep or not port.isdigit():
        raise ValueError(f'endpoint: expected a unix socket path or host:port, got {endpoint!r}')
    host = host.strip('[]')
    return (socket.AF_INET6 if ':' in host else socket.AF_INET), (host, int(port))


def runtime_command(endpoint: str, command: str, timeout: float = 5.0) -> str:
    """Send one command (the API closes the connection after answering) and return the answer."""
    family, address = parse_endpoint(endpoint)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(command.encode() + b'\n')
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as error:
        raise RuntimeApiError(f'HAProxy runtime API at {endpoint}: {error}') from error
    return b''.join(chunks).decode('utf-8', errors='replace')


def parse_servers_state(text: str) -> dict[tuple[str, str], ServerState]:
    """``show servers state`` as {(backend, server): ServerState}; columns are read from the header line."""
    header: list[str] | None = None
    servers = {}
    for line in text.splitlines():
        if line.startswith('# '):
            header = line[2:].split()
            continue
        if header is None or not line.strip() or not line[0].isdigit():
            continue
        row = dict(zip(header, line.split()))
        health = row.get('srv_check_health')
        state = ServerState(row['be_name'], row['srv_name'], int(row['srv_op_state']), int(row['srv_admin_state']),
                            int(health) if health and health.isdigit() else None)
        servers[(state.backend, state.name)] = state
    if header is None:
        raise RuntimeApiError(f'show servers state: unexpected answer {text.strip()[:200]!r}')
    return servers


def backend_states(endpoint: str, backend: str, servers: t.Sequence[str] = (), timeout: float = 5.0) -> dict[str, ServerState]:
    """Every server of ``backend`` by name; an unknown backend, or any of ``servers`` missing, is an error."""
    text = runtime_command(endpoint, f'show servers state {backend}', timeout)
    states = {name: state for (be, name), state in parse_servers_state(text).items() if be == backend}
    _require_servers(states, backend, servers)
    return states


def _require_servers(known: t.Iterable[str], backend: str, servers: t.Sequence[str]) -> None:
    missing = [server for server in servers if server not in known]
    if missing:
        raise RuntimeApiError(f"HAProxy has no server {missing[0]!r} in backend {backend!r}; its servers are {', '.join(sorted(known)) or 'none'}")


def set_admin_state(endpoint: str, backend: str, server: str, state: str, timeout: float = 5.0) -> None:
    answer = runtime_command(endpoint, f'set server {backend}/{server} state {ADMIN_COMMANDS[state]}', timeout).strip()
    if answer:
        # The runtime API answers an empty line on success and a sentence on failure.
        raise RuntimeApiError(f'HAProxy refused to set {backend}/{server} {ADMIN_COMMANDS[state]}: {answer}')


def current_sessions(endpoint: str, backend: str, servers: t.Sequence[str], timeout: float = 5.0) -> dict[str, int]:
    """Each server's current sessions (``scur`` of ``show stat``), from one answer."""
    text = runtime_command(endpoint, 'show stat', timeout)
    lines = text.splitlines()
    if not lines or not lines[0].startswith('# '):
        raise RuntimeApiError(f'show stat: unexpected answer {text.strip()[:200]!r}')
    columns = lines[0][2:].split(',')
    counts = {}
    for line in lines[1:]:
        row = dict(zip(columns, line.split(',')))
        if row.get('pxname') == backend and row.get('svname') in servers:
            counts[row['svname']] = int(row.get('scur') or 0)
    _require_servers(counts, backend, servers)
    return counts
