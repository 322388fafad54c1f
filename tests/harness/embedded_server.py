"""The embedded web server on an event loop of the test's own, for unit tests of it and of the traffic generator."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import typing as t

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import RealServer


def run(coroutine: t.Awaitable[t.Any], timeout: float = 15.0) -> t.Any:
    """Every scenario is bounded: a hang fails the test instead of stalling the suite."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def make_docroot(root: pathlib.Path) -> pathlib.Path:
    """A docroot serving version 1.0, its health check in service."""
    root.mkdir()
    (root / 'VERSION').write_text('1.0\n')
    (root / 'health_check.html').write_text('OK\n')
    return root


@contextlib.asynccontextmanager
async def serving(docroot: pathlib.Path, name: str, host: str, **options: t.Any) -> t.AsyncIterator[RealServer]:
    """A server on ``host`` and a port of the kernel's choice, stopped (not gracefully) on leaving."""
    server = RealServer(name, host, 0, str(docroot), **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(graceful=False)
