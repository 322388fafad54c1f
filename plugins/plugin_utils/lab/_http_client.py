# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The traffic generator's HTTP/1.1 client: one connection, one request at a time, every way it can fail named.

Internal to the l4vip.rollout collection; not a public API.

Written on asyncio streams rather than an HTTP library so that a failure is told apart by
its cause (refused, reset, closed before any byte, timeout, TLS, a bad answer) and so that a
keep-alive connection knows whether it has carried a response: the generator retries a
reused connection that closed unanswered, as browsers do, and nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import ssl
import urllib.parse

CAUSE_REFUSED = 'refused'
CAUSE_RESET = 'reset'
CAUSE_TIMEOUT = 'timeout'
CAUSE_CLOSED = 'closed'
CAUSE_BAD_RESPONSE = 'bad_response'
CAUSE_TLS = 'tls'  # the TLS handshake failed (a certificate that does not verify, ...)
CAUSE_ERROR = 'error'  # any other socket error (unreachable network, ...)

READ_SIZE = 65536
HEAD_LIMIT = 65536
NO_BODY_STATUSES = (204, 304)  # never carry a body, whatever Content-Length says
USER_AGENT = 'l4vip-traffic'

_VERSION = re.compile(rb'version=(\S+)')


@dataclasses.dataclass(frozen=True)
class Target:
    """Where requests go: an address, a path, the Host header and, for https, the TLS context and name."""

    host: str
    port: int
    path: str = '/'
    host_header: str | None = None
    tls: ssl.SSLContext | None = None
    server_name: str | None = None  # SNI and the name the certificate must carry
    url: str | None = None

    def request(self, close: bool) -> bytes:
        host = self.host_header or (f'[{self.host}]:{self.port}' if ':' in self.host else f'{self.host}:{self.port}')
        head = f'GET {self.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n'
        return f"{head}{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode('latin-1')


