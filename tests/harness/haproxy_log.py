"""HAProxy's own word on when it marked a server down or up: its log, received on a unix datagram socket.

Test and benchmark only. HAProxy logs every server state change ("Server web/web1 is DOWN,
reason: ...") to the ``log`` target of its ``global`` section; pointed at this receiver
(``HAProxy(..., log_socket=receiver.path)``), each message is stamped on arrival. On loopback
that is within a millisecond of the transition, and nobody polls the runtime API for it.
"""

from __future__ import annotations

import pathlib
import re
import select
import socket
import threading
import time
import typing as t

STATE_CHANGE = re.compile(r'Server (?P<backend>[^/\s]+)/(?P<server>\S+) is (?:going )?(?P<state>DOWN|UP)\b')


class Transition(t.NamedTuple):
    member: str
    to: str  # 'down' or 'up'
    at: float  # epoch seconds, on arrival


class HAProxyLogReceiver:
    """Between ``open()`` and ``close()``, collects HAProxy's transitions."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.transitions: list[Transition] = []
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name='haproxy-log', daemon=True)

    def open(self) -> HAProxyLogReceiver:
        self.path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        self.path.unlink(missing_ok=True)
        if self._thread.is_alive():
            raise RuntimeError(f'{self._thread.name}: the receiver did not stop within 2s')

    def _receive(self) -> None:
        while not self._stop.is_set():
            # Short select timeouts: the thread notices the end of the block within 0.1 s.
            ready, _w, _x = select.select([self._sock], [], [], 0.1)
            if not ready:
                continue
            data = self._sock.recv(65536)
            at = time.time()
            match = STATE_CHANGE.search(data.decode('utf-8', errors='replace'))
            if match:
                self.transitions.append(Transition(match['server'], match['state'].lower(), at))
