# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The emulator as a background service: start, query and stop it through a pidfile.

Internal to the l4vip.rollout collection; not a public API.

A module runs from a temporary payload that is deleted when it returns, so the emulator's
sources are copied next to the pidfile and the service runs from there. Its files:
``<pidfile>`` (process id), ``<pidfile>.state.json`` (control URL, the VIPs' listening addresses, config
digest, written once ready), ``<pidfile>.config.json``, ``<pidfile>.log`` and
``<pidfile>.lib/`` (the sources).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import os
import pkgutil
import subprocess
import sys
import typing as t

# AnsiballZ ships a module only the module_utils files it imports, and sources() copies the daemon out of that payload:
# importing the daemon's entry point (it runs nothing on import) is what puts it and all it imports there.
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator import daemon as _daemon  # pylint: disable=unused-import
from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import ConfigError, EmulatorConfig, control_warnings, parse_config
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError, seconds
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import SYSTEM_CLOCK, Clock, poll_until

PACKAGE = 'ansible_collections.l4vip.rollout.plugins.module_utils'
ENTRY_POINT = f'{PACKAGE}._emulator.daemon'
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
    return _process.pid_from_file(files.pidfile, ENTRY_POINT, files.config)


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


def sources(entry: str = ENTRY_POINT[len(PACKAGE) + 1:]) -> dict[str, bytes]:
    """What ``python -m`` needs to run ``entry`` (a module below module_utils, dotted), read from the collection.

    Every module_utils file it imports, directly or not, and the ``__init__.py`` of each package on the way; keyed by
    their path below module_utils (``_timing.py``, ``_emulator/core.py``).
    """
    found: dict[str, bytes] = {}
    looked_up: set[str] = set()
    todo = [(entry, True)]  # (dotted name, whether it must be a module)
    while todo:
        name, required = todo.pop()
        if name in looked_up and not required:
            continue
        looked_up.add(name)
        located = _locate(name)
        if located is None:
            if required:
                raise ServiceError(f'cannot read {name.replace(".", "/")}.py from the collection')
            continue  # `from package import name`: an attribute, not a module
        path, source = located
        if path in found:
            continue
        found[path] = source
        parents = name.split('.')[:-1]
        todo += [('.'.join(parents[:n]), False) for n in range(1, len(parents) + 1)]  # packages (none if namespace)
        todo += _imports(name, path.endswith('/__init__.py'), source)
    return found


class Import(t.NamedTuple):
    """One imported module as a file says it: ``from a.b import c, d`` is ('a.b', ('c', 'd'), 0); ``import a.b`` is ('a.b', None, 0)."""

    module: str  # as written; '' for ``from . import x``
    names: tuple[str, ...] | None  # the names after ``import`` in a ``from`` import; None for a plain ``import``
    level: int  # the leading dots of a relative import