def tls_context(verify: bool = True, ca_path: str | None = None) -> ssl.SSLContext:
    """The client TLS context: the system's (or ``ca_path``'s) authorities and the name checked, unless not ``verify``."""
    context = ssl.create_default_context(cafile=ca_path)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def target_from_url(url: str, host_header: str | None = None, context: ssl.SSLContext | None = None) -> Target:
    """A Target for an http or https URL; ValueError names what is wrong with it."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise ValueError(f'expected an http:// or https:// URL with a host, got {url!r}')
    try:
        port = parts.port or (443 if parts.scheme == 'https' else 80)
    except ValueError:
        raise ValueError(f'the port of {url!r} is not a number from 1 to 65535') from None
    path = (parts.path or '/') + (f'?{parts.query}' if parts.query else '')
    tls = (context or tls_context()) if parts.scheme == 'https' else None
    # With a Host header, TLS asks for that name (SNI) and the certificate must carry it, as a browser sent there would.
    name = host_header.split(':', 1)[0] if host_header and not host_header.startswith('[') else parts.hostname
    return Target(parts.hostname, port, path, host_header, tls, name if tls else None, url)


class RequestFailed(Exception):
    """A request attempt failed; ``answered`` tells whether any byte of a response had arrived."""

    def __init__(self, cause: str, answered: bool = False) -> None:
        self.cause = cause
        self.answered = answered
        super().__init__(cause)


@dataclasses.dataclass
class Response:
    status: int
    server: str | None
    version: str | None
    close: bool  # the server will not take another request on this connection


def parse_response_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = head.split(b'\r\n')
    status_line = lines[0].split(b' ', 2)
    if len(status_line) < 2 or not status_line[0].startswith(b'HTTP/') or not status_line[1].isdigit():
        raise RequestFailed(CAUSE_BAD_RESPONSE, answered=True)
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b':')
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(status_line[1]), headers


def body_version(body: bytes) -> str | None:
    match = _VERSION.search(body)
    return match.group(1).decode('latin-1') if match else None


class Connection:
    """One client TCP connection; knows whether it has carried a response (a reused connection)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.responses = 0
        self._received = 0
        self._expired = False

    @classmethod
    async def open(cls, target: Target, timeout: float) -> Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port, ssl=target.tls, server_hostname=target.server_name), timeout)
        except ConnectionRefusedError:
            raise RequestFailed(CAUSE_REFUSED) from None
        except asyncio.TimeoutError:
            raise RequestFailed(CAUSE_TIMEOUT) from None
        except ssl.SSLError:
            raise RequestFailed(CAUSE_TLS) from None
        except OSError as exc:
            raise RequestFailed(cause_of(exc)) from None
        return cls(reader, writer)

    @property
    def reused(self) -> bool:
        return self.responses > 0

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: bytes, timeout: float) -> Response:
        """Send one request and read its response, within ``timeout``."""
        self._received = 0
        # A timer that aborts the transport is much cheaper than wait_for's task per request.
        timer = asyncio.get_running_loop().call_later(timeout, self._expire)
        try:
            self.writer.write(request)
            response = await self._read_response()
        except OSError as exc:
            raise RequestFailed(CAUSE_TIMEOUT if self._expired else cause_of(exc), self._received > 0) from None
        finally:
            timer.cancel()
        self.responses += 1
        return response

    def _expire(self) -> None:
        self._expired = True
        self.writer.transport.abort()

    async def _read(self) -> bytes:
        chunk = await self.reader.read(READ_SIZE)
        if not chunk:
            raise RequestFailed(CAUSE_TIMEOUT if self._expired else CAUSE_CLOSED, self._received > 0)
        self._received += len(chunk)
        return chunk

    async def _read_response(self) -> Response:
        buffer = await self._read()
        while b'\r\n\r\n' not in buffer:
            if len(buffer) > HEAD_LIMIT:
                raise RequestFailed(CAUSE_BAD_RESPONSE, answered=True)
            buffer += await self._read()
        head, sep, body = buffer.partition(b'\r\n\r\n')
        status, headers = parse_response_head(head)
        length = headers.get(b'content-length')
        close = headers.get(b'connection', b'').lower() == b'close'
        if status in NO_BODY_STATUSES:
            body = b''
        elif b'chunked' in headers.get(b'transfer-encoding', b'').lower():
            body = await self._read_chunked(body)
        elif length is None:
            body += await self._read_to_eof()
            close = True
        elif not length.isdigit():
            raise RequestFailed(CAUSE_BAD_RESPONSE, answered=True)
        else:
            while len(body) < int(length):
                body += await self._read()
        server = headers.get(b'x-served-by')
        return Response(status, server.decode('latin-1') if server is not None else None, body_version(body), close)

    async def _read_chunked(self, buffer: bytes) -> bytes:
        """A chunked body (what most dynamic servers send), to its last chunk and the trailer's end."""
        body = b''
        while True:
            while b'\r\n' not in buffer:
                if len(buffer) > HEAD_LIMIT:
                    raise RequestFailed(CAUSE_BAD_RESPONSE, answered=True)
                buffer += await self._read()
            size_line, _sep, buffer = buffer.partition(b'\r\n')
            try:
                size = int(size_line.split(b';', 1)[0].strip(), 16)
            except ValueError:
                raise RequestFailed(CAUSE_BAD_RESPONSE, answered=True) from None
            if size == 0:
                while not (buffer.startswith(b'\r\n') or b'\r\n\r\n' in buffer):
                    buffer += await self._read()
                return body
            while len(buffer) < size + 2:
                buffer += await self._read()
            body, buffer = body + buffer[:size], buffer[size + 2:]

    async def _read_to_eof(self) -> bytes:
        data = await self.reader.read()
        if self._expired:
            raise RequestFailed(CAUSE_TIMEOUT, answered=True)
        return data


def cause_of(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return CAUSE_REFUSED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return CAUSE_RESET
    if isinstance(exc, TimeoutError):
        return CAUSE_TIMEOUT
    return CAUSE_ERROR
