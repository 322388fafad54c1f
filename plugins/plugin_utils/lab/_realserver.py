# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The embedded real server: a small keep-alive HTTP/1.1 web server that stands in for nginx.

Internal to the l4vip.rollout collection; not a public API.

It serves a docroot (``/health_check.html`` among its files), answers ``/`` with its name
and the deployed version, and stops the way nginx's ``quit`` does: the listening socket
closes first, idle keep-alive connections get a FIN at once, requests in flight finish and
then their connections close. That FIN is what lets an L4 clear its session table entries,
so rehearsals and tests need no nginx to show it.

Command line::

    python -m ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver \\
        --name web1 --listen 127.0.0.11:8080 --docroot DIR [--access-log PATH] [--pidfile PATH] \\
        [--daemon [--log PATH]]
    python -m ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver --stop --pidfile PATH

SIGTERM and SIGQUIT stop gracefully, SIGINT at once. ``--daemon`` detaches (double fork,
setsid) and returns 0 only once the server listens; ``--stop`` sends SIGTERM to the pidfile's
server and returns once it is gone (0 also when none runs), so role argv commands can
stop and start it like a service.

Longer than 400 lines on purpose: the server and its command line (daemon mode, pidfile, stop)
are one file because ``python -m`` of this module is the command the rehearsal, molecule
scenarios and users' own labs run; the HTTP parts are small functions tested one by one.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import email.utils
import http
import mimetypes
import os
import select
import signal
import sys
import time
import typing as t
import urllib.parse

from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError, seconds

ROOT_PATH = '/'
SLOW_PATH = '/slow'
SLOW_MAX_SECONDS = 60.0
SLOW_STEP_SECONDS = 0.1  # one body byte per step: the session stays busy for the whole span
VERSION_FILE = 'VERSION'
UNKNOWN_VERSION = 'unknown'
METHODS = ('GET', 'HEAD')
HTTP_VERSIONS = ('HTTP/1.0', 'HTTP/1.1')
HEAD_LIMIT = 64 * 1024
BODY_LIMIT = 1024 * 1024
FORCED_CLOSE_WAIT = 1.0  # after cancelling handlers, how long their connections may take to close

_MONTHS = ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec')


class BadRequest(Exception):
    """The request cannot be served; answered with ``status`` and a closed connection."""

    def __init__(self, status: int = 400, reason: str = 'bad request') -> None:
        self.status = status
        super().__init__(reason)


@dataclasses.dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return self.target.partition('?')[0]

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.target.partition('?')[2])

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when asked to keep it."""
        tokens = {token.strip().lower() for token in self.headers.get('connection', '').split(',')}
        if self.version == 'HTTP/1.0':
            return 'keep-alive' in tokens
        return 'close' not in tokens


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b''
    content_type: str = 'text/plain'
    slow_seconds: float | None = None  # send the body over this many seconds instead of at once


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (without the blank line that ends them)."""
    lines = head.decode('latin-1').split('\r\n')
    while lines and not lines[0]:
        lines.pop(0)  # RFC 9112: a server ignores empty lines before the request line
    parts = lines[0].split(' ') if lines else []
    if len(parts) != 3 or parts[2] not in HTTP_VERSIONS or not parts[1].startswith('/'):
        raise BadRequest()
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(':')
        if not sep or not name or name != name.strip():
            raise BadRequest()
        headers[name.lower()] = value.strip()
    return Request(method=parts[0], target=parts[1], version=parts[2], headers=headers)


def docroot_file(docroot: str, path: str) -> str:
    """Map a URL path to a file under ``docroot``; any ``..`` segment is refused, never resolved."""
    try:
        decoded = urllib.parse.unquote(path, errors='strict')
    except UnicodeDecodeError:
        raise BadRequest() from None
    segments = [segment for segment in decoded.split('/') if segment not in ('', '.')]
    if '..' in segments or '\x00' in decoded or '\\' in decoded:
        raise BadRequest()
    return os.path.join(docroot, *segments)


