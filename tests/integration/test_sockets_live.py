"""The session reader against the real kernel table: loopback sockets we open, found by port and peer.

Loopback only (127.0.0.100-109 and ::1); every socket is closed; every wait is limited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import socket
import threading
import time

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._sockets import (
    client_sessions,
    endpoint,
    read_sockets,
    validate_address,
    wait_for_drain,
)
from ansible_collections.l4vip.rollout.tests.harness import environment

CLIENTS = 3
IO_TIMEOUT = 5.0
DRAIN_TIMEOUT = 5.0

FAMILIES = {
    # IPv4: a client address each, so that excluding one address drops one session.
    'ipv4': (socket.AF_INET, '127.0.0.101', ['127.0.0.102', '127.0.0.103', '127.0.0.104']),
    'ipv6': (socket.AF_INET6, '::1', ['::1', '::1', '::1']),
}


@dataclasses.dataclass
class Service:
    """A listener on loopback, its clients and the server's side of each connection."""

    address: str
    port: int
    clients: list[socket.socket]
    accepted: list[socket.socket]

    @property
    def client_peers(self) -> list[str]:
        """The clients as the server sees them, in the reader's format."""
        return sorted(peer_of(sock) for sock in self.clients)

    def sessions(self, **kwargs) -> list:
        return client_sessions(read_sockets(), self.port, address=self.address, **kwargs)

    def close_server_side(self) -> None:
        for sock in self.accepted:
            sock.close()


def peer_of(client: socket.socket) -> str:
    """A client socket as the server sees it: ``address:port``, IPv6 in brackets."""
    address, port = client.getsockname()[:2]
    return endpoint(validate_address(address), port)


def open_socket(stack: contextlib.ExitStack, family: int) -> socket.socket:
    sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
    sock.settimeout(IO_TIMEOUT)
    return sock


@contextlib.contextmanager
def service(family: int, address: str, client_addresses: list[str], listen_family: int | None = None):
    with contextlib.ExitStack() as stack:
        listener = open_socket(stack, listen_family or family)
        if listen_family == socket.AF_INET6 and family == socket.AF_INET:
            # A dual-stack listener on one mapped loopback address: the table shows ::ffff:127.0.0.101.
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            listener.bind((f'::ffff:{address}', 0))
        else:
            try:
                listener.bind((address, 0))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    environment.missing(f'{address} is not available on this host')
                raise
        listener.listen(CLIENTS)
        port = listener.getsockname()[1]
        clients, accepted = [], []
        for source in client_addresses:
            client = open_socket(stack, family)
            client.bind((source, 0))
            client.connect((address, port))
            clients.append(client)
            server_side = stack.enter_context(listener.accept()[0])
            accepted.append(server_side)
        yield Service(address=address, port=port, clients=clients, accepted=accepted)


@pytest.fixture(params=sorted(FAMILIES))
def live(request):
    family, address, client_addresses = FAMILIES[request.param]
    with service(family, address, client_addresses) as svc:
        yield svc


def test_each_client_is_one_established_session(live):
    sessions = live.sessions()
    assert len(sessions) == CLIENTS
    assert [session.state for session in sessions] == ['ESTABLISHED'] * CLIENTS
    assert [session.peer for session in sessions] == live.client_peers
    assert {session.local for session in sessions} == {endpoint(validate_address(live.address), live.port)}
    # The listener and the clients' own sockets are in the table too, and are not sessions.
    table = read_sockets()
    assert any(sock.local_port == live.port and sock.state == 'LISTEN' for sock in table)
    assert sum(sock.remote_port == live.port and sock.state == 'ESTABLISHED' for sock in table) >= CLIENTS


def test_an_excluded_source_is_not_a_client(live):
    excluded = live.clients[0].getsockname()[0]
    remaining = [session.peer for session in live.sessions(exclude_sources=[excluded])]
    expected = [peer_of(client) for client in live.clients if client.getsockname()[0] != excluded]
    assert remaining == sorted(expected)
    # IPv4 clients each have their own address, so exactly one drops; the IPv6 ones all share ::1.
    assert len(remaining) == (CLIENTS - 1 if ':' not in excluded else 0)


def test_a_session_the_server_closed_no_longer_counts(live):
    assert len(live.sessions()) == CLIENTS
    # Close a little later, so the wait sees sessions first and then sees them go.
    closer = threading.Timer(0.3, live.close_server_side)
    closer.start()
    try:
        result = wait_for_drain(read_sockets, live.port, address=live.address, timeout=DRAIN_TIMEOUT, poll_interval=0.05)
    finally:
        closer.cancel()
        closer.join(IO_TIMEOUT)
    assert result.drained is True, result
    assert result.connections == []
    assert result.polls >= 2, result
    assert 0.25 <= result.elapsed < DRAIN_TIMEOUT
    # The kernel keeps the server's side, now closing: there, but not a client session.
    server_side = [sock.state for sock in read_sockets() if sock.local_port == live.port and sock.state != 'LISTEN']
    assert len(server_side) == CLIENTS
    assert set(server_side) <= {'FIN_WAIT1', 'FIN_WAIT2'}


def test_a_client_that_closed_first_still_counts_until_the_server_closes(live):
    for client in live.clients:
        client.shutdown(socket.SHUT_WR)
    for server_side in live.accepted:
        # Reading the FIN proves the kernel processed it: the server side is CLOSE_WAIT now.
        assert server_side.recv(1) == b''
    sessions = live.sessions()
    assert [session.state for session in sessions] == ['CLOSE_WAIT'] * CLIENTS
    assert [session.peer for session in sessions] == live.client_peers
    live.close_server_side()
    result = wait_for_drain(read_sockets, live.port, address=live.address, timeout=DRAIN_TIMEOUT, poll_interval=0.05)
    assert result.drained is True, result


def test_the_wait_times_out_on_live_sessions_and_names_them(live):
    # Long enough for several reads of the socket table, however full a busy machine's is (TIME_WAIT left by other tests).
    started = time.monotonic()
    read_sockets()
    timeout = 0.2 + 3 * (time.monotonic() - started)
    result = wait_for_drain(read_sockets, live.port, address=live.address, timeout=timeout, poll_interval=0.05)
    assert result.drained is False
    assert [session['peer'] for session in result.connections] == live.client_peers
    assert timeout <= result.elapsed < timeout + IO_TIMEOUT
    assert result.polls >= 2


def test_ipv4_clients_of_a_dual_stack_listener_are_ipv4_sessions():
    clients = ['127.0.0.105', '127.0.0.106', '127.0.0.107']
    with service(socket.AF_INET, '127.0.0.108', clients, listen_family=socket.AF_INET6) as svc:
        sessions = svc.sessions()
        assert [session.peer for session in sessions] == sorted(f'{address}:{sock.getsockname()[1]}' for address, sock in zip(clients, svc.clients))
        assert {session.family for session in sessions} == {'ipv6'}
        assert [session.peer for session in svc.sessions(exclude_sources=['127.0.0.105/32', '::ffff:127.0.0.106'])] == [
            f'127.0.0.107:{svc.clients[2].getsockname()[1]}']
        assert svc.sessions(exclude_sources=['127.0.0.104/30']) == []
