from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import RealServer
from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic import (
    KIND_KEEPALIVE,
    KIND_NEW,
    OUTCOME_FAILED,
    OUTCOME_OK,
    OUTCOME_RETRIED,
    Record,
    Summary,
    Traffic,
)
from ansible_collections.l4vip.rollout.tests.harness import embedded_server
from ansible_collections.l4vip.rollout.tests.harness.embedded_server import run
from ansible_collections.l4vip.rollout.tests.harness.lab import wait_for
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import NotAnswered, TrafficThread

SERVER_HOST = '127.0.0.35'
RELAY_HOST = '127.0.0.36'
DEAD_HOST = '127.0.0.37'
THREAD_HOST = '127.0.0.38'
ODD_HOST = '127.0.0.39'
MODULE = 'ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic'


def serving(docroot: pathlib.Path, name: str, host: str = SERVER_HOST) -> t.AsyncContextManager[RealServer]:
    return embedded_server.serving(docroot, name, host)


async def every_client_answered_by(traffic: Traffic, server: str, since: float, timeout: float = 5.0) -> None:
    """Wait until every keep-alive client has had a request sent at or after ``since`` answered by ``server``.

    The event the tests mean before and after what they do to a server: every client holds a connection to it,
    or has come back through another one. Limited in time; on timeout, says which clients are still waiting.
    """
    deadline = time.monotonic() + timeout
    while True:
        answered = {record.client for record in list(traffic.records)
                    if record.kind == KIND_KEEPALIVE and record.start >= since and record.server == server and record.outcome != OUTCOME_FAILED}
        waiting = set(range(traffic.keepalive_clients)) - answered
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f'keep-alive client(s) {sorted(waiting)} not answered by {server} within {timeout:g}s; '
                                 f'last records: {traffic.records[-3:]}')
        await asyncio.sleep(0.01)


async def run_traffic(traffic: Traffic, seconds: float) -> Summary:
    await traffic.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        summary = await traffic.stop()
    return summary


class Relay:
    """A minimal stand-in for an L4 in these tests: each new client connection goes to the first backend that
    accepts it, and a close on either side closes the other (so a server's FIN reaches the client)."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[t.Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, RELAY_HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = t.cast('asyncio.Task[t.Any]', asyncio.current_task())
        self._tasks.add(task)
        self._writers.add(client_writer)
        try:
            for host, port in self.backends:
                try:
                    server_reader, server_writer = await asyncio.open_connection(host, port)
                except OSError:
                    continue
                self._writers.add(server_writer)
                await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))
                return
        finally:
            client_writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


def free_port(host: str) -> int:
    """A port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def test_counts_ok_against_a_real_server(docroot):
    async def scenario():
        async with serving(docroot, 'web1') as server:
            return await run_traffic(Traffic(SERVER_HOST, server.port, keepalive_clients=4, new_connection_rate=10), 0.5)

    summary = run(scenario())
    kinds = {record.kind for record in summary.requests}
    assert summary.ok == len(summary.requests) > 50
    assert summary.failed == 0 and summary.retried == 0 and summary.failed_by_cause == {}
    assert summary.by_server == {'web1': summary.ok}
    assert kinds == {KIND_KEEPALIVE, KIND_NEW}
    assert 3 <= sum(record.kind == KIND_NEW for record in summary.requests) <= 7  # 10/s for 0.5 s
    assert {record.version for record in summary.requests} == {'1.0'}
    assert all(record.start <= record.end for record in summary.requests)
    assert {record.client for record in summary.requests if record.kind == KIND_KEEPALIVE} == {0, 1, 2, 3}
    exported = json.loads(json.dumps(summary.as_dict(records=True)))
    assert exported['ok'] == summary.ok and len(exported['requests']) == len(summary.requests)
    assert 'requests' not in summary.as_dict()


def test_sustains_over_a_thousand_requests_per_second(docroot):
    async def scenario():
        async with serving(docroot, 'web1') as server:
            return await run_traffic(Traffic(SERVER_HOST, server.port, keepalive_clients=16), 1.0)

    summary = run(scenario())
    assert summary.failed == 0
    assert summary.requests_per_second > 1000, summary.line()