def read_version(docroot: str) -> str:
    """The deployed version, read at each request because a deploy rewrites the file."""
    try:
        with open(os.path.join(docroot, VERSION_FILE), encoding='utf-8', errors='replace') as handle:
            return handle.read().strip() or UNKNOWN_VERSION
    except OSError:
        return UNKNOWN_VERSION


def time_local(now: float) -> str:
    """nginx's ``$time_local``: English month names whatever the locale, numeric UTC offset."""
    stamp = datetime.datetime.fromtimestamp(now).astimezone()
    return f'{stamp.day:02d}/{_MONTHS[stamp.month - 1]}/{stamp.year}:{stamp:%H:%M:%S %z}'


def log_escape(value: str) -> str:
    """Escape like nginx's log module: quotes, backslashes and non-printables as ``\\xHH``."""
    if value.isprintable() and value.isascii() and '"' not in value and '\\' not in value:
        return value
    return ''.join(char if ' ' <= char <= '~' and char not in '"\\' else f'\\x{ord(char) & 0xFF:02X}' for char in value)


def combined_log_line(remote_addr: str, now: float, request_line: str, status: int, body_bytes: int,
                      request: Request | None) -> str:
    headers = request.headers if request else {}
    referer = log_escape(headers.get('referer', '-') or '-')
    agent = log_escape(headers.get('user-agent', '-') or '-')
    return (f'{remote_addr} - - [{time_local(now)}] "{log_escape(request_line) or "-"}" {status} {body_bytes} '
            f'"{referer}" "{agent}"\n')


class _Connection:
    """One client connection and whether a request is being answered on it."""

    __slots__ = ('reader', 'writer', 'task', 'busy', 'remote_addr')

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.task = asyncio.current_task()
        self.busy = False
        peer = writer.get_extra_info('peername')
        self.remote_addr = str(peer[0]) if peer else '-'

    def close(self) -> None:
        """Close the transport once what was written has gone out: the peer gets a FIN."""
        self.writer.close()