def import_statements(source: str | bytes) -> list[Import]:
    """Every import of a Python source, top level and inside functions alike, read with ast (an import may span lines)."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, None, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(Import(node.module or '', tuple(alias.name for alias in node.names), node.level))
    return found


def _imports(name: str, is_package: bool, source: bytes) -> list[tuple[str, bool]]:
    """The module_utils modules a file imports, dotted below module_utils."""
    package = name if is_package else name.rpartition('.')[0]
    wanted: list[tuple[str, bool]] = []
    for imported in import_statements(source):
        if imported.names is None:
            wanted += [(_below(imported.module), True)] if _below(imported.module) else []
            continue
        if imported.level:  # relative: from the file's package, up level - 1
            parts = package.split('.') if package else []
            module = '.'.join(parts[:len(parts) - imported.level + 1] + ([imported.module] if imported.module else []))
        elif imported.module == PACKAGE or imported.module.startswith(f'{PACKAGE}.'):
            module = _below(imported.module)
        else:
            continue
        if module:
            wanted.append((module, True))
        # `from x import y`: y is a module when there is a file for it, else a name defined in x; module_utils itself
        # defines no names.
        wanted += [(f'{module}.{alias}' if module else alias, not module) for alias in imported.names if alias != '*']
    return wanted


def _below(module: str) -> str:
    """``_emulator.core`` for ``ansible_collections...module_utils._emulator.core``; '' for any other module."""
    return module[len(PACKAGE) + 1:] if module.startswith(f'{PACKAGE}.') else ''


def _locate(name: str) -> tuple[str, bytes] | None:
    """The file of a module below module_utils: ``a/b/__init__.py`` for a package, or ``a/b.py``; None if neither."""
    base = name.replace('.', '/')
    for path in (f'{base}/__init__.py', f'{base}.py'):  # a package first, as Python looks
        source = _read(path)
        if source is not None:
            return path, source
    return None


def _read(path: str) -> bytes | None:
    """A file below module_utils (``/``-separated): from the module's zip on a target, or from beside this file (a
    collection on disk); None when there is none."""
    try:
        source = pkgutil.get_data(PACKAGE, path)
    except (OSError, ValueError):
        source = None
    if source is None:
        try:
            with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), *path.split('/')), 'rb') as handle:
                source = handle.read()
        except OSError:
            return None
    return source


def _install_sources(lib: str) -> None:
    target = os.path.join(lib, *PACKAGE.split('.'))
    for path, source in sources().items():
        destination = os.path.join(target, *path.split('/'))
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        with open(destination, 'wb') as handle:
            handle.write(source)


def start(files: ServiceFiles, config: EmulatorConfig, raw_config: t.Mapping[str, t.Any], timeout: float,
          clock: Clock = SYSTEM_CLOCK) -> dict[str, t.Any]:
    """Start the service and wait until it reports ready; raises ServiceError with the log tail."""
    directory = os.path.dirname(os.path.abspath(files.pidfile))
    if not os.path.isdir(directory):
        raise ServiceError(f'pidfile: directory {directory} does not exist', pidfile=files.pidfile)
    _install_sources(files.lib)
    with open(files.config, 'w', encoding='utf-8') as handle:
        json.dump(raw_config, handle, indent=2)
    _remove_stale(files)
    env = dict(os.environ, PYTHONPATH=files.lib)
    with open(files.log, 'ab') as log:
        # A session of its own: the service outlives the module and ignores the task's signals.
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, '-m', ENTRY_POINT, '--config', files.config, '--pidfile', files.pidfile, '--state-file', files.state],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True, close_fds=True)

    def ready_state() -> dict[str, t.Any] | None:
        if process.poll() is not None:
            raise ServiceError(f'the emulator exited with status {process.returncode} before it was ready', log=_process.tail(files.log))
        return status(files)

    polled = poll_until(ready_state, lambda state: state is not None and state.get('config_digest') == config.digest(), timeout, POLL, clock)
    if polled.reached:
        return t.cast('dict[str, t.Any]', polled.last)
    _terminate(process.pid, 2.0, clock)
    raise ServiceError(f'the emulator was not ready within {timeout:g}s', log=_process.tail(files.log))


def stop(files: ServiceFiles, timeout: float, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Stop the service if it runs; returns whether there was one to stop. Its pidfile and state go either way."""
    pid = running_pid(files)
    if pid is not None:
        _terminate(pid, timeout, clock)
    _remove_stale(files)
    return pid is not None


def _remove_stale(files: ServiceFiles) -> None:
    for stale in (files.pidfile, files.state):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)


def _terminate(pid: int, timeout: float, clock: Clock) -> None:
    """SIGTERM, SIGKILL once ``timeout`` has passed; returns when the process is gone."""
    try:
        _process.terminate(pid, timeout, clock=clock)
    except _process.StillRunning as error:
        raise ServiceError(f'the emulator could not be stopped: {error}', pid=pid) from None


# --- the l4_emulator module's task ----------------------------------------------------------

ARGUMENT_SPEC: dict[str, t.Any] = dict(
    state=dict(type='str', choices=['started', 'stopped', 'query'], default='started'),
    config=dict(type='dict'),
    pidfile=dict(type='path', required=True),
    startup_timeout=dict(type='float', default=10.0),
    stop_timeout=dict(type='float', default=10.0),
)
REQUIRED_IF = [('state', 'started', ['config'])]


def _running(state: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    return dict(running=True, **{key: state[key] for key in ('pid', 'control_url', 'vips', 'config_digest')})


def _checked_config(raw: t.Any) -> EmulatorConfig:
    try:
        return parse_config(raw)
    except ConfigError as error:
        raise ServiceError(f'config.{error}', key=f'config.{error.path}', value=error.value) from None


def run(params: t.Mapping[str, t.Any], check_mode: bool = False, warn: t.Callable[[str], None] = lambda _message: None,
        clock: Clock = SYSTEM_CLOCK) -> dict[str, t.Any]:
    """The module's result: started (a running service with the same configuration is no change), stopped, or queried.

    Raises ServiceError with what to pass to ``fail_json`` beside the message.
    """
    for key in ('startup_timeout', 'stop_timeout'):
        try:
            seconds(key, params[key])
        except OptionError as error:
            raise ServiceError(str(error), **error.detail) from None
    files = ServiceFiles(params['pidfile'])
    current = status(files)
    if params['state'] == 'query':
        return dict(changed=False, **(_running(current) if current else {'running': False}))
    if params['state'] == 'stopped':
        if current is None and running_pid(files) is None:
            return dict(changed=False, running=False)
        if not check_mode:
            stop(files, params['stop_timeout'], clock)
        return dict(changed=True, running=False)
    config = _checked_config(params['config'])
    for warning in control_warnings(config):
        warn(f'config.{warning}')
    if current is not None and current.get('config_digest') == config.digest():
        return dict(changed=False, **_running(current))
    if check_mode:
        return dict(changed=True, running=True)
    try:
        stop(files, params['stop_timeout'], clock)
        return dict(changed=True, **_running(start(files, config, params['config'], params['startup_timeout'], clock)))
    except OSError as error:
        raise ServiceError(f'cannot start the emulator: {error}') from None
