"""The embedded real server's daemon mode, as role argv commands use it: ``--daemon`` returns
once the server listens (or fails with the error), ``--stop`` stops it gracefully through
the pidfile and returns once the process is gone. Real processes, checked from /proc.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.tests.harness.ansible import pids_running
from ansible_collections.l4vip.rollout.tests.harness.real_parts import wait_until

HOST = '127.0.0.33'
MODULE = 'ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver'


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.environ['ANSIBLE_COLLECTIONS_PATH'])
    return subprocess.run([sys.executable, '-m', MODULE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def files(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    """A docroot and a pidfile unique to the test; whatever still runs from it is killed at teardown."""
    docroot = tmp_path / 'docroot'
    docroot.mkdir()
    (docroot / 'VERSION').write_text('3\n')
    (docroot / 'health_check.html').write_text('OK\n')
    paths = {'docroot': docroot, 'pidfile': tmp_path / 'web.pid', 'log': tmp_path / 'web.log'}
    yield paths
    leftover = pids_running(str(paths['pidfile']))
    for pid in leftover:
        _process.terminate(pid, _process.KILL_TIMEOUT, signum=signal.SIGKILL)
    assert not leftover, f'processes left running: {leftover}'


def start(files: dict[str, pathlib.Path], port: int = 0, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli('--daemon', '--name', 'web7', '--listen', f'{HOST}:{port}', '--docroot', str(files['docroot']),
               '--pidfile', str(files['pidfile']), '--log', str(files['log']), *extra)


def listening_port(result: subprocess.CompletedProcess[str]) -> int:
    # 'listening on 127.0.0.33:PORT as pid N'
    return int(result.stdout.split()[2].rpartition(':')[2])


def get(sock: socket.socket) -> bytes:
    sock.sendall(b'GET / HTTP/1.1\r\nHost: vip\r\n\r\n')
    data = b''
    while not data.endswith(b'\n') or b'\r\n\r\n' not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_daemon_starts_answers_and_stop_fins_idle_keepalive_connections(files):
    started = start(files)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith(f'listening on {HOST}:')
    pid = int(files['pidfile'].read_text())
    assert pids_running(str(files['pidfile'])) == [pid]  # detached: the launcher is gone, the server alone remains
    with open(f'/proc/{pid}/stat', encoding='utf-8') as handle:
        fields = handle.read().rpartition(')')[2].split()
    session = int(fields[3])
    assert session not in (os.getsid(0), pid)  # a session of its own, not its leader: it can never regain a terminal

    with socket.create_connection((HOST, listening_port(started)), timeout=5) as idle:
        answer = get(idle)
        assert b'X-Served-By: web7' in answer and answer.endswith(b'server=web7 version=3\n')
        began = time.monotonic()
        stopped = cli('--stop', '--pidfile', str(files['pidfile']))
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == f'stopped pid {pid}'
        assert idle.recv(4096) == b''  # FIN, not RST (that would raise ConnectionResetError)
    assert time.monotonic() - began < 5  # an idle connection does not hold a graceful stop
    assert not pids_running(str(files['pidfile']))
    assert not files['pidfile'].exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, listening_port(started)), timeout=2).close()


def test_stop_when_not_running_is_fine_and_clears_a_stale_pidfile(files):
    assert cli('--stop', '--pidfile', str(files['pidfile'])).stdout.strip() == 'not running'
    files['pidfile'].write_text(f'{os.getpid()}\n')  # alive, but no real server: must not be signalled
    result = cli('--stop', '--pidfile', str(files['pidfile']))
    assert (result.returncode, result.stdout.strip()) == (0, 'not running')
    assert not files['pidfile'].exists()


def test_start_again_while_running_is_no_change(files):
    first = start(files)
    assert first.returncode == 0, first.stderr
    pid = int(files['pidfile'].read_text())
    again = start(files)
    assert (again.returncode, again.stdout.strip()) == (0, f'already running as pid {pid}')
    assert pids_running(str(files['pidfile'])) == [pid]
    assert cli('--stop', '--pidfile', str(files['pidfile'])).returncode == 0


def test_a_daemon_that_cannot_listen_fails_with_the_error_and_leaves_nothing(files):
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        result = start(files, taken.getsockname()[1])
    assert result.returncode == 1
    assert 'web7: cannot listen on' in result.stderr and 'address already in use' in result.stderr
    # The daemon reports its error, then exits: wait for that, not for a while.
    wait_until(lambda: (not (left := pids_running(str(files['pidfile']))), left), 5.0, 'the daemon that could not listen gone')
    assert not files['pidfile'].exists()


def test_a_missing_docroot_fails_before_detaching(files):
    files['docroot'] = files['docroot'] / 'missing'
    result = start(files)
    assert result.returncode == 1 and 'not a directory' in result.stderr


def test_stop_is_bounded_a_busy_server_is_killed_and_stop_says_so(files):
    started = start(files, 0, '--shutdown-timeout', '30')
    assert started.returncode == 0, started.stderr
    with socket.create_connection((HOST, listening_port(started)), timeout=5) as busy:
        busy.sendall(b'GET /slow?seconds=20 HTTP/1.1\r\nHost: vip\r\n\r\n')
        busy.recv(100)  # the head has gone out: the request is in flight
        began = time.monotonic()
        result = cli('--stop', '--pidfile', str(files['pidfile']), '--stop-timeout', '0.5')
    assert result.returncode == 1 and 'did not stop within 0.5s of SIGTERM; killed' in result.stderr
    assert time.monotonic() - began < 10
    assert not pids_running(str(files['pidfile'])) and not files['pidfile'].exists()


@pytest.mark.parametrize(('args', 'message'), [
    (['--daemon', '--name', 'w', '--listen', f'{HOST}:0', '--docroot', '/tmp'], '--pidfile is required'),
    (['--stop'], '--pidfile is required'),
    (['--daemon', '--pidfile', '/tmp/x.pid', '--name', 'w'], 'required: --listen, --docroot'),
    (['--stop', '--daemon', '--pidfile', '/tmp/x.pid'], 'exclude each other'),
])
def test_bad_command_lines_are_refused(args, message):
    result = cli(*args)
    assert result.returncode == 2 and message in result.stderr
