"""Real nginx members and a real HAProxy standing for the L4, started and stopped by tests.

Test-only code. Every wait is bounded and says what it last saw; every process is started
in its own session so that it and its children can be stopped as a group, also when a
test fails half-way.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import http.client
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.plugins.module_utils._health_check import DISABLED_SUFFIX
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Profile, poll_until, up_window

NGINX_BIN = '/usr/sbin/nginx'
HAPROXY_BIN = '/usr/sbin/haproxy'

Member = tuple[str, str, int]


class HarnessError(RuntimeError):
    """A real part did not start, stop or answer in time."""


# --- small helpers -------------------------------------------------------------------------

def wait_until(check: t.Callable[[], tuple[bool, t.Any]], timeout: float, what: str, poll: float = 0.02) -> float:
    """Call ``check`` until it returns ``(True, seen)``; return the seconds it took.

    Raise HarnessError naming ``what`` and the last thing seen when ``timeout`` passes.
    """
    polled = poll_until(check, lambda answer: answer[0], timeout, poll)
    if not polled.reached:
        raise HarnessError(f'{what}: not after {timeout:.2f}s; last saw {polled.last[1]!r}')
    return polled.elapsed


def port_accepts(address: str, port: int, timeout: float = 0.2) -> tuple[bool, str]:
    """Whether a TCP connection to address:port is accepted, and what happened."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True, 'accepted'
    except OSError as exc:
        return False, f'{type(exc).__name__}: {exc}'


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not); never reaps: a Popen here waits for its own child."""
    return _process.alive(pid, reap=False)


def disabled_path(path: pathlib.Path) -> pathlib.Path:
    """Where the health-check file goes out of service: the name the collection's health_check module renames it to."""
    return path.with_name(path.name + DISABLED_SUFFIX)


def tail(path: pathlib.Path, lines: int = 15) -> str:
    """A log's last lines as one text for an error message."""
    return '\n'.join(_process.tail(path, lines)) or f'<{path}: empty or unreadable>'


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if pytest dies, so no part outlives a crashed run.

    SIGTERM, not SIGKILL: a killed nginx master leaves its workers running; a terminated one stops them.
    """
    libc_name = ctypes.util.find_library('c')
    if libc_name:
        pr_set_pdeathsig = 1
        ctypes.CDLL(libc_name, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _short_socket_path(path: pathlib.Path) -> pathlib.Path:
    """A unix socket path must fit in sun_path (108 bytes): fall back to a short private dir."""
    if len(os.fsencode(path)) < 100:
        return path
    return pathlib.Path(tempfile.mkdtemp(prefix='l4vip-haproxy-')) / path.name


def seconds_to_ms(seconds: float) -> str:
    """HAProxy time value: whole milliseconds (at least 1), with the unit spelled out."""
    return f'{max(1, round(seconds * 1000))}ms'


class _Process:
    """A Popen in its own process group (its session), stopped as a whole group with limited waits (_process.terminate)."""

    def __init__(self, label: str, log_path: pathlib.Path) -> None:
        self.label = label
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids_seen: set[int] = set()

    def spawn(self, argv: list[str], cwd: pathlib.Path) -> None:
        if self.is_running:
            raise HarnessError(f'{self.label}: already running as pid {self.pid}')
        with open(self.log_path, 'ab') as log:
            # pylint: disable-next=consider-using-with  # lives until stop(); closed by the caller's teardown
            self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        self.pids_seen.add(self.proc.pid)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The main process and its children, remembered so a test can check later that all are gone."""
        if not self.is_running:
            return []
        found = [self.proc.pid, *_process.children(self.proc.pid)]
        self.pids_seen.update(found)
        return found

    def leftover_pids(self) -> list[int]:
        return sorted(pid for pid in self.pids_seen if pid_alive(pid))

    def _terminate(self, signum: int, timeout: float) -> bool:
        """``signum`` to the whole group, SIGKILL after ``timeout``; then reap the main process. True when no SIGKILL was needed."""
        if self.proc is None:
            return True
        if self.proc.poll() is not None and not _process.group(self.proc.pid):
            return True  # all gone, main process reaped: its pid and group id may already be someone else's
        self.pids()
        try:
            # reap=False: the Popen reaps its own child below, and keeps its exit status.
            return _process.terminate(self.proc.pid, timeout, signum=signum, whole_group=True, reap=False)
        except _process.StillRunning as exc:
            raise HarnessError(f'{self.label}: {exc}') from None
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(_process.KILL_TIMEOUT)

    def kill_group(self) -> None:
        """SIGKILL the whole group (workers orphaned by a killed master included) and reap; returns once all are gone."""
        self._terminate(signal.SIGKILL, _process.KILL_TIMEOUT)

    def stop(self, signum: int, timeout: float) -> None:
        """Stop the group with ``signum``, SIGKILL after ``timeout``: a worker never outlives its master. Always leaves nothing running."""
        if not self._terminate(signum, timeout):
            raise HarnessError(f'{self.label}: did not exit {timeout:.1f}s after {signal.Signals(signum).name}; killed.\n'
                               f'{tail(self.log_path)}')


