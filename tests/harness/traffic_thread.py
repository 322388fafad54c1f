"""The traffic generator in a thread of its own: what the tests and benchmarks run beside a playbook."""

from __future__ import annotations

import asyncio
import threading
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic import KIND_KEEPALIVE, OUTCOME_FAILED, STOP_GRACE, Record, Summary, Traffic

POLL = 0.01


class NotAnswered(AssertionError):
    """A wait of TrafficThread's ran out: the message names who had no answer and what was last seen of them."""


class TrafficThread:
    """Traffic on its own event loop in a daemon thread, for tests that block on something else meanwhile.

    Use as a context manager; ``stop()`` returns the Summary, and leaving the block always stops.
    """

    def __init__(self, host: str, port: int, start_timeout: float = 5.0, **options: t.Any) -> None:
        self.traffic = Traffic(host, port, **options)
        self.summary: Summary | None = None
        self._start_timeout = start_timeout
        self._thread = threading.Thread(target=self._run, name=f'l4vip-traffic-{host}:{port}', daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> TrafficThread:
        self.start()
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        if self._thread.is_alive():
            self.stop()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise RuntimeError(f'traffic thread did not start within {self._start_timeout} s')
        if self._error is not None:
            raise RuntimeError(f'traffic thread failed to start: {self._error}') from self._error

    def snapshot(self) -> Summary:
        return self.traffic.snapshot()

    def wait_every_client_answered(self, timeout: float = 5.0, since: float | None = None, servers: t.Iterable[str] = ()) -> float:
        """Wait until every keep-alive client (0 .. keepalive_clients - 1) has had a request answered (ok or retried),
        sent at or after ``since`` (epoch seconds) when it is given, and every one of ``servers`` has answered one
        (any client's); return the seconds it took.

        The events the tests wait for around what they do: before, every keep-alive client holds a session
        through the VIP; after, the traffic has gone on through the VIP (every member back among those that
        answer). Raises NotAnswered after ``timeout``, naming who had no answer and the last record of each.
        """
        begun = time.monotonic()
        low = float('-inf') if since is None else since
        clients = set(range(self.traffic.keepalive_clients))
        waiting_servers = set(servers)
        last: dict[int, Record] = {}  # per keep-alive client still waiting: its last record
        scanned = 0
        while True:
            records = self.snapshot().requests  # a copy: the traffic thread appends meanwhile
            for record in records[scanned:]:
                if record.start < low:
                    continue
                answered = record.outcome != OUTCOME_FAILED
                if record.kind == KIND_KEEPALIVE and record.client in clients:
                    if answered:
                        clients.discard(record.client)
                        last.pop(record.client, None)
                    else:
                        last[record.client] = record
                if answered:
                    waiting_servers.discard(t.cast(str, record.server))
            scanned = len(records)
            elapsed = time.monotonic() - begun
            if not clients and not waiting_servers:
                return elapsed
            if elapsed >= timeout or not self._thread.is_alive():
                since_text = '' if since is None else f' since {since:.3f}'
                raise NotAnswered(
                    f'traffic to {self.traffic.host}:{self.traffic.port}: no answer{since_text} within {timeout:g}s '
                    f'for keep-alive client(s) {sorted(clients)} (their last records: {[last.get(c) for c in sorted(clients)]}) '
                    f'and from server(s) {sorted(waiting_servers)}; {len(records)} requests so far'
                    + ('' if self._thread.is_alive() else '; the traffic thread has stopped'))
            time.sleep(POLL)

    def stop(self, timeout: float | None = None) -> Summary:
        if self.summary is None and self._loop is not None and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)
        self._thread.join(timeout if timeout is not None else self.traffic.timeout + 2 * STOP_GRACE + 5.0)
        if self.summary is None:
            raise RuntimeError('traffic thread did not stop in time')
        return self.summary

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        try:
            await self.traffic.start()
        except Exception as exc:
            self._error = exc
            return
        finally:
            self._ready.set()
        await self._stop_requested.wait()
        self.summary = await self.traffic.stop()
