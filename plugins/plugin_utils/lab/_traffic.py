# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The traffic generator: client traffic through a VIP, every request recorded.

Internal to the l4vip.rollout collection; not a public API.

Two kinds of clients run side by side: ``keepalive_clients`` that each hold one HTTP/1.1
keep-alive connection (the sessions an L4 keeps pinned to a member) and a steady stream of
fresh one-request connections (the ones the L4 balances anew). A reused keep-alive
connection that closes before any byte of the response arrived is retried once on a new
connection, as browsers and HTTP libraries do: a server that closed an idle connection with
FIN costs the user nothing, and shows up as ``retried``. Everything else that goes wrong is
``failed``, with a cause.

As a probe of a real VIP (URLs, http or https with the certificate verified, an optional
``Host`` header), it runs for as long as the process given with ``--while-pid`` lives.

Command line::

    python -m ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic \\
        --target 127.0.0.1:8080 [--keepalive 16] [--rate 4] [--interval 0] [--duration S] [--json PATH]
    python -m ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic \\
        --url https://vip.example.com/ [--url ...] [--host-header NAME] [--ca-path FILE | --insecure] \\
        [--while-pid PID] --source probe --json PATH
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import math
import os
import signal
import sys
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError, seconds
from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._http_client import (
    CAUSE_CLOSED,
    CAUSE_RESET,
    Connection,
    RequestFailed,
    Response,
    Target,
    target_from_url,
    tls_context,
)

KIND_KEEPALIVE = 'keepalive'
KIND_NEW = 'new'

OUTCOME_OK = 'ok'
OUTCOME_RETRIED = 'retried'
OUTCOME_FAILED = 'failed'

RETRYABLE_CAUSES = (CAUSE_CLOSED, CAUSE_RESET)
FAILURE_BACKOFF = 0.05  # after a failed request, so that a dead VIP does not make a client spin
STOP_GRACE = 0.5  # on top of the request timeout, for requests in flight at stop()
WHILE_PID_POLL = 0.5  # how often --while-pid is looked at