# --- nginx ---------------------------------------------------------------------------------

# Seconds the harness's nginx waits for a connection's first request (client_header_timeout).
CLIENT_HEADER_TIMEOUT = 4.0

NGINX_CONF = """\
daemon off;
master_process on;
# pytest's tmp dirs are 0700 and owned by root: workers must be able to read the docroot.
user root root;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;

events {{
    # Room for the connection benchmark's ~10,000 clients through an L4 (one worker takes them all,
    # accepting all that wait at each wake-up).
    worker_connections 16384;
    multi_accept on;
}}

http {{
    default_type text/plain;
    access_log {workdir}/access.log combined;
    keepalive_timeout 75s;
    keepalive_requests 100000;
    # A connection with no request yet (one the L4 reset before it came) holds a graceful stop this long: below the
    # harness's drain timeouts, as docs/roles.md advises.
    client_header_timeout """ + f'{CLIENT_HEADER_TIMEOUT:g}s;' + """
    # Temp files inside workdir: never touch /var/lib/nginx.
    client_body_temp_path {workdir}/tmp/client_body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;

    server {{
        # A burst of thousands of new connections (the connection benchmark) must queue, not be dropped.
        listen {address}:{port} backlog=4096;
        root {docroot};
        add_header X-Served-By {name} always;

        location = / {{
            try_files /index.html =404;
        }}

        # 1 KB/s: a client of /slow/ holds its response open for minutes (the drain's hard case).
        location /slow/ {{
            limit_rate 1k;
        }}
    }}
}}
"""


class _RealPart:
    """What every real part says of its process: running or not, its pid, and every pid it had that still lives."""

    _process: _Process

    @property
    def is_running(self) -> bool:
        return self._process.is_running

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def pids(self) -> list[int]:
        """The part's pids while running (master and workers), remembered for leftover_pids."""
        return self._process.pids()

    def leftover_pids(self) -> list[int]:
        """Pids the part ever had that are still alive: empty after a stop."""
        return self._process.leftover_pids()