def test_graceful_stop_mid_run_is_retried_not_failed(docroot):
    """web1 stops the nginx way while keep-alive clients use it: its FINs make them reconnect (to web2)."""

    async def scenario():
        async with serving(docroot, 'web1') as web1, serving(docroot, 'web2') as web2:
            relay = Relay([(SERVER_HOST, web1.port), (SERVER_HOST, web2.port)])
            await relay.start()
            # No fresh-connection stream here: only the keep-alive clients' reconnections are under test.
            traffic = Traffic(RELAY_HOST, relay.port, keepalive_clients=8, new_connection_rate=0)
            try:
                started = time.time()
                await traffic.start()
                await every_client_answered_by(traffic, 'web1', started)  # the relay sends every client to web1 first
                stop_began = time.time()
                await web1.stop(graceful=True, timeout=2.0)
                stop_ended = time.time()
                await every_client_answered_by(traffic, 'web2', stop_ended)
            finally:
                summary = await traffic.stop()
                await relay.stop()
            return summary, stop_began, stop_ended

    summary, stop_began, stop_ended = run(scenario())
    assert summary.failed == 0, summary.failed_by_cause
    assert summary.retried >= 1
    assert all(record.kind == KIND_KEEPALIVE for record in summary.requests)
    assert summary.served_by('web1', None, stop_began)
    assert not summary.served_by('web1', stop_ended + 0.05, None)  # web1 is gone for good
    assert summary.served_by('web2', stop_ended, None)
    assert {record.server for record in summary.requests if record.outcome == OUTCOME_RETRIED} == {'web2'}


def test_nothing_listening_counts_refused_without_spinning():
    port = free_port(DEAD_HOST)
    summary = run(run_traffic(Traffic(DEAD_HOST, port, keepalive_clients=2, new_connection_rate=10), 0.5))
    assert summary.ok == 0 and summary.retried == 0
    assert summary.failed == len(summary.requests) > 0
    assert summary.failed_by_cause == {'refused': summary.failed}
    assert summary.by_server == {} and all(record.server is None for record in summary.requests)
    # 50 ms back-off: each keep-alive client fails about 10 times in 0.5 s, never hundreds.
    per_client = [sum(record.client == client for record in summary.requests) for client in (0, 1)]
    assert all(3 <= count <= 15 for count in per_client), per_client


def test_non_2xx_fails_with_its_status(docroot):
    async def scenario():
        async with serving(docroot, 'web1') as server:
            traffic = Traffic(SERVER_HOST, server.port, keepalive_clients=1, new_connection_rate=0, path='/missing.html')
            return await run_traffic(traffic, 0.3)

    summary = run(scenario())
    assert summary.ok == 0 and summary.failed > 0
    assert summary.failed_by_cause == {'status_404': summary.failed}


