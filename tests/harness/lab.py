"""An emulated VIP with embedded real servers, all on one event loop in a thread.

Tests drive it synchronously: plain sockets and http.client on the client side, the control
API over HTTP for what the L4 sees, and ``lab.run``/``lab.call`` for the servers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import pathlib
import socket
import time
import typing as t
import urllib.error
import urllib.request

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import RealServer
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import poll_until
from ansible_collections.l4vip.rollout.tests.harness.emulator_thread import EmulatorThread, LoopThread, is_mark
from ansible_collections.l4vip.rollout.tests.harness.real_parts import disabled_path

VIP_ADDRESS = '127.0.0.60'
FAST_PROFILE = {'interval': 0.2, 'retry': 1, 'rise': 1, 'check_timeout': 0.1}


class WaitTimeout(AssertionError):
    pass


def wait_for(what: str, probe: t.Callable[[], t.Any], timeout: float, poll: float = 0.005) -> t.Any:
    """Poll until ``probe`` returns something truthy; on timeout say what was last seen."""
    polled = poll_until(probe, bool, timeout, poll)
    if not polled.reached:
        raise WaitTimeout(f'{what}: not within {timeout}s; last saw {polled.last!r}')
    return polled.last


class Lab:
    """One VIP (``web``) in front of ``count`` embedded real servers named web1..webN."""

    def __init__(self, tmp_path: pathlib.Path, count: int = 2, profile: dict[str, t.Any] | None = None, **config: t.Any) -> None:
        self.tmp_path = tmp_path
        self.profile = dict(FAST_PROFILE, **(profile or {}))
        self.servers: dict[str, RealServer] = {}
        self.docroots: dict[str, pathlib.Path] = {}
        self.count = count
        self.extra_config = config
        self.thread: EmulatorThread | None = None
        self.loop_thread: LoopThread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        self.close()

    def _start(self) -> None:
        # The servers start first: the emulator's configuration needs their ports.
        self.loop_thread = LoopThread()
        for i in range(1, self.count + 1):
            name = f'web{i}'
            docroot = self.tmp_path / name
            docroot.mkdir()
            (docroot / 'health_check.html').write_text('ok\n')
            (docroot / 'VERSION').write_text('1\n')
            self.docroots[name] = docroot
            self.servers[name] = RealServer(name, f'127.0.0.{60 + i}', 0, str(docroot))
            self.loop_thread.run(self.servers[name].start())
        members = [{'name': name, 'address': f'{s.host}:{s.port}'} for name, s in self.servers.items()]
        config = {'vips': [{'name': 'web', 'listen': f'{VIP_ADDRESS}:0', 'members': members}], 'profile': self.profile, 'seed': 1}
        config.update(self.extra_config)
        self.thread = EmulatorThread(config, self.loop_thread)
        self.thread.start()

    def close(self) -> None:
        if self.loop_thread is None:
            return
        try:
            if self.thread is not None:
                self.thread.stop()
            for server in self.servers.values():
                with contextlib.suppress(Exception):
                    self.loop_thread.run(server.stop(graceful=False, timeout=1.0))
        finally:
            self.loop_thread.close()
            self.loop_thread = None
            self.thread = None

    # -- helpers -------------------------------------------------------------------------

    @property
    def emulator(self) -> t.Any:
        return self.thread.emulator

    @property
    def vip(self) -> tuple[str, int]:
        endpoint = self.emulator.vip_endpoint('web')
        return endpoint.host, endpoint.port

    def run(self, coroutine: t.Any, timeout: float = 10.0) -> t.Any:
        return self.loop_thread.run(coroutine, timeout)

    def call(self, function: t.Callable[[], t.Any]) -> t.Any:
        return self.loop_thread.call(function)

    def api(self, path: str, method: str = 'GET', body: t.Any = None) -> t.Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.emulator.control_url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            return {'status': error.code, **json.load(error)}

    def member(self, name: str) -> dict[str, t.Any]:
        return self.api(f'/api/vips/web/members/{name}')

    def events(self, member: str | None = None, kind: str = 'health') -> list[dict[str, t.Any]]:
        return [e for e in self.api('/api/events') if e['kind'] == kind and (member is None or e['member'] == member)]

    def marks(self, member: str) -> list[str]:
        """Each time the emulator marked ``member`` down or up ('down', 'up'), oldest first."""
        return [e['to'] for e in self.events(member) if is_mark(e)]

    def wait_all_bound(self, timeout: float = 3.0) -> None:
        wait_for('all members bound', lambda: all(m['bound'] for m in self.api('/api/vips/web')['members']), timeout)

    def wait_state(self, name: str, state: str, timeout: float = 3.0) -> dict[str, t.Any]:
        def reached() -> dict[str, t.Any] | None:
            member = self.member(name)
            return member if member['state'] == state else None
        return wait_for(f'{name} {state}', reached, timeout)

    def fail_health_check(self, name: str) -> float:
        health_check = self.docroots[name] / 'health_check.html'
        health_check.rename(disabled_path(health_check))
        return time.time()

    def pass_health_check(self, name: str) -> float:
        health_check = self.docroots[name] / 'health_check.html'
        disabled_path(health_check).rename(health_check)
        return time.time()

    def keepalive(self) -> http.client.HTTPConnection:
        host, port = self.vip
        return http.client.HTTPConnection(host, port, timeout=2)

    def open_raw(self) -> socket.socket:
        return socket.create_connection(self.vip, timeout=2)


def get(connection: http.client.HTTPConnection, path: str = '/') -> tuple[int, str | None, bytes]:
    """One request on a (possibly reused) connection: status, which server answered, body."""
    connection.request('GET', path)
    answer = connection.getresponse()
    return answer.status, answer.getheader('X-Served-By'), answer.read()


def raw_get(sock: socket.socket, path: str = '/') -> bytes:
    """Send one keep-alive request and read its whole answer (headers and Content-Length body)."""
    sock.sendall(f'GET {path} HTTP/1.1\r\nHost: vip\r\n\r\n'.encode())
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f'closed after {data!r}')
        data += chunk
    head, _sep, body = data.partition(b'\r\n\r\n')
    length = next(int(line.split(b':')[1]) for line in head.split(b'\r\n') if line.lower().startswith(b'content-length'))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b'\r\n\r\n' + body
