# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The emulator as a background service: start, query and stop it through a pidfile.

Internal to the l4vip.rollout collection; not a public API.

A module runs from a temporary payload that is deleted when it returns, so the emulator's
sources are copied next to the pidfile and the service runs from there. Its files:
``<pidfile>`` (process id), ``<pidfile>.state.json`` (control URL, bound VIPs, config
digest, written once ready), ``<pidfile>.config.json``, ``<pidfile>.log`` and
``<pidfile>.lib/`` (the sources).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pkgutil
import re
import signal
import subprocess
import sys
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator import EmulatorConfig

PACKAGE = 'ansible_collections.l4vip.rollout.plugins.module_utils'
ENTRY_POINT = f'{PACKAGE}._emulator'
# `...plugins.module_utils._name` or `...plugins.module_utils import _a, _b`: how the collection's modules import each other.
_IMPORT = re.compile(rb'plugins\.module_utils(?:\.(_\w+)|\s+import\s+(_\w+(?:\s*,\s*_\w+)*))')
POLL = 0.05


class ServiceError(Exception):
    """Starting or stopping failed; ``detail`` says what was seen (log tail, pid, state)."""

    def __init__(self, message: str, **detail: t.Any) -> None:
        super().__init__(message)
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class ServiceFiles:
    pidfile: str

    @property
    def state(self) -> str:
        return f'{self.pidfile}.state.json'

    @property
    def config(self) -> str:
        return f'{self.pidfile}.config.json'

    @property
    def log(self) -> str:
        return f'{self.pidfile}.log'

    @property
    def lib(self) -> str:
        return f'{self.pidfile}.lib'


def running_pid(files: ServiceFiles) -> int | None:
    """The pid in the pidfile if that process is alive and is our emulator (pids get reused)."""
    try:
        with open(files.pidfile, encoding='utf-8') as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as handle:
            cmdline = handle.read().split(b'\0')
    except OSError:
        return None
    return pid if ENTRY_POINT.encode() in cmdline and files.config.encode() in cmdline else None


def status(files: ServiceFiles) -> dict[str, t.Any] | None:
    """What the running service wrote once ready, or None when it is not running."""
    pid = running_pid(files)
    if pid is None:
        return None
    try:
        with open(files.state, encoding='utf-8') as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    return state if state.get('pid') == pid else None


def sources(entry: str = '_emulator.py') -> dict[str, bytes]:
    """The daemon's entry point and every module_utils file it imports, directly or not, read from the collection."""
    found: dict[str, bytes] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found[name] = source = _read(name)
        for single, several in _IMPORT.findall(source):
            todo += [f'{module.strip().decode()}.py' for module in (single or several).split(b',')]
    return found


def _read(name: str) -> bytes:
    """A module_utils file: from the module's zip on a target, or from beside this file (a collection on disk)."""
    try:
        source = pkgutil.get_data(PACKAGE, name)
    except (OSError, ValueError):
        source = None
    if source is None:
        try:
            with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), 'rb') as handle:
                source = handle.read()
        except OSError:
            raise ServiceError(f'cannot read {name} from the collection') from None
    return source


def _install_sources(lib: str) -> None:
    target = os.path.join(lib, *PACKAGE.split('.'))
    os.makedirs(target, exist_ok=True)
    for name, source in sources().items():
        with open(os.path.join(target, name), 'wb') as handle:
            handle.write(source)


def start(files: ServiceFiles, config: EmulatorConfig, raw_config: t.Mapping[str, t.Any], timeout: float) -> dict[str, t.Any]:
    """Start the service and wait until it reports ready; raises ServiceError with the log tail."""
    directory = os.path.dirname(os.path.abspath(files.pidfile))
    if not os.path.isdir(directory):
        raise ServiceError(f'pidfile: directory {directory} does not exist', pidfile=files.pidfile)
    _install_sources(files.lib)
    with open(files.config, 'w', encoding='utf-8') as handle:
        json.dump(raw_config, handle, indent=2)
    for stale in (files.pidfile, files.state):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    env = dict(os.environ, PYTHONPATH=files.lib)
    with open(files.log, 'ab') as log:
        # A session of its own: the service outlives the module and ignores the task's signals.
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, '-m', ENTRY_POINT, '--config', files.config, '--pidfile', files.pidfile, '--state-file', files.state],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f'the emulator exited with status {process.returncode} before it was ready', log=_tail(files.log))
        state = status(files)
        if state is not None and state.get('config_digest') == config.digest():
            return state
        time.sleep(POLL)
    _terminate(process.pid, 2.0)
    raise ServiceError(f'the emulator was not ready within {timeout:g}s', log=_tail(files.log))


def stop(files: ServiceFiles, timeout: float) -> bool:
    """Stop the service if it runs; returns whether there was one to stop."""
    pid = running_pid(files)
    if pid is None:
        for stale in (files.pidfile, files.state):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        return False
    _terminate(pid, timeout)
    for stale in (files.pidfile, files.state):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    return True


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL once ``timeout`` has passed; returns when the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(POLL)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        # Reap it if it is our child (started in this same process), or it lingers as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as handle:
            return handle.read().split(')')[-1].split()[0] != 'Z'
    except OSError:
        return False


def _tail(path: str, lines: int = 20) -> list[str]:
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read().splitlines()[-lines:]
    except OSError:
        return []