async def odd_server(behaviour: str) -> asyncio.AbstractServer:
    """A broken server: ``silent`` reads the request and never answers; ``hangup`` reads it and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b'\r\n\r\n')
            if behaviour == 'silent':
                await reader.read()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, ODD_HOST, 0)


@pytest.mark.parametrize(('behaviour', 'cause'), [('silent', 'timeout'), ('hangup', 'closed')])
def test_broken_servers_fail_with_their_cause(behaviour, cause):
    async def scenario():
        server = await odd_server(behaviour)
        try:
            port = server.sockets[0].getsockname()[1]
            traffic = Traffic(ODD_HOST, port, keepalive_clients=2, new_connection_rate=0, timeout=0.2)
            return await run_traffic(traffic, 0.5)
        finally:
            server.close()

    summary = run(scenario())
    assert summary.ok == 0 and summary.retried == 0  # fresh connections are never retried
    assert summary.failed > 0 and summary.failed_by_cause == {cause: summary.failed}


def make_record(end: float, outcome: str = OUTCOME_OK, server: str | None = 'web1', cause: str | None = None) -> Record:
    return Record(start=end - 0.01, end=end, client=0, kind=KIND_KEEPALIVE, outcome=outcome, cause=cause, server=server)


def test_summary_queries():
    records = [
        make_record(100.0),
        make_record(101.0, OUTCOME_FAILED, None, 'refused'),
        make_record(102.0, OUTCOME_RETRIED, 'web2'),
        make_record(103.0, OUTCOME_FAILED, None, 'timeout'),
        make_record(104.0, server='web2'),
        make_record(105.0, OUTCOME_FAILED, None, 'refused'),
    ]
    summary = Summary(records, started=99.5, stopped=105.5)
    assert (summary.ok, summary.retried, summary.failed) == (2, 1, 3)
    assert summary.failed_by_cause == {'refused': 2, 'timeout': 1}
    assert summary.by_server == {'web1': 1, 'web2': 2}
    assert summary.requests_per_second == pytest.approx(1.0)
    assert summary.failures_between(100.5, 103.0) == [records[1], records[3]]
    assert summary.failures_between(103.5, 104.5) == []
    assert summary.served_by('web2', 101.5, 103.0) == [records[2]]
    assert summary.served_by('web2') == [records[2], records[4]]
    assert summary.served_by('web1', 100.5, None) == []
    assert summary.as_dict()['failed_by_cause'] == {'refused': 2, 'timeout': 1}


@contextlib.contextmanager
def server_in_thread(docroot: pathlib.Path, name: str, access_log: pathlib.Path | None = None) -> t.Iterator[RealServer]:
    """A RealServer on its own loop and thread, as a web server would be beside a blocking test."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = RealServer(name, THREAD_HOST, 0, str(docroot), access_log=None if access_log is None else str(access_log))
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(graceful=False), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_traffic_thread_stops_cleanly(docroot):
    with server_in_thread(docroot, 'web3') as server:
        with TrafficThread(THREAD_HOST, server.port, keepalive_clients=2, new_connection_rate=5) as traffic:
            traffic.wait_every_client_answered(timeout=5, servers=['web3'])
            running = traffic.snapshot()
            summary = traffic.stop()
        assert not traffic._thread.is_alive()
        assert traffic.stop() is summary  # stopping again hands back the same summary
        with TrafficThread(THREAD_HOST, server.port, keepalive_clients=1, new_connection_rate=0) as unattended:
            unattended.wait_every_client_answered(timeout=5)
        assert not unattended._thread.is_alive() and unattended.summary is not None  # __exit__ stopped it
    assert {record.client for record in running.requests if record.kind == KIND_KEEPALIVE and record.outcome == OUTCOME_OK} == {0, 1}
    assert summary.ok >= running.ok and summary.failed == 0
    assert summary.by_server == {'web3': summary.ok}
    assert unattended.summary.ok > 0


def test_waiting_for_every_client_names_what_never_answered(docroot):
    with server_in_thread(docroot, 'web5') as server:
        with TrafficThread(THREAD_HOST, server.port, keepalive_clients=2, new_connection_rate=0) as traffic:
            later = time.time() + 3600
            with pytest.raises(NotAnswered, match=r"keep-alive client\(s\) \[0, 1\].*server\(s\) \['web9'\]"):
                traffic.wait_every_client_answered(timeout=0.3, since=later, servers=['web9'])
            # Answers after a moment that has passed: every client has one, soon.
            assert traffic.wait_every_client_answered(timeout=5, since=time.time(), servers=['web5']) < 5


@pytest.mark.parametrize('how', ['duration', 'sigterm'])
def test_cli_writes_summary_json(docroot, tmp_path, how):
    report, access_log = tmp_path / 'traffic.json', tmp_path / 'access.log'
    env = dict(os.environ, PYTHONPATH=os.environ['ANSIBLE_COLLECTIONS_PATH'])
    with server_in_thread(docroot, 'web4', access_log) as server:
        argv = [sys.executable, '-m', MODULE, '--target', f'{THREAD_HOST}:{server.port}', '--keepalive', '2', '--rate', '4',
                '--json', str(report)] + (['--duration', '0.5'] if how == 'duration' else [])
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            if how == 'sigterm':
                # Its requests reach the server only once its traffic runs, and it catches SIGTERM from before then.
                wait_for('the command line traffic served', lambda: access_log.exists() and len(access_log.read_text().splitlines()) >= 2,
                         timeout=10)
                proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert out.startswith('requests=') and 'failed=0' in out
    data = json.loads(report.read_text())
    assert data['ok'] > 0 and data['failed'] == 0 and data['by_server'] == {'web4': data['ok']}
    assert len(data['requests']) == data['total'] == data['ok']
    assert {record['kind'] for record in data['requests']} == {KIND_KEEPALIVE, KIND_NEW}
