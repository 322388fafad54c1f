"""The emulator on an event loop in a thread of its own: what the tests and benchmarks run beside a playbook.

Test-only. ``LoopThread`` hosts servers (the emulator, embedded real servers) for synchronous
code; ``EmulatorThread`` starts an emulator with its control API on one, as the daemon would.
"""

from __future__ import annotations

import asyncio
import threading
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import EmulatorConfig, parse_config
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.core import Emulator
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.daemon import with_control_api


def is_mark(event: t.Mapping[str, t.Any]) -> bool:
    """Whether an emulator health event marked a member down or up. Suspect is still bound: a member back from
    Suspect was never marked down, and is not marked up either (HAProxy logs neither)."""
    return event['kind'] == 'health' and (event['to'] == 'down' or (event['to'] == 'up' and event['from'] != 'suspect'))


class LoopThread:
    """An event loop in a daemon thread, so synchronous code (tests, rehearsals) can host servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name='l4vip-loop', daemon=True)
        self._thread.start()

    def run(self, coroutine: t.Coroutine[t.Any, t.Any, t.Any], timeout: float = 10.0) -> t.Any:
        """Run a coroutine on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def call(self, function: t.Callable[[], t.Any], timeout: float = 5.0) -> t.Any:
        """Run a function on the loop (the servers' state is not thread-safe) and return its result."""
        async def run() -> t.Any:
            return function()
        return self.run(run(), timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError(f'{self._thread.name}: the event loop did not stop within 10s (a callback blocks it)')
        self.loop.close()


class EmulatorThread:
    """An Emulator on a LoopThread (its own, or one shared with other servers); a context manager."""

    def __init__(self, config: EmulatorConfig | t.Mapping[str, t.Any], loop_thread: LoopThread | None = None) -> None:
        self.config = config if isinstance(config, EmulatorConfig) else parse_config(config)
        self.emulator = with_control_api(self.config)
        self._owns_loop = loop_thread is None
        self.loop_thread = loop_thread or LoopThread()
        self._running = False

    def __enter__(self) -> Emulator:
        self.start()
        return self.emulator

    def __exit__(self, *exc_info: t.Any) -> None:
        self.stop()

    def start(self) -> Emulator:
        try:
            self.loop_thread.run(self.emulator.start())
        except BaseException:
            self._close_loop()
            raise
        self._running = True
        return self.emulator

    def run(self, coroutine: t.Coroutine[t.Any, t.Any, t.Any], timeout: float = 10.0) -> t.Any:
        return self.loop_thread.run(coroutine, timeout)

    def call(self, function: t.Callable[[], t.Any], timeout: float = 5.0) -> t.Any:
        return self.loop_thread.call(function, timeout)

    def stop(self) -> None:
        try:
            if self._running:
                self._running = False
                self.loop_thread.run(self.emulator.stop())
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        if self._owns_loop:
            self.loop_thread.close()