@dataclasses.dataclass
class Record:
    """One client request, from the first attempt to the final answer (or failure)."""

    start: float
    end: float
    client: int
    kind: str
    outcome: str
    cause: str | None = None
    server: str | None = None
    version: str | None = None
    target: str | None = None  # the URL, when the traffic goes to URLs (the probe)

    def as_dict(self) -> dict[str, t.Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Summary:
    """All the requests of one run, and the counts a report needs."""

    requests: list[Record]
    started: float
    stopped: float
    source: str = 'traffic'  # or 'probe': what sent the requests
    targets: list[str] = dataclasses.field(default_factory=list)

    def _count(self, outcome: str) -> int:
        return sum(1 for record in self.requests if record.outcome == outcome)

    @property
    def ok(self) -> int:
        return self._count(OUTCOME_OK)

    @property
    def retried(self) -> int:
        return self._count(OUTCOME_RETRIED)

    @property
    def failed(self) -> int:
        return self._count(OUTCOME_FAILED)

    @property
    def failed_by_cause(self) -> dict[str, int]:
        return dict(collections.Counter(str(record.cause) for record in self.requests if record.outcome == OUTCOME_FAILED))

    @property
    def by_server(self) -> dict[str, int]:
        return dict(collections.Counter(record.server for record in self.requests if record.server is not None))

    @property
    def duration(self) -> float:
        return max(0.0, self.stopped - self.started)

    @property
    def requests_per_second(self) -> float:
        return len(self.requests) / self.duration if self.duration > 0 else 0.0

    def failures_between(self, t0: float, t1: float) -> list[Record]:
        """Failed requests that ended (failed) within ``[t0, t1]``."""
        return [record for record in self.requests if record.outcome == OUTCOME_FAILED and t0 <= record.end <= t1]

    def served_by(self, server: str, t0: float | None = None, t1: float | None = None) -> list[Record]:
        """Requests ``server`` answered within ``[t0, t1]`` (by their end time; an open end when None)."""
        low = float('-inf') if t0 is None else t0
        high = float('inf') if t1 is None else t1
        return [record for record in self.requests if record.server == server and low <= record.end <= high]

    def as_dict(self, records: bool = False) -> dict[str, t.Any]:
        result: dict[str, t.Any] = {
            'source': self.source,
            'targets': self.targets,
            'started': self.started,
            'stopped': self.stopped,
            'duration': round(self.duration, 3),
            'total': len(self.requests),
            'ok': self.ok,
            'retried': self.retried,
            'failed': self.failed,
            'failed_by_cause': self.failed_by_cause,
            'by_server': self.by_server,
            'requests_per_second': round(self.requests_per_second, 1),
        }
        if records:
            result['requests'] = [record.as_dict() for record in self.requests]
        return result

    def line(self) -> str:
        """A one-line summary for people."""
        return (f'requests={len(self.requests)} ok={self.ok} retried={self.retried} failed={self.failed} '
                f'rps={self.requests_per_second:.0f} by_server={json.dumps(self.by_server, sort_keys=True)} '
                f'failed_by_cause={json.dumps(self.failed_by_cause, sort_keys=True)}')


class Traffic:
    """Keep-alive clients plus a stream of fresh connections against ``host:port``, every request recorded."""

    def __init__(self, host: str | None, port: int | None, keepalive_clients: int = 16, new_connection_rate: float = 4.0,
                 request_interval: float = 0.0, path: str = '/', timeout: float = 2.0, targets: t.Sequence[Target] = (),
                 source: str = 'traffic') -> None:
        """Traffic to ``host:port`` (``path``), or to ``targets`` in turn (client i to target i modulo their count)."""
        if keepalive_clients < 0:
            raise OptionError('keepalive_clients', keepalive_clients, 'expected 0 or more')
        if isinstance(new_connection_rate, bool) or not isinstance(new_connection_rate, (int, float)) or not 0 <= new_connection_rate < math.inf:
            raise OptionError('new_connection_rate', new_connection_rate, 'expected a number of connections a second, 0 or more')
        seconds('request_interval', request_interval, allow_zero=True)
        seconds('timeout', timeout)
        self.targets = list(targets) or [Target(str(host), int(t.cast(int, port)), path)]
        self.host = self.targets[0].host
        self.port = self.targets[0].port
        self.source = source
        self.keepalive_clients = keepalive_clients
        self.new_connection_rate = new_connection_rate
        self.request_interval = request_interval
        self.path = path
        self.timeout = timeout
        self.records: list[Record] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []  # a client that crashed: a bug, reported by stop()
        self._stopping = False
        self._started: float | None = None
        self._stopped: float | None = None
        self._next_client = keepalive_clients  # fresh-connection clients are numbered after the keep-alive ones
        self._requests = [(target.request(close=False), target.request(close=True)) for target in self.targets]

    def _target(self, client: int) -> int:
        return client % len(self.targets)

    @property
    def running(self) -> bool:
        return self._started is not None and self._stopped is None

    async def start(self) -> None:
        if self._started is not None:
            raise RuntimeError('traffic already started')
        self._started = time.time()
        for client in range(self.keepalive_clients):
            self._spawn(self._keepalive_client(client))
        if self.new_connection_rate > 0:
            self._spawn(self._new_connections())

    async def stop(self) -> Summary:
        """Let requests in flight finish (within the request timeout), then stop every client."""
        if self._started is None:
            raise RuntimeError('traffic not started')
        if self._stopped is None:
            self._stopping = True
            pending = set(self._tasks)
            if pending:
                pending = (await asyncio.wait(pending, timeout=self.timeout + STOP_GRACE))[1]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=STOP_GRACE)
            self._stopped = time.time()
        if self._errors:
            raise RuntimeError(f'{len(self._errors)} traffic client(s) crashed: {self._errors[0]!r}') from self._errors[0]
        return self.snapshot()

    def snapshot(self) -> Summary:
        """The requests recorded so far (safe to call from another thread)."""
        started = self._started if self._started is not None else time.time()
        return Summary(list(self.records), started, self._stopped or time.time(), self.source,
                       [target.url for target in self.targets if target.url])

    def _spawn(self, coroutine: t.Coroutine[t.Any, t.Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._errors.append(t.cast(BaseException, task.exception()))

    def _record(self, start: float, client: int, kind: str, outcome: str, cause: str | None = None,
                response: Response | None = None) -> None:
        self.records.append(Record(start, time.time(), client, kind, outcome, cause,
                                   response.server if response else None, response.version if response else None,
                                   self.targets[self._target(client)].url))

    async def _keepalive_client(self, client: int) -> None:
        conn: Connection | None = None
        try:
            while not self._stopping:
                conn = await self._keepalive_request(client, conn)
                if self.request_interval > 0 and not self._stopping:
                    await asyncio.sleep(self.request_interval)
        finally:
            if conn is not None:
                conn.close()

    async def _keepalive_request(self, client: int, conn: Connection | None) -> Connection | None:
        """One request on the client's connection; returns the connection to use next (None: reconnect)."""
        start = time.time()
        try:
            conn, response, outcome = await self._exchange_keepalive(client, conn)
        except RequestFailed as failure:
            self._record(start, client, KIND_KEEPALIVE, OUTCOME_FAILED, failure.cause)
            await asyncio.sleep(FAILURE_BACKOFF)
            return None
        answered = self._settle(start, client, KIND_KEEPALIVE, outcome, response)
        if answered and not response.close:
            return conn
        conn.close()
        if not answered:
            await asyncio.sleep(FAILURE_BACKOFF)
        return None

    async def _exchange_keepalive(self, client: int, conn: Connection | None) -> tuple[Connection, Response, str]:
        """Send the request on ``conn`` (a new connection when None), retrying once where a client would."""
        target = self.targets[self._target(client)]
        request = self._requests[self._target(client)][0]
        try:
            if conn is None:
                conn = await Connection.open(target, self.timeout)
            return conn, await conn.exchange(request, self.timeout), OUTCOME_OK
        except RequestFailed as failure:
            if conn is not None:
                conn.close()
            if conn is None or not conn.reused or failure.answered or failure.cause not in RETRYABLE_CAUSES:
                raise
        # The server closed this idle connection just as we reused it: send the request again, once.
        conn = await Connection.open(target, self.timeout)
        try:
            return conn, await conn.exchange(request, self.timeout), OUTCOME_RETRIED
        except RequestFailed:
            conn.close()
            raise

    def _settle(self, start: float, client: int, kind: str, outcome: str, response: Response) -> bool:
        """Record an answered request; False when its status makes it a failure."""
        if 200 <= response.status < 300:
            self._record(start, client, kind, outcome, response=response)
            return True
        self._record(start, client, kind, OUTCOME_FAILED, f'status_{response.status}')
        return False

    async def _new_connections(self) -> None:
        """Open ``new_connection_rate`` fresh connections a second, each for one request, on a fixed schedule."""
        loop = asyncio.get_running_loop()
        period = 1.0 / self.new_connection_rate
        due = loop.time()
        while not self._stopping:
            self._spawn(self._new_connection_request(self._next_client))
            self._next_client += 1
            due += period
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def _new_connection_request(self, client: int) -> None:
        start = time.time()
        conn: Connection | None = None
        target = self._target(client)
        try:
            conn = await Connection.open(self.targets[target], self.timeout)
            response = await conn.exchange(self._requests[target][1], self.timeout)
        except RequestFailed as failure:
            self._record(start, client, KIND_NEW, OUTCOME_FAILED, failure.cause)
            return
        finally:
            if conn is not None:
                conn.close()
        self._settle(start, client, KIND_NEW, OUTCOME_OK, response)


def parse_target(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(':')
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f'expected host:port, got {value!r}')
    return host.strip('[]'), int(port)


def _arguments(argv: t.Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Traffic generator of l4vip.rollout: keep-alive and fresh clients.')
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument('--target', type=parse_target, help='host:port of the VIP')
    where.add_argument('--url', action='append', help='an http:// or https:// URL (repeat for several; clients take them in turn)')
    parser.add_argument('--host-header', help='the Host header (and TLS name) to send with --url')
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument('--ca-path', help='the certificate authorities to verify https URLs with (default: the system\'s)')
    tls.add_argument('--insecure', action='store_true', help='do not verify https certificates')
    parser.add_argument('--keepalive', type=int, default=16, help='keep-alive clients')
    parser.add_argument('--rate', type=float, default=4.0, help='fresh connections per second')
    parser.add_argument('--interval', type=float, default=0.0, help='pause between a keep-alive client\'s requests')
    parser.add_argument('--path', default='/')
    parser.add_argument('--timeout', type=float, default=2.0, help='per connect and per response')
    parser.add_argument('--duration', type=float, help='seconds to run (default: until SIGTERM or SIGINT)')
    parser.add_argument('--while-pid', type=int, help='stop when this process is gone (the ansible-playbook that started us)')
    parser.add_argument('--source', default='traffic', choices=('traffic', 'probe'), help='what the JSON says sent the requests')
    parser.add_argument('--json', help='write the summary with every request here')
    parser.add_argument('--records', choices=('all', 'failed'), default='all',
                        help='which requests the JSON lists one by one (a long probe keeps only its failures)')
    parser.add_argument('--pidfile', help='write the process id here while running (for a SIGTERM from whoever started us)')
    args = parser.parse_args(argv)
    if args.url:
        context = tls_context(verify=not args.insecure, ca_path=args.ca_path)
        try:
            args.targets = [target_from_url(url, args.host_header, context) for url in args.url]
        except ValueError as error:
            parser.error(f'--url: {error}')
    else:
        args.targets = ()
    return args


async def _until_gone(pid: int, stop: asyncio.Event) -> None:
    while _process.alive(pid, reap=False):
        await asyncio.sleep(WHILE_PID_POLL)
    stop.set()


async def _run(args: argparse.Namespace) -> Summary:
    host, port = args.target or (None, None)
    traffic = Traffic(host, port, keepalive_clients=args.keepalive, new_connection_rate=args.rate,
                      request_interval=args.interval, path=args.path, timeout=args.timeout, targets=args.targets,
                      source=args.source)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watcher = loop.create_task(_until_gone(args.while_pid, stop)) if args.while_pid else None
    await traffic.start()
    try:
        await asyncio.wait_for(stop.wait(), args.duration)
    except asyncio.TimeoutError:
        pass  # the duration is up
    if watcher is not None:
        watcher.cancel()
    return await traffic.stop()


def main(argv: t.Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    if args.pidfile:
        with open(args.pidfile, 'w', encoding='ascii') as handle:
            handle.write(f'{os.getpid()}\n')
    try:
        summary = asyncio.run(_run(args))
        if args.json:
            data = summary.as_dict(records=True)
            if args.records == 'failed':
                data['requests'] = [record for record in data['requests'] if record['outcome'] == OUTCOME_FAILED]
            with open(args.json, 'w', encoding='utf-8') as handle:
                json.dump(data, handle, indent=1)
                handle.write('\n')
    finally:
        # Gone only once the summary is written: whoever stops us waits for this.
        if args.pidfile and os.path.exists(args.pidfile):
            os.unlink(args.pidfile)
    sys.stdout.write(f'{summary.line()}\n')
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())  # not sys.exit: ansible-test's pylint bans it (and print) in module_utils
