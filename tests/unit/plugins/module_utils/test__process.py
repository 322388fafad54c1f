"""_process against real, short-lived processes: alive, zombie, pidfile, terminate with its time limits, whole groups.

Each test waits for events the children make (a line in a file, a state in /proc), never for a
fixed time; every process a test starts is stopped by the ``spawn`` fixture, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time
import typing as t
import uuid

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.tests.harness.ansible import pids_running

SLEEP = 'import time; time.sleep(60)'  # ended by the test long before; limited should the test's process die
# Says 'ready' once SIGTERM is ignored (noting each one it gets), then waits.
IGNORES_TERM = """
import signal, sys, time
def noted(signum, frame):
    with open(sys.argv[1], 'a') as out:
        out.write('TERM\\n')
signal.signal(signal.SIGTERM, noted)
with open(sys.argv[1], 'a') as out:
    out.write('ready\\n')
time.sleep(60)
"""
# Forks a worker that ignores SIGTERM, writes the worker's pid; the leader itself dies of SIGTERM unless told to ignore it too.
LEADER_AND_WORKER = """
import os, signal, sys, time
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
    os._exit(0)
if sys.argv[2] == 'ignore':
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1], 'w') as out:
    out.write(f'{pid}\\n')
time.sleep(60)
"""


def proc_state(pid: int) -> str | None:
    """The state letter from /proc, read here independently of the code under test."""
    try:
        stat = pathlib.Path(f'/proc/{pid}/stat').read_text(encoding='ascii')
    except OSError:
        return None
    return stat[stat.rindex(')') + 2]


def wait_for(what: str, check: t.Callable[[], t.Any], timeout: float = 10.0) -> t.Any:
    """Poll ``check`` until it returns something truthy; an event, limited in time."""
    deadline = time.monotonic() + timeout
    while not (seen := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f'{what}: not within {timeout}s')
        time.sleep(0.005)
    return seen


def lines_of(path: pathlib.Path) -> list[str]:
    try:
        return path.read_text(encoding='utf-8').splitlines()
    except FileNotFoundError:
        return []


@pytest.fixture
def spawn() -> t.Iterator[t.Callable[..., subprocess.Popen[bytes]]]:
    """Start ``python -c code args`` (in a session of its own unless new_session=False); all killed and reaped at teardown."""
    started: list[tuple[subprocess.Popen[bytes], bool]] = []

    def start(code: str, *args: str, new_session: bool = True, **popen: t.Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, '-c', code, *args], start_new_session=new_session, **popen)
        started.append((proc, new_session))
        return proc

    yield start
    for proc, new_session in started:
        # A group id is used only while the group has members (or its unreaped leader): never someone else's.
        if new_session and (proc.poll() is None or _process.group(proc.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        elif proc.poll() is None:
            proc.kill()
        proc.wait(5)
        if proc.stdin:
            proc.stdin.close()
    for proc, new_session in started:
        if new_session:
            wait_for(f'group {proc.pid} gone', lambda proc=proc: not _process.group(proc.pid), timeout=5)


# -- alive ------------------------------------------------------------------------------------------


def test_alive_while_running_dead_as_a_zombie_and_reaped_when_ours(spawn):
    proc = spawn('import os; os.read(0, 1)', stdin=subprocess.PIPE)
    assert _process.alive(proc.pid, reap=False) and _process.alive(proc.pid)  # running: reaping takes nothing
    proc.stdin.write(b'x')
    proc.stdin.flush()  # the child exits
    wait_for('a zombie', lambda: proc_state(proc.pid) == 'Z')
    assert not _process.alive(proc.pid, reap=False)
    assert proc_state(proc.pid) == 'Z'  # left for its owner to reap
    assert not _process.alive(proc.pid)
    assert proc_state(proc.pid) is None  # reaped: gone from /proc
    with pytest.raises(ChildProcessError):
        os.waitpid(proc.pid, os.WNOHANG)


def test_alive_of_processes_not_ours_and_of_no_process():
    assert _process.alive(os.getpid()) and _process.alive(os.getppid())
    pid_max = int(pathlib.Path('/proc/sys/kernel/pid_max').read_text(encoding='ascii'))
    assert not _process.alive(pid_max + 1)
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match='not a process id'):
            _process.alive(bad)


# -- command lines and pidfiles ---------------------------------------------------------------------


def test_cmdline_and_pids_running(spawn):
    marker = f'l4vip-test-{uuid.uuid4().hex}'
    proc = spawn(SLEEP, marker, 'two words')
    wait_for('its command line', lambda: _process.cmdline(proc.pid) == [sys.executable, '-c', SLEEP, marker, 'two words'])
    assert pids_running(marker) == [proc.pid]
    assert _process.terminate(proc.pid, 5) is True
    assert _process.cmdline(proc.pid) is None and pids_running(marker) == []


def test_pid_from_file_only_while_the_command_line_holds_every_marker(spawn, tmp_path):
    marker = f'l4vip-test-{uuid.uuid4().hex}'
    config = str(tmp_path / 'service.config.json')
    proc = spawn(SLEEP, marker, '--config', config)
    pidfile = tmp_path / 'service.pid'
    pidfile.write_text(f'{proc.pid}\n', encoding='ascii')
    wait_for('its command line', lambda: marker in (_process.cmdline(proc.pid) or []))
    assert _process.pid_from_file(pidfile) == proc.pid
    assert _process.pid_from_file(pidfile, marker, config) == proc.pid
    assert _process.pid_from_file(str(pidfile), lambda argv: argv[argv.index('--config') + 1] == config) == proc.pid
    assert _process.pid_from_file(pidfile, marker, '/elsewhere/service.config.json') is None  # a reused pid: another process
    assert _process.pid_from_file(pidfile, marker[:-1]) is None  # a marker is a whole argument
    assert _process.pid_from_file(pidfile, lambda argv: False) is None
    _process.terminate(proc.pid, 5)
    assert _process.pid_from_file(pidfile) is None  # the process is gone


@pytest.mark.parametrize('content', [None, '', 'abc', '0', '-5', '12 13', '\xe9'])
def test_pid_from_file_without_a_usable_pid(tmp_path, content):
    pidfile = tmp_path / 'x.pid'
    if content is not None:
        pidfile.write_text(content, encoding='latin-1')
    assert _process.read_pidfile(pidfile) is None and _process.pid_from_file(pidfile) is None


def test_pid_from_file_of_a_live_process_that_is_not_the_one(tmp_path):
    pidfile = tmp_path / 'x.pid'
    pidfile.write_text(f'{os.getpid()}\n', encoding='ascii')  # alive, but no process of the service
    assert _process.pid_from_file(pidfile, 'ansible_collections.l4vip.rollout.plugins.module_utils._emulator.daemon') is None


# -- terminate --------------------------------------------------------------------------------------


def test_terminate_ends_at_sigterm_when_the_process_obeys(spawn):
    proc = spawn(SLEEP)
    began = time.monotonic()
    assert _process.terminate(proc.pid, timeout=5, reap=False) is True
    assert time.monotonic() - began < 2.0  # at the SIGTERM, not at the timeout
    assert proc.wait(1) == -signal.SIGTERM


def test_terminate_reaps_its_own_child(spawn):
    proc = spawn(SLEEP)
    assert _process.terminate(proc.pid, timeout=5) is True
    assert proc_state(proc.pid) is None  # no zombie left behind


def test_terminate_of_a_process_ignoring_sigterm_kills_it_within_the_limits(spawn, tmp_path):
    noted = tmp_path / 'noted'
    proc = spawn(IGNORES_TERM, str(noted))
    wait_for('SIGTERM ignored', lambda: lines_of(noted) == ['ready'])
    began = time.monotonic()
    graceful = _process.terminate(proc.pid, timeout=0.5, kill_timeout=2.0, reap=False)
    took = time.monotonic() - began
    assert graceful is False
    assert 0.5 <= took < 0.5 + 1.5, took  # the whole timeout for SIGTERM, then SIGKILL ends it at once
    assert proc.wait(1) == -signal.SIGKILL
    assert lines_of(noted) == ['ready', 'TERM']  # SIGTERM came first, and only once


def test_terminate_of_a_gone_process_is_true_and_signals_nothing(spawn, monkeypatch):
    proc = spawn('pass')
    wait_for('exited', lambda: not _process.alive(proc.pid))  # reaped by alive
    sent = []
    monkeypatch.setattr(_process, '_send', lambda *args: sent.append(args))
    assert _process.terminate(proc.pid, timeout=5) is True and sent == []


def test_terminate_raises_when_sigkill_does_not_end_it_either(monkeypatch):
    """A process stuck in the kernel (faked: it never leaves): both waits are limited, then StillRunning."""
    sent = []
    monkeypatch.setattr(_process, '_send', lambda pid, signum, whole_group: sent.append(signum))
    monkeypatch.setattr(_process, '_left', lambda pid, whole_group, reap: [pid])
    began = time.monotonic()
    with pytest.raises(_process.StillRunning, match=r'pid\(s\) 4242 still running 0.2s after SIGKILL') as raised:
        _process.terminate(4242, timeout=0.1, kill_timeout=0.2)
    took = time.monotonic() - began
    assert sent == [signal.SIGTERM, signal.SIGKILL] and raised.value.pids == [4242]
    assert 0.3 <= took < 0.3 + 1.0, took


def test_terminate_the_whole_group_leaves_no_child(spawn, tmp_path):
    worker_file = tmp_path / 'worker'
    leader = spawn(LEADER_AND_WORKER, str(worker_file), 'ignore')
    worker = int(wait_for('the worker forked', lambda: lines_of(worker_file))[0])
    assert _process.children(leader.pid) == [worker]
    assert _process.group(leader.pid) == sorted([leader.pid, worker])
    began = time.monotonic()
    assert _process.terminate(leader.pid, timeout=0.3, kill_timeout=2.0, whole_group=True, reap=False) is False
    assert time.monotonic() - began < 0.3 + 1.5
    assert _process.group(leader.pid) == [] and not _process.alive(worker)
    assert leader.wait(1) == -signal.SIGKILL


def test_a_worker_never_outlives_its_leader(spawn, tmp_path):
    """The leader obeys SIGTERM, its worker does not: the group is not gone until SIGKILL has ended the worker too."""
    worker_file = tmp_path / 'worker'
    leader = spawn(LEADER_AND_WORKER, str(worker_file), 'obey')
    worker = int(wait_for('the worker forked', lambda: lines_of(worker_file))[0])
    assert _process.terminate(leader.pid, timeout=0.3, kill_timeout=2.0, whole_group=True, reap=False) is False
    assert _process.group(leader.pid) == [] and not _process.alive(worker)
    assert leader.wait(1) == -signal.SIGTERM  # the leader went at SIGTERM; the worker needed SIGKILL


def test_whole_group_needs_a_group_leader(spawn):
    proc = spawn(SLEEP, new_session=False)  # in pytest's own group: never to be signalled as a group
    with pytest.raises(ValueError, match='does not lead a process group'):
        _process.terminate(proc.pid, timeout=1, whole_group=True)
    assert _process.alive(proc.pid, reap=False)
    assert _process.terminate(proc.pid, timeout=5) is True


def test_wait_gone_is_limited(spawn):
    proc = spawn(SLEEP)
    began = time.monotonic()
    assert _process.wait_gone(proc.pid, 0.2) is False
    assert 0.2 <= time.monotonic() - began < 1.2
    proc.kill()
    assert _process.wait_gone(proc.pid, 5) is True


# -- tail -------------------------------------------------------------------------------------------


def test_tail(tmp_path):
    log = tmp_path / 'log'
    log.write_text(''.join(f'line {i}\n' for i in range(30)), encoding='utf-8')
    assert _process.tail(log, 3) == ['line 27', 'line 28', 'line 29']
    assert _process.tail(str(log)) == [f'line {i}' for i in range(10, 30)]
    assert _process.tail(log, 0) == [] and _process.tail(tmp_path / 'missing') == []
    big = tmp_path / 'big'
    big.write_bytes(b'x' * (_process.TAIL_BYTES + 10) + b'\nlast \xff\n')
    assert _process.tail(big, 5) == ['last \ufffd']  # the cut first line dropped, bad bytes replaced
