# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Processes on Linux, read from /proc: alive or not, found through a pidfile, stopped within time limits.

Internal to the l4vip.rollout collection; not a public API.

What a background service (the emulator's, on a target), a daemon (the embedded web server's
``--daemon`` / ``--stop``) and the test harness's real parts all need, in one place. Standard
library only. Every wait is limited by the timeouts given and polls every ``POLL`` seconds.

A zombie counts as gone: it runs no code and holds no socket. ``alive`` reaps a zombie that is
a child of the calling process (``reap=False`` leaves it to whoever else waits for it, a
``subprocess.Popen`` say, which would otherwise lose its exit status).
"""

from __future__ import annotations

import os
import signal
import subprocess
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import SYSTEM_CLOCK, Clock, poll_until

POLL = 0.01
KILL_TIMEOUT = 5.0  # how long SIGKILL may take: only a process stuck in the kernel outlasts it
TAIL_BYTES = 64 * 1024

# A marker a process's command line must hold: an argument equal to the string, or a check of the whole argv.
Marker = t.Union[str, t.Callable[[t.Sequence[str]], bool]]


def run_argv(argv: list[str]) -> tuple[int, str, str]:
    """Run an argv to its end on this host: (rc, stdout, stderr). A module passes its AnsibleModule.run_command instead."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


class StillRunning(Exception):
    """Something outlived SIGKILL's time limit (a process in uninterruptible sleep, or one we may not signal)."""

    def __init__(self, pids: t.Sequence[int], timeout: float) -> None:
        self.pids = list(pids)
        super().__init__(f'pid(s) {", ".join(map(str, self.pids))} still running {timeout:g}s after SIGKILL')


def _checked(pid: int) -> int:
    # 0 and negative numbers mean "a process group" to kill() and waitpid(): never from a pidfile's garbage.
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ValueError(f'not a process id: {pid!r}')
    return pid


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, ...); None when there is no such process."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces and parentheses: the last ')' ends it.
    return raw[raw.rindex(b')') + 2:].decode('ascii', errors='replace').split()


def _live(fields: list[str] | None) -> bool:
    return fields is not None and fields[0] not in ('Z', 'X', 'x')


def alive(pid: int, reap: bool = True) -> bool:
    """Whether ``pid`` runs; a zombie does not (and is reaped here if it is our child, unless ``reap`` is False)."""
    _checked(pid)
    if _live(_stat(pid)):
        return True
    # Looked at after /proc: a child that ended between a reap and the look would be left a zombie.
    if reap:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not our child: its parent reaps it
    return False


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None when it does not run. A reused pid has another start."""
    fields = _stat(_checked(pid))
    return int(fields[19]) if _live(fields) else None  # type: ignore[index]  # _live: not None; field 22 of stat


def _pids() -> t.Iterator[int]:
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            yield int(entry)


def _where(column: int, value: int) -> list[int]:
    """Live processes whose stat field ``column`` (1: ppid, 2: pgrp) is ``value``."""
    found = []
    for pid in _pids():
        fields = _stat(pid)
        if _live(fields) and int(fields[column]) == value:  # type: ignore[index]  # _live: not None
            found.append(pid)
    return sorted(found)


def children(pid: int) -> list[int]:
    """The live direct children of ``pid`` (an nginx master's workers, say)."""
    return _where(1, _checked(pid))


def group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (its leader included while it runs)."""
    return _where(2, _checked(pgid))


def _raw_cmdline(pid: int) -> bytes | None:
    """/proc/<pid>/cmdline as it is: the arguments, each ended by a NUL; None when there is no such process."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as handle:
            return handle.read()
    except OSError:
        return None


def cmdline(pid: int) -> list[str] | None:
    """The arguments of ``pid`` (empty for a zombie or a kernel thread); None when there is no such process."""
    raw = _raw_cmdline(_checked(pid))
    if raw is None:
        return None
    if raw.endswith(b'\0'):
        raw = raw[:-1]
    return [os.fsdecode(arg) for arg in raw.split(b'\0')] if raw else []


def matches(pid: int, *markers: Marker) -> bool:
    """Whether the command line of ``pid`` holds every marker (pids get reused: a pid alone proves nothing)."""
    argv = cmdline(pid)
    if not argv:
        return False
    return all(marker in argv if isinstance(marker, str) else marker(argv) for marker in markers)


def read_pidfile(path: str | os.PathLike[str]) -> int | None:
    """The process id a pidfile holds; None when it is missing or holds anything but a positive number."""
    try:
        with open(path, encoding='ascii') as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def pid_from_file(pidfile: str | os.PathLike[str], *markers: Marker) -> int | None:
    """The pid in ``pidfile`` if that process is alive and its command line still holds every marker."""
    pid = read_pidfile(pidfile)
    if pid is None or not alive(pid):
        return None
    return pid if not markers or matches(pid, *markers) else None


def _left(pid: int, whole_group: bool, reap: bool) -> list[int]:
    left = [pid] if alive(pid, reap) else []
    if whole_group:
        left += [member for member in group(pid) if member != pid]
    return left


def wait_gone(pid: int, timeout: float, whole_group: bool = False, reap: bool = True, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Wait up to ``timeout`` for ``pid`` (with ``whole_group``: every process of its group) to be gone; True when it is."""
    return poll_until(lambda: _left(_checked(pid), whole_group, reap), lambda left: not left, timeout, POLL, clock).reached


def _send(pid: int, signum: int, whole_group: bool) -> None:
    try:
        if whole_group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass  # gone meanwhile


def terminate(pid: int, timeout: float, signum: int = signal.SIGTERM, kill_timeout: float = KILL_TIMEOUT,
              whole_group: bool = False, reap: bool = True, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Stop ``pid``: ``signum``, up to ``timeout`` to be gone, then SIGKILL and up to ``kill_timeout``; returns once gone.

    True when it ended without SIGKILL (also when it was gone already), False when SIGKILL was needed;
    StillRunning when something outlived both waits. With ``whole_group``, ``pid`` leads a process
    group (as after setsid): both signals go to the whole group, and it is gone when every process of
    it is (a worker never outlives its master). Nothing is signalled when nothing is left, so a group
    id or pid that may already be someone else's is never used.
    """
    _checked(pid)
    if not _left(pid, whole_group, reap):
        return True
    leader = _stat(pid)
    if whole_group and _live(leader) and int(leader[2]) != pid:  # type: ignore[index]  # _live: not None
        raise ValueError(f'pid {pid} does not lead a process group')
    _send(pid, signum, whole_group)
    if wait_gone(pid, timeout, whole_group, reap, clock):
        return True
    _send(pid, signal.SIGKILL, whole_group)
    if wait_gone(pid, kill_timeout, whole_group, reap, clock):
        return False
    raise StillRunning(_left(pid, whole_group, reap), kill_timeout)


def tail(path: str | os.PathLike[str], lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a log (read from its last 64 KiB); empty when it cannot be read."""
    try:
        with open(path, 'rb') as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            text = handle.read().decode('utf-8', errors='replace').splitlines()
    except OSError:
        return []
    if size > TAIL_BYTES:
        text = text[1:]  # the first line read is most likely cut
    return text[-lines:] if lines > 0 else []
