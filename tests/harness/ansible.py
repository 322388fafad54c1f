"""Run real ansible-playbook against localhost and hand back each task's result."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import typing as t

import yaml

from ansible_collections.l4vip.rollout.plugins.module_utils import _process

PLAYBOOK_BIN = pathlib.Path(sys.executable).parent / 'ansible-playbook'
CALLBACKS = pathlib.Path(__file__).resolve().parent / 'callback_plugins'


class PlaybookRun:
    def __init__(self, returncode: int, output: list[dict[str, t.Any]], stderr: str) -> None:
        self.returncode = returncode
        self.output = output
        self.stderr = stderr

    def task(self, name: str, host: str = 'localhost') -> dict[str, t.Any]:
        """The result of the task with this name on ``host`` (the last one when several ran)."""
        found = [entry['result'] for entry in self.output if entry['task'] == name and entry['host'] == host]
        if not found:
            raise KeyError(f'no task named {name!r} ran; stderr: {self.stderr[-2000:]}')
        return found[-1]


def run_playbook(tmp_path: pathlib.Path, tasks: list[dict[str, t.Any]], extra_vars: dict[str, t.Any] | None = None,
                 check: bool = False, timeout: float = 120) -> PlaybookRun:
    """Run ``tasks`` in one play on localhost (local connection, this interpreter) with the json callback."""
    play = [{'name': 'test', 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]
    playbook = tmp_path / f'playbook-{len(list(tmp_path.glob("playbook-*.yml")))}.yml'
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    results = playbook.with_suffix('.results.json')
    env = _playbook_env(tmp_path, results)
    command = [str(PLAYBOOK_BIN), '-i', 'localhost,', '-c', 'local', '-e', f'ansible_python_interpreter={sys.executable}', str(playbook)]
    if extra_vars:
        command += ['-e', json.dumps(extra_vars)]
    if check:
        command.append('--check')
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    output = json.loads(results.read_text()) if results.exists() else []
    return PlaybookRun(result.returncode, output, result.stdout + result.stderr)


def _playbook_env(tmp_path: pathlib.Path, results: pathlib.Path) -> dict[str, str]:
    """ansible-playbook's environment: its home and temp dirs under ``tmp_path``, results recorded to ``results``."""
    home = tmp_path / 'ansible-home'
    return dict(
        os.environ,
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / 'tmp'),
        ANSIBLE_REMOTE_TMP=str(home / 'remote-tmp'),
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        L4VIP_TEST_RESULTS=str(results),
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_HOST_KEY_CHECKING='0',
        ANSIBLE_RETRY_FILES_ENABLED='0',
    )


def run_collection_playbook(tmp_path: pathlib.Path, playbook_name_or_path: str | os.PathLike[str], inventory_path: str | os.PathLike[str],
                            extra_vars: dict[str, t.Any] | None = None, timeout: float = 300, limit: str | None = None,
                            home: pathlib.Path | None = None, more_env: dict[str, str] | None = None) -> PlaybookRun:
    """Run a playbook (a collection FQCN such as ``l4vip.rollout.rolling_deploy``, or a path) against an inventory.

    Each recorded task result carries ``started`` and ``ended`` (epoch seconds) from the test callback.
    ``home``: the ANSIBLE_HOME to run with (runs that must share the controller's claims share it).
    ``more_env``: more environment (a callback to enable, say).
    """
    results = tmp_path / f'collection-playbook-{len(list(tmp_path.glob("collection-playbook-*.json")))}.json'
    command = [str(PLAYBOOK_BIN), '-i', str(inventory_path), str(playbook_name_or_path)]
    if extra_vars:
        command += ['-e', json.dumps(extra_vars)]
    if limit:
        command += ['--limit', limit]
    env = _playbook_env(tmp_path, results)
    if home is not None:
        env.update(ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / 'tmp'))
    env.update(more_env or {})
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    output = json.loads(results.read_text()) if results.exists() else []
    return PlaybookRun(result.returncode, output, result.stdout + result.stderr)


def pids_running(needle: str) -> list[int]:
    """Every process whose command line holds ``needle``, read from /proc (not from whatever started it)."""
    return _process.pids_by_cmdline(needle)


def module_running(name: str) -> bool:
    """Whether the module's AnsiballZ process runs now (a signal that its wait has begun)."""
    return bool(pids_running(f'AnsiballZ_{name}'))


class Background:
    """A playbook run in a thread, so the test can act on the L4 while the module waits."""

    def __init__(self, tmp_path: pathlib.Path, tasks: list[dict[str, t.Any]]) -> None:
        self.result: PlaybookRun | None = None
        self.thread = threading.Thread(target=self._run, args=(tmp_path, tasks), daemon=True)
        self.thread.start()

    def _run(self, tmp_path: pathlib.Path, tasks: list[dict[str, t.Any]]) -> None:
        self.result = run_playbook(tmp_path, tasks)

    def join(self) -> PlaybookRun:
        self.thread.join(timeout=60)
        if self.result is None:
            raise AssertionError('the playbook did not finish within 60s')
        return self.result