class RealServer:
    """A keep-alive web server on one address, serving ``docroot`` and saying who answered."""

    def __init__(self, name: str, host: str, port: int, docroot: str, access_log: str | None = None,
                 keepalive_timeout: float = 75.0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.docroot = docroot
        self.access_log = access_log
        self.keepalive_timeout = keepalive_timeout
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self._stopping = False
        self._log: t.TextIO | None = None
        self._date_cache = (0, '')

    @property
    def address(self) -> str:
        return f'{self.host}:{self.port}'

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @property
    def serving(self) -> bool:
        return self._server is not None and not self._stopping

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f'{self.name}: already started')
        if self.access_log:
            self._log = open(self.access_log, 'a', encoding='utf-8')
        self._stopping = False
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=HEAD_LIMIT)
        except OSError:
            self._close_log()
            raise
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self, graceful: bool = True, timeout: float = 5.0) -> None:
        """Stop accepting, then close connections: idle ones now, busy ones when done (or after ``timeout``)."""
        server = self._server
        if server is None or self._stopping:
            return
        self._stopping = True
        server.close()  # the listening socket closes here: new connections are refused from now on
        if graceful:
            for conn in list(self._connections):
                if not conn.busy:
                    conn.close()
            await self._wait_for_handlers(timeout)
        await self._force_close()
        try:
            await asyncio.wait_for(server.wait_closed(), FORCED_CLOSE_WAIT)
        except asyncio.TimeoutError:
            pass
        self._server = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def _wait_for_handlers(self, timeout: float) -> None:
        tasks = {conn.task for conn in self._connections if conn.task is not None}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _force_close(self) -> None:
        for conn in list(self._connections):
            if conn.busy:
                conn.writer.transport.abort()  # drop the unsent rest of the response; the handler's next write fails
            else:
                conn.close()
        await self._wait_for_handlers(FORCED_CLOSE_WAIT)
        for conn in list(self._connections):
            if conn.task is not None:
                conn.task.cancel()  # last resort: a handler that did not notice its connection closing
        await self._wait_for_handlers(FORCED_CLOSE_WAIT)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(reader, writer)
        self._connections.add(conn)
        try:
            await self._serve(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request; nothing left to answer
        except asyncio.CancelledError:
            # Only stop() and loop shutdown cancel handlers. Ending normally spares asyncio's stream
            # callback from logging the cancellation as an error (it calls task.exception()).
            pass
        finally:
            self._connections.discard(conn)
            writer.close()

    async def _serve(self, conn: _Connection) -> None:
        keep_alive = True
        while keep_alive and not self._stopping:
            try:
                head = await self._read_head(conn)
            except BadRequest as exc:
                await self._answer(conn, '-', None, Response(exc.status, f'{exc}\n'.encode()))
                return
            if head is None:
                return
            conn.busy = True
            keep_alive = await self._process(conn, head)
            conn.busy = False

    async def _read_head(self, conn: _Connection) -> bytes | None:
        """Wait for the next request's head; None when the client (or the keep-alive timer) closed."""
        timer = asyncio.get_running_loop().call_later(self.keepalive_timeout, conn.close)
        try:
            return await conn.reader.readuntil(b'\r\n\r\n')
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            raise BadRequest(431, 'request header too large') from None
        finally:
            timer.cancel()

    async def _process(self, conn: _Connection, head: bytes) -> bool:
        """Answer one request; True when the connection stays open for the next one."""
        request_line = head.lstrip(b'\r\n').split(b'\r\n', 1)[0].decode('latin-1')
        try:
            request = parse_head(head[:-4])
            await self._discard_body(conn, request)
            response = self._route(request)
        except BadRequest as exc:
            return await self._answer(conn, request_line, None, Response(exc.status, f'{exc}\n'.encode()))
        return await self._answer(conn, request_line, request, response)

    async def _discard_body(self, conn: _Connection, request: Request) -> None:
        if 'transfer-encoding' in request.headers:
            raise BadRequest(400, 'chunked request bodies are not supported')
        length = request.headers.get('content-length')
        if length is None:
            return
        if not length.isdigit():
            raise BadRequest()
        if int(length) > BODY_LIMIT:
            raise BadRequest(413, 'request body too large')
        await conn.reader.readexactly(int(length))

    def _route(self, request: Request) -> Response:
        if request.method not in METHODS:
            return Response(405, b'method not allowed\n')
        path = request.path
        if path == ROOT_PATH:
            return Response(200, f'server={self.name} version={read_version(self.docroot)}\n'.encode())
        if path == SLOW_PATH:
            return self._slow(request)
        return self._file(path)

    def _slow(self, request: Request) -> Response:
        try:
            seconds = float(request.query.get('seconds', ['1'])[0])
        except ValueError:
            raise BadRequest(400, 'seconds: expected a number') from None
        if not 0 <= seconds <= SLOW_MAX_SECONDS:
            raise BadRequest(400, f'seconds: expected 0 to {SLOW_MAX_SECONDS:g}')
        steps = max(1, round(seconds / SLOW_STEP_SECONDS))
        return Response(200, b'.' * (steps - 1) + b'\n', slow_seconds=seconds)

    def _file(self, path: str) -> Response:
        filename = docroot_file(self.docroot, path)
        try:
            with open(filename, 'rb') as handle:
                body = handle.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return Response(404, b'not found\n')
        except PermissionError:
            return Response(403, b'forbidden\n')
        content_type = mimetypes.guess_type(filename)[0] or 'application/octet-stream'
        return Response(200, body, content_type=content_type)

    async def _answer(self, conn: _Connection, request_line: str, request: Request | None, response: Response) -> bool:
        # Decided before the head goes out so that the head can tell the client; a stop that begins
        # later still closes the connection once this response is done (see _serve).
        keep_alive = request is not None and request.keep_alive and not self._stopping
        with_body = request is None or request.method != 'HEAD'
        sent = 0
        try:
            sent = await self._send(conn, response, keep_alive, with_body)
        finally:
            self._write_log(conn, request_line, request, response.status, sent)
        return keep_alive

    async def _send(self, conn: _Connection, response: Response, keep_alive: bool, with_body: bool) -> int:
        head = self._response_head(response, keep_alive)
        if not with_body:
            conn.writer.write(head)
            await conn.writer.drain()
            return 0
        if response.slow_seconds is None:
            conn.writer.write(head + response.body)
            await conn.writer.drain()
            return len(response.body)
        conn.writer.write(head)
        await conn.writer.drain()
        return await self._trickle(conn, response.body, t.cast(float, response.slow_seconds))

    async def _trickle(self, conn: _Connection, body: bytes, seconds: float) -> int:
        pause = seconds / len(body)
        for index in range(len(body)):
            await asyncio.sleep(pause)
            conn.writer.write(body[index:index + 1])
            await conn.writer.drain()
        return len(body)

    def _response_head(self, response: Response, keep_alive: bool) -> bytes:
        phrase = http.HTTPStatus(response.status).phrase
        return (f'HTTP/1.1 {response.status} {phrase}\r\n'
                f'Date: {self._http_date()}\r\n'
                f'X-Served-By: {self.name}\r\n'
                f'Content-Type: {response.content_type}\r\n'
                f'Content-Length: {len(response.body)}\r\n'
                f'Connection: {"keep-alive" if keep_alive else "close"}\r\n'
                '\r\n').encode('latin-1')

    def _http_date(self) -> str:
        now = int(time.time())
        if self._date_cache[0] != now:
            self._date_cache = (now, email.utils.formatdate(now, usegmt=True))
        return self._date_cache[1]

    def _write_log(self, conn: _Connection, request_line: str, request: Request | None, status: int, sent: int) -> None:
        if self._log is None:
            return
        self._log.write(combined_log_line(conn.remote_addr, time.time(), request_line, status, sent, request))
        self._log.flush()  # one line at a time: tests and the access_log provider read it while we run


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) into its parts."""
    host, sep, port = value.rpartition(':')
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f'expected host:port, got {value!r}')
    return host.strip('[]'), int(port)


def _arguments(argv: t.Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Embedded real server of l4vip.rollout (keep-alive HTTP/1.1).', allow_abbrev=False)
    parser.add_argument('--name', help='the server name sent in X-Served-By (required to start)')
    parser.add_argument('--listen', type=parse_listen, help='host:port to listen on, port 0: any (required to start)')
    parser.add_argument('--docroot', help='the directory served (required to start)')
    parser.add_argument('--access-log')
    parser.add_argument('--pidfile', help='written once listening, removed on exit; required with --daemon and --stop')
    parser.add_argument('--keepalive-timeout', type=float, default=75.0)
    parser.add_argument('--shutdown-timeout', type=float, default=5.0,
                        help='how long a graceful stop lets requests in flight finish')
    parser.add_argument('--daemon', action='store_true',
                        help='detach; return 0 once the server listens, 1 with the error otherwise')
    parser.add_argument('--log', help='with --daemon: where its stdout and stderr go (default /dev/null)')
    parser.add_argument('--startup-timeout', type=float, default=10.0, help='with --daemon: how long to wait for it to listen')
    parser.add_argument('--stop', action='store_true',
                        help='stop the server of --pidfile gracefully (SIGTERM) and wait until it is gone; 0 also when not running')
    parser.add_argument('--stop-timeout', type=float, default=15.0, help='with --stop: seconds before SIGKILL (then exit 1)')
    args = parser.parse_args(argv)
    if (args.daemon or args.stop) and not args.pidfile:
        parser.error('--pidfile is required with --daemon and --stop')
    if args.stop and args.daemon:
        parser.error('--stop and --daemon exclude each other')
    if not args.stop:
        missing = [f'--{name}' for name in ('name', 'listen', 'docroot') if getattr(args, name) is None]
        if missing:
            parser.error(f'the following arguments are required: {", ".join(missing)}')
    for key in ('startup_timeout', 'stop_timeout'):
        try:
            seconds(f'--{key.replace("_", "-")}', getattr(args, key))
        except OptionError as error:
            parser.error(str(error))
    return args


async def _run(args: argparse.Namespace, ready: t.Callable[[str], None] | None = None,
               failed: t.Callable[[str], None] | None = None) -> int:
    """Serve until a signal; ``ready`` hears 'listening on ...' (after the pidfile is written), ``failed`` the error."""
    ready = ready or _say
    failed = failed or (lambda line: sys.stderr.write(f'{line}\n'))
    host, port = args.listen
    if not os.path.isdir(args.docroot):
        failed(f'docroot {args.docroot}: not a directory')
        return 1
    server = RealServer(args.name, host, port, args.docroot, args.access_log, args.keepalive_timeout)
    try:
        await server.start()
    except OSError as exc:
        failed(f'cannot listen on {host}:{port}: {exc}')
        return 1
    loop = asyncio.get_running_loop()
    stop_mode: asyncio.Future[bool] = loop.create_future()
    for signum, graceful in ((signal.SIGTERM, True), (signal.SIGQUIT, True), (signal.SIGINT, False)):
        loop.add_signal_handler(signum, _settle, stop_mode, graceful)
    try:
        if args.pidfile:
            with open(args.pidfile, 'w', encoding='ascii') as handle:
                handle.write(f'{os.getpid()}\n')
        ready(f'listening on {server.address}')
        await server.stop(graceful=await stop_mode, timeout=args.shutdown_timeout)
    finally:
        await server.stop(graceful=False)
        if args.pidfile and os.path.exists(args.pidfile):
            os.unlink(args.pidfile)
    return 0


def _say(line: str) -> None:
    """One line on stdout at once: whoever started us waits for it."""
    sys.stdout.write(f'{line}\n')
    sys.stdout.flush()


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


# -- daemon mode: start detached, stop through the pidfile ---------------------------------

ENTRY_MODULE = 'ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver'


def running_pid(pidfile: str) -> int | None:
    """The pid in ``pidfile`` if that process is alive and is a real server of that pidfile (pids get reused)."""
    def ours(argv: t.Sequence[str]) -> bool:
        # Started from this file (-m or by path) with this pidfile: the daemon's argv is its launcher's, as given.
        started = any(arg == ENTRY_MODULE or os.path.basename(arg) == '_realserver.py' for arg in argv)
        named = [value for option, value in zip(argv, argv[1:]) if option == '--pidfile']
        named += [arg.partition('=')[2] for arg in argv if arg.startswith('--pidfile=')]
        return started and any(os.path.basename(value) == os.path.basename(pidfile) for value in named)
    return _process.pid_from_file(pidfile, ours)


def _absolute(args: argparse.Namespace) -> None:
    """The daemon changes to / (it must not pin the caller's directory): every path becomes absolute first."""
    for key in ('docroot', 'access_log', 'pidfile', 'log'):
        if getattr(args, key):
            setattr(args, key, os.path.abspath(getattr(args, key)))


def _daemon_body(args: argparse.Namespace, notify: int) -> int:
    """In the detached grandchild: report the pid, then 'listening on ...' or the error, over ``notify``."""
    open_fds = [notify]  # emptied once closed: the fd number may be reused by a socket later

    def send(line: str) -> None:
        if open_fds:
            try:
                os.write(notify, f'{line}\n'.encode())
            except OSError:
                pass  # the launcher gave up waiting; keep serving, the pidfile says who we are

    def done(line: str) -> None:
        send(line)
        if open_fds:
            os.close(open_fds.pop())

    send(f'pid {os.getpid()}')
    try:
        return asyncio.run(_run(args, ready=done, failed=done))
    except Exception as exc:  # anything before 'listening' must reach the launcher, not only the log
        with_error = f'error: {type(exc).__name__}: {exc}'
        send(with_error)
        sys.stderr.write(f'{with_error}\n')
        return 1


def _detach(args: argparse.Namespace) -> int:
    """Double fork + setsid; the launcher returns 0 once the server listens, else 1 with the error."""
    _absolute(args)
    current = running_pid(args.pidfile)
    if current is not None:
        _say(f'already running as pid {current}')  # like a service 'started': the pidfile's server listens
        return 0
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:  # intermediate child: a new session, then leave so the daemon can never regain a terminal
        os.close(read_end)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)  # pylint: disable=protected-access
        code = 1
        try:
            os.chdir('/')
            null = os.open(os.devnull, os.O_RDONLY)
            out = os.open(args.log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(null)
            os.close(out)
            code = _daemon_body(args, write_end)
        finally:
            os._exit(code)  # pylint: disable=protected-access
    os.close(write_end)
    os.waitpid(first, 0)
    return _await_ready(read_end, args)


def _await_ready(read_end: int, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.startup_timeout
    data = b''
    with os.fdopen(read_end, 'rb', buffering=0) as pipe:
        while b'listening on ' not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([pipe], [], [], remaining)[0]:
                pid = _first_pid(data)
                if pid is not None:
                    # A server the launcher reports as failed must not linger: killed, and gone before we say so.
                    try:
                        _process.terminate(pid, _process.KILL_TIMEOUT, signum=signal.SIGKILL)
                    except _process.StillRunning as exc:
                        sys.stderr.write(f'{args.name}: {exc}\n')
                sys.stderr.write(f'{args.name}: not listening within {args.startup_timeout:g}s; killed pid {pid}\n')
                return 1
            chunk = pipe.read(4096)
            if not chunk:
                break
            data += chunk
    lines = data.decode(errors='replace').splitlines()
    listening = [line for line in lines if line.startswith('listening on ')]
    if listening:
        _say(f'{listening[0]} as pid {_first_pid(data)}')
        return 0
    errors = [line for line in lines if not line.startswith('pid ')] or [f'exited before listening (log: {args.log or "none"})']
    sys.stderr.write(f'{args.name}: {"; ".join(errors)}\n')
    return 1


def _first_pid(data: bytes) -> int | None:
    for line in data.decode(errors='replace').splitlines():
        if line.startswith('pid ') and line[4:].isdigit():
            return int(line[4:])
    return None


def stop(pidfile: str, timeout: float) -> int:
    """SIGTERM (graceful: idle keep-alive connections get a FIN) and wait until the process is gone; SIGKILL after ``timeout``."""
    pid = running_pid(pidfile)
    if pid is None:
        if os.path.exists(pidfile):
            os.unlink(pidfile)  # stale: its process is gone or is no server of ours
        _say('not running')
        return 0
    try:
        graceful = _process.terminate(pid, timeout)
    except _process.StillRunning as exc:
        sys.stderr.write(f'{exc}\n')
        return 1
    if graceful:
        _say(f'stopped pid {pid}')  # the server removed its pidfile on the way out
        return 0
    if os.path.exists(pidfile):
        os.unlink(pidfile)
    sys.stderr.write(f'pid {pid} did not stop within {timeout:g}s of SIGTERM; killed\n')
    return 1


def main(argv: t.Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    if args.stop:
        return stop(args.pidfile, args.stop_timeout)
    if args.daemon:
        return _detach(args)
    return asyncio.run(_run(args))


if __name__ == '__main__':
    raise SystemExit(main())  # not sys.exit: ansible-test's pylint bans it (and print) in module_utils
