"""The traffic generator in a thread of its own: what the tests and benchmarks run beside a playbook."""

from __future__ import annotations

import asyncio
import threading
import typing as t

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic import STOP_GRACE, Summary, Traffic


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
