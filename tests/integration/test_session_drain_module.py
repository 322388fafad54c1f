"""session_drain through real ansible-playbook: k keep-alive sessions reported, then none once the server stops."""

from __future__ import annotations

import os
import signal
import socket
import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import RealServer
from ansible_collections.l4vip.rollout.tests.harness.ansible import Background, run_playbook
from ansible_collections.l4vip.rollout.tests.harness.emulator_thread import LoopThread
from ansible_collections.l4vip.rollout.tests.harness.fixtures import nginx_factory  # noqa: F401  pylint: disable=unused-import
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab, get, raw_get, wait_for
from ansible_collections.l4vip.rollout.tests.harness.module_looks import between_looks
from ansible_collections.l4vip.rollout.tests.harness.real_parts import CLIENT_HEADER_TIMEOUT, wait_until

K = 3


def drain_task(**args):
    # As a module even on the controller: the tests watch for its process to know the wait has begun.
    return [{'name': 'drain', 'l4vip.rollout.session_drain': dict(poll_interval=0.05, **args), 'vars': {'l4vip_rollout_in_process': False}}]


@pytest.mark.parametrize('host', ['127.0.0.141', '::1'])
def test_reports_open_keepalive_sessions_then_none_after_graceful_stop(tmp_path, host):
    (tmp_path / 'health_check.html').write_text('ok\n')
    loop = LoopThread()
    server = RealServer('web1', host, 0, str(tmp_path))
    clients: list[socket.socket] = []
    try:
        loop.run(server.start())
        for _client in range(K):
            sock = socket.create_connection((host, server.port), timeout=2)
            raw_get(sock)
            clients.append(sock)
        peers = sorted(f'[{c.getsockname()[0]}]:{c.getsockname()[1]}' if ':' in host else '%s:%d' % c.getsockname()[:2] for c in clients)

        left = run_playbook(tmp_path, drain_task(port=server.port, address=host, timeout=0.3)).task('drain')
        assert left['failed'] and left['drained'] is False
        assert sorted(s['peer'] for s in left['sessions']) == peers
        assert {s['state'] for s in left['sessions']} == {'ESTABLISHED'}
        assert left['msg'].startswith(f'{K} client connection(s) remain on port {server.port} after 0.3s: ')

        client_address = clients[0].getsockname()[0]  # every client leaves from the same loopback address
        excluded = run_playbook(tmp_path, drain_task(port=server.port, timeout=0.3, exclude_sources=[client_address])).task('drain')
        assert not excluded['failed'] and excluded['sessions'] == []

        checked = run_playbook(tmp_path, drain_task(port=server.port, timeout=5), check=True).task('drain')
        assert checked['waited'] is False and len(checked['sessions']) == K and not checked['failed']

        run = Background(tmp_path, drain_task(port=server.port, address=host, timeout=10))
        # The module's first look at the socket table, while the sessions are open: its read of /proc/net/tcp leaves no
        # trace outside it, but it sleeps only between two looks, and the kernel says where its own Python process sleeps
        # (tests/harness/module_looks.py). The /bin/sh wrapper that starts it would not do: it runs before Python does.
        wait_until(lambda: between_looks('session_drain', tmp_path), 30, 'session_drain asleep after its first look', poll=0.01)
        stopped_at = time.time()
        loop.run(server.stop(graceful=True))  # FIN to every idle keep-alive client
        done = run.join()
        drained = done.task('drain')
        # Started while the sessions were open, it returned once they were gone, soon after the stop.
        # (The wait's polling itself is shown with a fake clock in the unit tests of _sockets.)
        assert not drained['failed'] and drained['drained'] and drained['sessions'] == []
        ended = next(entry['ended'] for entry in done.output if entry['task'] == 'drain')
        assert stopped_at <= ended < stopped_at + 2.0, (stopped_at, ended)
    finally:
        for sock in clients:
            sock.close()
        loop.run(server.stop(graceful=False))
        loop.close()


def test_a_connection_that_sent_no_request_holds_a_graceful_stop_until_client_header_timeout(tmp_path, nginx_factory):  # noqa: F811  pylint: disable=redefined-outer-name
    """What docs/roles.md warns of, on real nginx: its graceful stop closes an idle keep-alive connection at once, but one
    that never sent a request (a browser's preconnect, a client the L4 reset before its request) only at
    client_header_timeout; the drain waits for it and says the member is drained once it is gone."""
    nginx = nginx_factory('web1', '127.0.0.143', 18143)
    idle = socket.create_connection((nginx.address, nginx.port), timeout=2)
    raw_get(idle)
    silent = None
    try:
        run = Background(tmp_path, drain_task(port=nginx.port, address=nginx.address, timeout=CLIENT_HEADER_TIMEOUT + 6))
        wait_until(lambda: between_looks('session_drain', tmp_path), 30, 'session_drain asleep after its first look', poll=0.01)
        # nginx's timer runs from the connect: connect, then stop at once.
        silent = socket.create_connection((nginx.address, nginx.port), timeout=2)
        quit_at = time.time()
        os.kill(t.cast(int, nginx.pid), signal.SIGQUIT)
        idle.settimeout(2)
        assert idle.recv(1) == b'' and time.time() < quit_at + 1.0, 'the idle keep-alive connection was not closed at once'
        done = run.join()
        drained = done.task('drain')
        ended = next(entry['ended'] for entry in done.output if entry['task'] == 'drain')
        assert not drained['failed'] and drained['drained'], drained
        assert quit_at + CLIENT_HEADER_TIMEOUT - 0.5 <= ended < quit_at + CLIENT_HEADER_TIMEOUT + 3.0, (quit_at, ended)
        silent.settimeout(1)
        assert silent.recv(1) == b''  # nginx closed it, at its client_header_timeout
    finally:
        idle.close()
        if silent is not None:
            silent.close()


def test_l4_side_counts_through_the_emulator(tmp_path):
    with Lab(tmp_path, count=1) as lab:
        lab.wait_all_bound()
        connection = lab.keepalive()
        get(connection)
        server = lab.servers['web1']
        l4 = dict(provider='emulator', endpoint=lab.emulator.control_url, pool='web', member='web1')
        # The server side sees the emulator's connection; the L4 side sees the client's session.
        both = run_playbook(tmp_path, drain_task(port=server.port, timeout=0.3, **l4)).task('drain')
        assert both['failed'] and len(both['sessions']) == 1
        lab.run(server.stop(graceful=True))
        wait_for('session cleared', lambda: lab.member('web1')['sessions'] == 0, timeout=1)
        done = run_playbook(tmp_path, drain_task(port=server.port, timeout=2, **l4)).task('drain')
        assert not done['failed'] and done['l4_sessions'] == 0 and done['sessions'] == []
        connection.close()


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        ({'port': 0}, 'port: '),
        ({'port': 80, 'address': 'web1'}, "address: "),
        ({'port': 80, 'exclude_sources': ['10.0.0.0/33']}, "exclude_sources"),
        ({'port': 80, 'threshold': -1}, 'threshold: '),
        ({'port': 80, 'timeout': -1}, 'timeout: '),
        ({'port': 80, 'poll_interval': 0}, 'poll_interval: '),
        ({'port': 80, 'profile': {'rise': 0}}, 'profile.rise: expected a whole number of at least 1, got 0'),
    ],
)
def test_bad_values_name_the_option(tmp_path, args, message):
    result = run_playbook(tmp_path, [{'name': 'drain', 'l4vip.rollout.session_drain': args}]).task('drain')
    assert result['failed'] and message in result['msg'], result['msg']