class Nginx(_RealPart):
    """A real nginx member: its own config, docroot, logs and temp files, all in ``workdir``."""

    def __init__(self, name: str, address: str, port: int, workdir: str | os.PathLike[str],
                 docroot: str | os.PathLike[str] | None = None, version: str = '1') -> None:
        self.name = name
        self.address = address
        self.port = port
        self.workdir = pathlib.Path(workdir)
        self.docroot = pathlib.Path(docroot) if docroot is not None else self.workdir / 'docroot'
        self.conf_path = self.workdir / 'nginx.conf'
        self.error_log_path = self.workdir / 'error.log'
        self._process = _Process(f'nginx {name} on {address}:{port}', self.workdir / 'nginx.out')
        self._prepare(version)

    def __repr__(self) -> str:
        return f'Nginx({self.name!r}, {self.address}:{self.port}, pid={self.pid})'

    def _prepare(self, version: str) -> None:
        (self.workdir / 'tmp').mkdir(parents=True, exist_ok=True)
        self.docroot.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(NGINX_CONF.format(workdir=self.workdir, docroot=self.docroot, name=self.name,
                                                    address=self.address, port=self.port), encoding='utf-8')
        if not self.health_check_path.exists() and not self.disabled_health_check_path.exists():
            self.health_check_path.write_text('OK\n', encoding='utf-8')
        self.write_version(version)

    # paths and facts
    @property
    def access_log_path(self) -> pathlib.Path:
        return self.workdir / 'access.log'

    @property
    def health_check_path(self) -> pathlib.Path:
        return self.docroot / 'health_check.html'

    @property
    def disabled_health_check_path(self) -> pathlib.Path:
        return disabled_path(self.health_check_path)

    def url(self, path: str = '/') -> str:
        return f'http://{self.address}:{self.port}{path}'

    # content
    def write_version(self, version: str) -> None:
        self.version = version
        (self.docroot / 'index.html').write_text(f'server={self.name} version={version}\n', encoding='utf-8')

    def disable_health_check(self) -> None:
        """Rename the health-check file away: the L7 check gets 404 from now on."""
        self.health_check_path.rename(self.disabled_health_check_path)

    def enable_health_check(self) -> None:
        self.disabled_health_check_path.rename(self.health_check_path)

    # lifecycle
    def start(self, timeout: float = 5.0) -> Nginx:
        # -e: the compiled-in error log (/var/log/nginx) is opened before the config is read.
        self._process.spawn([NGINX_BIN, '-c', str(self.conf_path), '-p', str(self.workdir), '-e', str(self.error_log_path)],
                            cwd=self.workdir)
        try:
            wait_until(self._ready, timeout, f'{self._process.label} accepting connections')
        except HarnessError as exc:
            self._process.kill_group()
            raise HarnessError(f'{exc}\nerror log tail:\n{tail(self.error_log_path)}\noutput:\n{tail(self._process.log_path)}') from None
        self.pids()
        return self

    def _ready(self) -> tuple[bool, str]:
        if not self.is_running:
            return False, f'nginx exited with {self._process.proc.returncode}'
        accepted, seen = port_accepts(self.address, self.port)
        return accepted and bool(_process.children(self.pid)), seen if not accepted else 'no worker yet'

    def quit(self, timeout: float = 5.0) -> None:
        """Graceful stop (SIGQUIT): idle keep-alive connections are closed with FIN, busy ones finish first."""
        self._process.stop(signal.SIGQUIT, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Fast stop (SIGTERM): open connections are closed at once. SIGKILL after ``timeout``."""
        self._process.stop(signal.SIGTERM, timeout)


# --- HAProxy -------------------------------------------------------------------------------

def haproxy_config(socket_path: pathlib.Path, profile: Profile, frontend: tuple[str, int], members: t.Sequence[Member],
                   backend: str = 'vip', check_source: str | None = None, log_socket: pathlib.Path | None = None,
                   extra_global: t.Sequence[str] = ()) -> str:
    """An HAProxy config standing for the reference L4 (docs/how-it-works.md), every timing taken from ``profile``.

    With ``log_socket``, HAProxy sends its log (syslog datagrams) to that unix datagram socket: its
    own word on when it marked a server DOWN or UP, with no polling of the runtime API.
    ``extra_global``: more lines for the ``global`` section (a second ``stats socket``, say).
    """
    server_opts = [f'inter {seconds_to_ms(profile.interval)}', f'fall {profile.fall}', f'rise {profile.rise}']
    if profile.reset_on_port_fail:
        # The L4's "Reset On Port Fail": kill the member's sessions at the DOWN transition.
        server_opts.append('on-marked-down shutdown-sessions')
    if check_source:
        # HAProxy has no check-only source address: `source` covers checks and forwarded traffic alike.
        # `usesrc clientip` gives the forwarded traffic the client's address back (as a DSR L4 does);
        # on loopback every 127/8 address is local, so this needs only root (IP_TRANSPARENT), no routing.
        server_opts.append(f'source {check_source} usesrc clientip')
    if profile.health_check == 'l7':
        check = [f'    option httpchk GET {profile.health_check_path}', '    http-check expect status 200']
    else:
        check = []  # plain `check`: a TCP connect, the L4 health check.
    lines = [
        'global',
        f'    stats socket {socket_path} level admin mode 600',
        *([f'    log {log_socket} local0'] if log_socket else []),
        *(f'    {line}' for line in extra_global),
        '',
        'defaults',
        '    mode tcp',
        *(['    log global'] if log_socket else []),
        # A DSR L4 cannot retry a refused connection: the member's kernel RSTs the client directly.
        '    retries 0',
        '    timeout connect 1s',
        # HAProxy's check timeout is min(timeout connect, inter) to connect plus `timeout check` to answer;
        # on loopback the connect is immediate, so the answer's timeout is the one that counts.
        f'    timeout check {seconds_to_ms(profile.effective_check_timeout)}',
        f'    timeout client {seconds_to_ms(profile.idle_timeout)}',
        f'    timeout server {seconds_to_ms(profile.idle_timeout)}',
        '',
        'frontend vip_in',
        f'    bind {frontend[0]}:{frontend[1]}',
        f'    default_backend {backend}',
        '',
        f'backend {backend}',
        '    balance roundrobin',
        *check,
        f'    default-server {" ".join(server_opts)}',
        *(f'    server {name} {address}:{port} check' for name, address, port in members),
        '',
    ]
    return '\n'.join(lines)


# --- HAProxy's own view: `show servers state`, read independently of the collection -------
#
# A second reading of `show servers state`, beside the collection's own (plugins/module_utils/
# _haproxy.py: parse_servers_state, ServerState.bound and .admin_state), and it must stay a separate
# one: the tests use it as the judge of the collection's reading. member_wait's `haproxy` provider
# must return right after the transition seen here (test_member_modules), member_admin's changes are
# checked against server_states() (test_member_modules: read()), the emulator is compared with what
# HAProxy says here (test_emulator_vs_haproxy), and the fleets' HAProxy L4 reports bound() from it.
# Built on _haproxy's parser, a misread column or a wrong "bound" rule would be shared by the module
# and its judge, and every one of those tests would pass with the bug. So it stays small and plain:
# columns named by the header line, values left as HAProxy's strings, the bound rule written here
# from HAProxy's definitions (srv_op_state, srv_admin_state bits), nothing imported from _haproxy.

# HAProxy's srv_op_state values.
OP_STOPPED, OP_STARTING, OP_RUNNING, OP_STOPPING = 0, 1, 2, 3
# srv_admin_state bits that take a server out of load balancing: FMAINT, IMAINT, CMAINT,
# FDRAIN, IDRAIN, RMAINT, HMAINT. Any of them means "not bound" for new connections.
ADMIN_OUT_OF_SERVICE = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40


def parse_servers_state(text: str) -> dict[str, dict[str, str]]:
    """``show servers state`` output as {server name: {column: value}}; columns from the header line."""
    header: list[str] | None = None
    servers: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if line.startswith('# '):
            header = line[2:].split()
        elif header and line.strip():
            row = dict(zip(header, line.split()))
            servers[row['srv_name']] = row
    if header is None:
        raise HarnessError(f'show servers state: no header line in {text!r}')
    return servers


def bound_state(row: t.Mapping[str, str]) -> str:
    """'up' when HAProxy would give the server new connections, 'down' otherwise."""
    op_state, admin_state = int(row['srv_op_state']), int(row['srv_admin_state'])
    return 'up' if op_state in (OP_STARTING, OP_RUNNING) and not admin_state & ADMIN_OUT_OF_SERVICE else 'down'


def runtime(socket_path: str | os.PathLike[str], command: str, timeout: float = 2.0) -> str:
    """One command on HAProxy's runtime API at ``socket_path`` (non-interactive: HAProxy answers and closes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(os.fspath(socket_path))
        sock.sendall(command.encode() + b'\n')
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b''.join(chunks).decode('utf-8', errors='replace')


def connections_counter(socket_path: str | os.PathLike[str]) -> t.Callable[[], int]:
    """A count of the connections HAProxy has accepted, less the counter's own: goes up when anyone else asks it.

    ``show activity``'s ``accepted`` counts the connections HAProxy's listeners accepted, on its
    frontends and on its runtime API, the ``show activity`` asking for it included (each call of the
    counter subtracts its own); not the health checks it opens itself (``show info``'s CumConns counts
    those too). So a module's question on the runtime socket shows as one more, seen from HAProxy's side.
    """
    own = 0

    def count() -> int:
        nonlocal own
        own += 1
        answer = runtime(socket_path, 'show activity')
        # 'accepted: 7 [ 3 4 ]': the total, then per thread.
        totals = [line.split()[1] for line in answer.splitlines() if line.startswith('accepted:')]
        if len(totals) != 1 or not totals[0].isdigit():
            raise HarnessError(f'show activity on {socket_path}: no accepted count in {answer[:300]!r}')
        return int(totals[0]) - own
    return count


class HAProxy(_RealPart):
    """A real HAProxy in ``mode tcp``: the L4 with binding list, health checks and runtime API."""

    def __init__(self, workdir: str | os.PathLike[str], profile: Profile, frontend: tuple[str, int], members: list[Member],
                 backend: str = 'vip', check_source: str | None = None, log_socket: pathlib.Path | None = None,
                 extra_global: t.Sequence[str] = (), prefix: t.Sequence[str] = ()) -> None:
        """``prefix``: argv run in front of haproxy (``ip netns exec NS``: HAProxy in another network namespace)."""
        self.workdir = pathlib.Path(workdir)
        self.profile = profile
        self.frontend = frontend
        self.members = list(members)
        self.backend = backend
        self.check_source = check_source
        self.log_socket = log_socket
        self.prefix = list(prefix)
        self.conf_path = self.workdir / 'haproxy.cfg'
        self.socket_path = _short_socket_path(self.workdir / 'haproxy.sock')
        self._process = _Process(f'haproxy on {frontend[0]}:{frontend[1]}', self.workdir / 'haproxy.out')
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(haproxy_config(self.socket_path, profile, frontend, self.members, backend, check_source, log_socket,
                                                 extra_global), encoding='utf-8')

    def __repr__(self) -> str:
        return f'HAProxy({self.frontend[0]}:{self.frontend[1]}, pid={self.pid})'

    @property
    def output_path(self) -> pathlib.Path:
        return self._process.log_path

    def check_config(self) -> None:
        """``haproxy -c``: raise with HAProxy's own words when the config is invalid."""
        result = subprocess.run([HAPROXY_BIN, '-c', '-f', str(self.conf_path)], capture_output=True, text=True, timeout=10, check=False)
        if result.returncode != 0:
            raise HarnessError(f'haproxy -c {self.conf_path}: {result.stdout}{result.stderr}')

    def start(self, timeout: float = 5.0) -> HAProxy:
        """Start in the foreground (-db); return once the frontend accepts and the runtime API answers.

        Start the members first: a member not listening yet is checked, and taken down, like any other.
        """
        self.socket_path.unlink(missing_ok=True)
        self._process.spawn([*self.prefix, HAPROXY_BIN, '-f', str(self.conf_path), '-db'], cwd=self.workdir)
        try:
            wait_until(self._ready, timeout, f'{self._process.label} ready')
        except HarnessError as exc:
            self._process.kill_group()
            raise HarnessError(f'{exc}\noutput:\n{tail(self._process.log_path)}') from None
        return self

    def _ready(self) -> tuple[bool, str]:
        if not self.is_running:
            return False, f'haproxy exited with {self._process.proc.returncode}'
        try:
            self.runtime('show info', timeout=0.5)
        except OSError as exc:
            return False, f'runtime socket: {type(exc).__name__}: {exc}'
        return port_accepts(*self.frontend)

    def stop(self, timeout: float = 5.0) -> None:
        """Hard stop (SIGTERM: HAProxy closes everything at once); SIGKILL after ``timeout``."""
        try:
            self._process.stop(signal.SIGTERM, timeout)
        finally:
            if self.socket_path.parent != self.workdir:
                shutil.rmtree(self.socket_path.parent, ignore_errors=True)

    # runtime API
    def runtime(self, command: str, timeout: float = 2.0) -> str:
        """One command on the runtime API (non-interactive: HAProxy answers and closes)."""
        return runtime(self.socket_path, command, timeout)

    def server_states(self) -> dict[str, dict[str, str]]:
        return parse_servers_state(self.runtime(f'show servers state {self.backend}'))

    def member_state(self, name: str) -> str:
        """'up' or 'down' as the binding list has it right now."""
        states = self.server_states()
        if name not in states:
            raise HarnessError(f'backend {self.backend} has no server {name!r}; it has {sorted(states)}')
        return bound_state(states[name])

    def unsettled(self) -> dict[str, int]:
        """Servers whose check health is between 0 and full, with that health.

        HAProxy starts every server up with the health of a server that has only just risen, so a
        single failed check takes it down; only after its first good check does it need ``fall``
        failures. Settled means every server is fully up (rise + fall - 1) or fully down (0).
        """
        full = self.profile.rise + self.profile.fall - 1
        healths = {name: int(row['srv_check_health']) for name, row in self.server_states().items()}
        return {name: health for name, health in healths.items() if health not in (0, full)}

    def wait_settled(self, timeout: float | None = None) -> float:
        """Wait until no server is half-way between down and up: as an L4 that has run for a while."""
        if timeout is None:
            timeout = up_window(self.profile).high + self.profile.effective_check_timeout + 1.0

        def check() -> tuple[bool, dict[str, int]]:
            seen = self.unsettled()
            return not seen, seen
        return wait_until(check, timeout, f'{self.backend}: every server fully up or down (server: check health)')

    def wait_member_state(self, name: str, state: str, timeout: float, poll: float = 0.005) -> float:
        """Poll until ``name`` is ``state``; return the seconds it took (good to ``poll``)."""
        def check() -> tuple[bool, str]:
            seen = self.member_state(name)
            return seen == state, seen
        return wait_until(check, timeout, f'{self.backend}/{name} {state}', poll=poll)


class Stoppable(t.Protocol):
    def stop(self, timeout: float = 5.0) -> None: ...  # noqa: E704

    def leftover_pids(self) -> list[int]: ...  # noqa: E704


def stop_all(parts: t.Iterable[Stoppable], timeout: float = 5.0) -> None:
    """Stop every part (newest first), even when some fail to stop; then insist that no pid is left."""
    errors = []
    for part in reversed(list(parts)):
        try:
            part.stop(timeout)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # keep stopping the others
            errors.append(f'{part!r}: {exc}')
        errors.extend(f'{part!r}: pid {pid} still alive' for pid in part.leftover_pids())
    if errors:
        raise HarnessError('stopping the real parts:\n' + '\n'.join(errors))


# --- a keep-alive client -------------------------------------------------------------------

class Reply(t.NamedTuple):
    status: int
    served_by: str | None
    body: str


class KeepAliveClient:
    """One HTTP/1.1 connection reused for every request, so a test can follow a single L4 session."""

    def __init__(self, address: str, port: int, timeout: float = 2.0) -> None:
        self._conn = http.client.HTTPConnection(address, port, timeout=timeout)
        self._conn.connect()
        self.local = self._conn.sock.getsockname()

    def get(self, path: str = '/') -> Reply:
        """GET on the same connection; raises (http.client / OSError) if it was closed meanwhile."""
        self._conn.request('GET', path)
        response = self._conn.getresponse()
        body = response.read().decode('utf-8', errors='replace')
        if self._conn.sock is None:
            raise HarnessError('the server closed the keep-alive connection after the reply')
        return Reply(response.status, response.getheader('X-Served-By'), body)

    def wait_closed(self, timeout: float) -> tuple[str, float]:
        """Wait for the peer to close the idle connection: ('eof' | 'reset', seconds). Raise if still open."""
        sock = self._conn.sock
        start = time.monotonic()
        sock.settimeout(timeout)
        try:
            data = sock.recv(1, socket.MSG_PEEK)
        except ConnectionResetError:
            return 'reset', time.monotonic() - start
        except TimeoutError:
            raise HarnessError(f'connection {self.local} still open after {timeout:.2f}s') from None
        if data:
            raise HarnessError(f'connection {self.local}: unexpected data {data!r} while idle')
        return 'eof', time.monotonic() - start

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
