# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The server side of ``session_drain``: the server's client connections read from the kernel's socket table.

Internal to the l4vip.rollout collection; not a public API. Standard library only: it runs
on the managed host and needs neither ``ss`` nor ``netstat``, only ``/proc/net/tcp`` and
``/proc/net/tcp6`` (of the caller's network namespace).

These are the server's own TCP connections, called connections here; a session is the L4's
record of one (see docs/architecture.md, Words). The module still reports them as ``sessions``
and ``cut_sessions``, its public names.

Which sockets are client connections: those whose *local* port is the service port, in a state
in which the server still holds a connection a client can use (``CARRYING_TRAFFIC``):

- ``ESTABLISHED``: the ordinary connection; includes the zombie that "Reset On Port Fail"
  leaves behind, because the server side never learns of that reset.
- ``SYN_RECV`` / ``NEW_SYN_RECV``: a client is connecting right now, so the L4 still sends
  new connections here.
- ``CLOSE_WAIT``: the client closed its side, the server has not; the server still holds
  the connection and may still answer on it.

Not counted, because the server has already closed its side: ``FIN_WAIT1``, ``FIN_WAIT2``,
``CLOSING``, ``LAST_ACK`` (the server's FIN is on its way or acknowledged, and a FIN is what
makes the L4 clear the session), ``TIME_WAIT`` and ``CLOSE`` (nothing can flow any more).
One caveat: ``FIN_WAIT1`` starts at ``close()``, so a large response still queued behind the
FIN keeps the socket there until it is sent; it needs no server process and survives a
restart, so it does not hold up a deploy. ``LISTEN`` and ``SYN_SENT`` are not connections of a
client. Callers that want a different rule pass their own ``states``.

In direct server return the server answers from the VIP held on ``lo:0``, so the local
address of a client connection is the VIP, not the server's own address.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import sys
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError, seconds
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import SYSTEM_CLOCK, Clock, poll_until

IPAddress = t.Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = t.Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

PROC_TCP = '/proc/net/tcp'
PROC_TCP6 = '/proc/net/tcp6'

# include/net/tcp_states.h; the table prints the number in hex.
STATE_CODES: dict[int, str] = {
    0x01: 'ESTABLISHED',
    0x02: 'SYN_SENT',
    0x03: 'SYN_RECV',
    0x04: 'FIN_WAIT1',
    0x05: 'FIN_WAIT2',
    0x06: 'TIME_WAIT',
    0x07: 'CLOSE',
    0x08: 'CLOSE_WAIT',
    0x09: 'LAST_ACK',
    0x0A: 'LISTEN',
    0x0B: 'CLOSING',
    0x0C: 'NEW_SYN_RECV',
    0x0D: 'BOUND_INACTIVE',  # Linux 6.5+: bound, never connected; not a client's connection
}
STATE_NAMES: tuple[str, ...] = tuple(STATE_CODES.values())

# See the module docstring for why exactly these.
CARRYING_TRAFFIC: frozenset[str] = frozenset({'ESTABLISHED', 'SYN_RECV', 'NEW_SYN_RECV', 'CLOSE_WAIT'})

FAMILY_IPV4 = 'ipv4'
FAMILY_IPV6 = 'ipv6'

# Hex digits of one address in the table, by family.
_ADDRESS_WIDTH = {8: FAMILY_IPV4, 32: FAMILY_IPV6}
# Columns of a table line: "sl local remote st ..."; the inode is the tenth.
_INODE_COLUMN = 9


class SocketTableError(ValueError):
    """A line of the socket table cannot be read; never skipped, since a lost connection would look drained."""


@dataclasses.dataclass(frozen=True)
class Socket:
    """One line of ``/proc/net/tcp`` or ``tcp6``.

    ``family`` is the socket's own (an IPv6 socket can carry IPv4 traffic); the addresses of
    such a socket are IPv4-mapped in the table and stored here as the IPv4 addresses they are.
    """

    local_address: IPAddress
    local_port: int
    remote_address: IPAddress
    remote_port: int
    state: str
    inode: int
    family: str

    @property
    def local(self) -> str:
        return endpoint(self.local_address, self.local_port)

    @property
    def peer(self) -> str:
        return endpoint(self.remote_address, self.remote_port)

    def as_session(self) -> dict[str, str]:
        """What a module reports about a remaining connection (an item of its ``sessions``)."""
        return {'peer': self.peer, 'local': self.local, 'state': self.state}


def endpoint(address: IPAddress, port: int) -> str:
    """``address:port``, with an IPv6 address in brackets so that the port stays readable."""
    if address.version == 6:
        return f'[{address}]:{port}'
    return f'{address}:{port}'


def unmapped(address: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` is a.b.c.d talking through an IPv6 socket: match it as the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def decode_address(text: str) -> IPAddress:
    """An address as the table prints it: 32-bit words, each as the hex number the host stores.

    IPv4 is one word, IPv6 four; on a little-endian host each word's bytes appear reversed.
    """
    if len(text) not in _ADDRESS_WIDTH:
        raise SocketTableError(f'address {text!r}: expected 8 or 32 hex digits')
    try:
        words = [int(text[i:i + 8], 16) for i in range(0, len(text), 8)]
    except ValueError:
        raise SocketTableError(f'address {text!r}: not hexadecimal') from None
    packed = b''.join(word.to_bytes(4, sys.byteorder) for word in words)
    return unmapped(ipaddress.ip_address(packed))


def decode_endpoint(text: str) -> tuple[IPAddress, int]:
    """``ADDRESS:PORT`` from the table; the port is printed in host order, as a plain number."""
    address, sep, port = text.partition(':')
    if not sep or len(port) != 4:
        raise SocketTableError(f'endpoint {text!r}: expected ADDRESS:PORT in hex')
    try:
        return decode_address(address), int(port, 16)
    except ValueError as exc:
        raise SocketTableError(f'endpoint {text!r}: {exc}') from None


def decode_state(text: str) -> str:
    try:
        code = int(text, 16)
    except ValueError:
        raise SocketTableError(f'state {text!r}: not hexadecimal') from None
    # A state a newer kernel adds is named, not fatal; it is in no default set of states.
    return STATE_CODES.get(code, f'UNKNOWN_{code:02X}')


def parse_line(line: str) -> Socket | None:
    """One line of the table as a Socket; None for the header and blank lines."""
    fields = line.split()
    if not fields or fields[0] == 'sl':
        return None
    if len(fields) <= _INODE_COLUMN:
        raise SocketTableError(f'socket table line has {len(fields)} columns, expected at least {_INODE_COLUMN + 1}: {line.strip()!r}')
    try:
        local_address, local_port = decode_endpoint(fields[1])
        remote_address, remote_port = decode_endpoint(fields[2])
        state = decode_state(fields[3])
        inode = int(fields[_INODE_COLUMN])
    except ValueError as exc:
        raise SocketTableError(f'{exc} in socket table line {line.strip()!r}') from None
    return Socket(
        local_address=local_address,
        local_port=local_port,
        remote_address=remote_address,
        remote_port=remote_port,
        state=state,
        inode=inode,
        family=_ADDRESS_WIDTH[len(fields[1].partition(':')[0])],
    )


def parse_table(text: str, local_port: int | None = None) -> list[Socket]:
    """Every socket of one table's text (header included or not); with ``local_port``, those on that local port alone.

    A busy web server's table holds tens of thousands of lines (TIME_WAIT above all), and a drain reads it every poll:
    a line of another port is passed over on its local endpoint's text, without being decoded (7 µs a line).
    """
    suffix = None if local_port is None else f':{local_port:04X}'
    sockets = []
    for line in text.splitlines():
        if suffix is not None:
            fields = line.split(None, 2)
            if len(fields) < 2 or not fields[1].endswith(suffix):
                continue
        parsed = parse_line(line)
        if parsed is not None:
            sockets.append(parsed)
    return sockets


def read_sockets(tcp_path: str = PROC_TCP, tcp6_path: str | None = PROC_TCP6, local_port: int | None = None) -> list[Socket]:
    """The kernel's TCP sockets, IPv4 and IPv6 (with ``local_port``, those on it). A missing tcp6 table means IPv6 is
    off, so no IPv6 sockets.

    A missing or unreadable tcp table raises OSError: without it nothing can be said.
    """
    sockets = parse_table(_read_text(tcp_path), local_port)
    if tcp6_path is not None:
        try:
            sockets.extend(parse_table(_read_text(tcp6_path), local_port))
        except FileNotFoundError:
            pass
    return sockets


def _read_text(path: str) -> str:
    with open(path, encoding='ascii') as table:
        return table.read()


def validate_port(value: t.Any, option: str = 'port') -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise OptionError(option, value, 'expected a TCP port number from 1 to 65535')
    return value


def validate_address(value: t.Any, option: str = 'address') -> IPAddress | None:
    """An IP address, or None for any. ``0.0.0.0`` and ``::`` also mean any.

    A connection's local address is never unspecified (only a listener's is), so filtering on
    it would find nothing and report drained wrongly.
    """
    if value is None or isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address = value
    elif isinstance(value, str):
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            raise OptionError(option, value, 'expected an IP address such as 192.0.2.10 or 2001:db8::10') from None
    else:
        raise OptionError(option, value, 'expected an IP address such as 192.0.2.10 or 2001:db8::10')
    if address is None or address.is_unspecified:
        return None
    return unmapped(address)


def validate_exclude_sources(values: t.Any, option: str = 'exclude_sources') -> tuple[IPNetwork, ...]:
    """IP addresses or CIDR networks (host bits allowed, as firewalls allow them), as networks."""
    if values is None:
        return ()
    if isinstance(values, (str, bytes)) or not isinstance(values, t.Iterable):
        raise OptionError(option, values, 'expected a list of IP addresses or CIDR networks')
    return tuple(_source_network(value, option) for value in values)


def _source_network(value: t.Any, option: str) -> IPNetwork:
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return _unmapped_network(value)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        value = str(value)
    if not isinstance(value, str):
        raise OptionError(option, value, 'expected an IP address or a CIDR network such as 10.0.0.0/24')
    try:
        return _unmapped_network(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise OptionError(option, value, 'expected an IP address or a CIDR network such as 10.0.0.0/24') from None


def _unmapped_network(network: IPNetwork) -> IPNetwork:
    """``::ffff:10.0.0.0/120`` is 10.0.0.0/24: peers are stored unmapped, so networks must be too."""
    mapped_range = ipaddress.IPv6Network('::ffff:0:0/96')
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(mapped_range):
        first = network.network_address.ipv4_mapped
        return ipaddress.IPv4Network(f'{first}/{network.prefixlen - 96}')
    return network


def validate_threshold(value: t.Any, option: str = 'threshold') -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OptionError(option, value, 'expected a whole number of sessions, 0 or more')
    return value


def validate_states(values: t.Any, option: str = 'states') -> frozenset[str]:
    """TCP state names, in any case."""
    expected = f'expected a list of TCP state names from {", ".join(STATE_NAMES)}'
    if isinstance(values, (str, bytes)) or not isinstance(values, t.Iterable):
        raise OptionError(option, values, expected)
    names = set()
    for value in values:
        if not isinstance(value, str) or value.upper() not in STATE_NAMES:
            raise OptionError(option, value, expected)
        names.add(value.upper())
    return frozenset(names)


def client_sessions(
    sockets: t.Iterable[Socket],
    port: int,
    address: t.Any = None,
    exclude_sources: t.Any = (),
    states: t.Iterable[str] = CARRYING_TRAFFIC,
) -> list[Socket]:
    """The connections of clients on a local service port, sorted by peer.

    ``address`` narrows to one local address (the VIP in DSR); ``exclude_sources`` drops
    peers that are not clients, such as the L4's health checks or a monitoring host.
    """
    port = validate_port(port)
    local = validate_address(address)
    excluded = validate_exclude_sources(exclude_sources)
    wanted = validate_states(states)
    connections = [
        sock for sock in sockets
        if sock.local_port == port
        and sock.state in wanted
        and (local is None or sock.local_address == local)
        and not _in_any(sock.remote_address, excluded)
    ]
    return sorted(connections, key=_peer_order)


def _in_any(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    # Membership across versions is simply False; no need to sort networks by family.
    return any(address in network for network in networks)


def _peer_order(sock: Socket) -> tuple[int, int, int, int, int]:
    remote, local = sock.remote_address, sock.local_address
    return (remote.version, int(remote), sock.remote_port, int(local), sock.local_port)


@dataclasses.dataclass(frozen=True)
class DrainResult:
    """What a wait for drain saw last: whether it drained, and the connections still there."""

    drained: bool
    connections: list[dict[str, t.Any]]
    elapsed: float
    polls: int

    def as_dict(self) -> dict[str, t.Any]:
        return dataclasses.asdict(self)


def wait_for_drain(
    read: t.Callable[[], t.Iterable[Socket]],
    port: int,
    address: t.Any = None,
    exclude_sources: t.Any = (),
    states: t.Iterable[str] = CARRYING_TRAFFIC,
    threshold: int = 0,
    timeout: float = 60.0,
    poll_interval: float = 1.0,
    clock: Clock = SYSTEM_CLOCK,
) -> DrainResult:
    """Poll ``read()`` until at most ``threshold`` client connections remain or ``timeout`` passes.

    Polls at once, then every ``poll_interval``, and once more at the deadline itself. A
    timeout is not an error here: the result says ``drained: false`` with what it last saw,
    and the caller decides. Errors reading the table (OSError, SocketTableError) propagate.
    """
    # Validate everything before the first poll, so a bad option never costs a wait.
    port = validate_port(port)
    local = validate_address(address)
    excluded = validate_exclude_sources(exclude_sources)
    wanted = validate_states(states)
    threshold = validate_threshold(threshold)
    timeout = seconds('timeout', timeout, allow_zero=True)
    poll_interval = seconds('poll_interval', poll_interval)

    # When each connection was first seen: /proc/net/tcp has no age, so a connection's reported
    # ``open_for`` is how long this wait has seen it (it was open at least that long).
    first_seen: dict[tuple[str, str], float] = {}

    def look() -> list[Socket]:
        now = clock.monotonic()
        found = client_sessions(read(), port, local, excluded, wanted)
        for sock in found:
            first_seen.setdefault((sock.peer, sock.local), now)
        return found

    polled = poll_until(look, lambda remaining: len(remaining) <= threshold, timeout, poll_interval, clock)
    now = clock.monotonic()
    connections = [dict(sock.as_session(), open_for=round(now - first_seen[(sock.peer, sock.local)], 3)) for sock in polled.last]
    return DrainResult(drained=polled.reached, connections=connections, elapsed=polled.elapsed, polls=polled.polls)
