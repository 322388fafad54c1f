"""Run real ansible-playbook against localhost and hand back each task's result."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
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
    command, env, results = _local_play(tmp_path, tasks, extra_vars, check)
    returncode, out = run_stopped_on_timeout(command, env, timeout)
    return _played(returncode, out, results)


def _local_play(tmp_path: pathlib.Path, tasks: list[dict[str, t.Any]], extra_vars: dict[str, t.Any] | None = None,
                check: bool = False) -> tuple[list[str], dict[str, str], pathlib.Path]:
    """The playbook of ``tasks`` written under ``tmp_path``: the command that runs it, its environment, where its results go."""
    play = [{'name': 'test', 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]
    playbook = tmp_path / f'playbook-{len(list(tmp_path.glob("playbook-*.yml")))}.yml'
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    results = playbook.with_suffix('.results.json')
    command = [str(PLAYBOOK_BIN), '-i', 'localhost,', '-c', 'local', '-e', f'ansible_python_interpreter={sys.executable}', str(playbook)]
    if extra_vars:
        command += ['-e', json.dumps(extra_vars)]
    if check:
        command.append('--check')
    return command, _playbook_env(tmp_path, results), results


def _played(returncode: int, out: str, results: pathlib.Path) -> PlaybookRun:
    output = json.loads(results.read_text()) if results.exists() else []
    return PlaybookRun(returncode, output, out)


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    # Its own session: at a timeout the whole group goes, module processes included, not ansible-playbook alone.
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    """ansible-playbook's exit status and its output (stdout, then stderr); at ``timeout``, its group stopped and TimeoutExpired raised."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        graceful = _process.terminate(proc.pid, 5.0, whole_group=True, reap=False)
        out, err = proc.communicate(timeout=10)
        expired.add_note(f'ansible-playbook (pid {proc.pid}) and its process group stopped {"by SIGTERM" if graceful else "only by SIGKILL"}; '
                         f'its output ended: {(out + err)[-2000:]}')
        raise
    return proc.returncode, out + err


def run_stopped_on_timeout(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``command`` to its end; one still running at ``timeout`` is stopped with every process it started, and TimeoutExpired raised."""
    with _spawn(command, env) as proc:
        try:
            return _finish(proc, timeout)
        finally:
            if proc.poll() is None:  # interrupted (KeyboardInterrupt, say): never leave it running
                _process.terminate(proc.pid, 5.0, whole_group=True, reap=False)


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
                            home: pathlib.Path | None = None, more_env: dict[str, str] | None = None,
                            playbook_bin: pathlib.Path = PLAYBOOK_BIN) -> PlaybookRun:
    """Run a playbook (a collection FQCN such as ``l4vip.rollout.rolling_deploy``, or a path) against an inventory.

    Each recorded task result carries ``started`` and ``ended`` (epoch seconds) from the test callback.
    ``home``: the ANSIBLE_HOME to run with (runs that must share the controller's claims share it).
    ``more_env``: more environment (a callback to enable, say). ``playbook_bin``: another ansible-core's ansible-playbook.
    """
    results = tmp_path / f'collection-playbook-{len(list(tmp_path.glob("collection-playbook-*.json")))}.json'
    command = [str(playbook_bin), '-i', str(inventory_path), str(playbook_name_or_path)]
    if extra_vars:
        command += ['-e', json.dumps(extra_vars)]
    if limit:
        command += ['--limit', limit]
    env = _playbook_env(tmp_path, results)
    if home is not None:
        env.update(ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / 'tmp'))
    env.update(more_env or {})
    returncode, out = run_stopped_on_timeout(command, env, timeout)
    return _played(returncode, out, results)


def pids_running(needle: str) -> list[int]:
    """Every process whose command line holds ``needle``, read from /proc (not from whatever started it), this one included."""
    wanted = os.fsencode(needle)
    # The collection itself never searches processes by command line, so this stays on the test side of the process helper.
    # pylint: disable-next=protected-access
    return sorted(pid for pid in _process._pids() if wanted in (_process._raw_cmdline(pid) or b''))


def module_running(name: str) -> bool:
    """Whether the module's AnsiballZ process runs now (a signal that its wait has begun)."""
    return bool(pids_running(f'AnsiballZ_{name}'))


class Background:
    """A playbook run started now and left to run, so the test can act on the L4 while the module waits; ``join`` ends it.

    Every one still running when its test ends is stopped by the suite's teardown (tests/conftest.py), which then fails
    the test: a run nobody joined is a process the test started and never stopped.
    """

    running: t.ClassVar[set[Background]] = set()

    def __init__(self, tmp_path: pathlib.Path, tasks: list[dict[str, t.Any]], timeout: float = 60) -> None:
        command, env, self.results = _local_play(tmp_path, tasks)
        self.timeout = timeout
        self.proc = _spawn(command, env)
        Background.running.add(self)

    def join(self) -> PlaybookRun:
        try:
            returncode, out = _finish(self.proc, self.timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f'the playbook did not finish within {self.timeout:g}s; stopped') from None
        finally:
            Background.running.discard(self)
        return _played(returncode, out, self.results)

    def stop(self) -> None:
        """Stop the run and every process it started, within a time limit."""
        Background.running.discard(self)
        with self.proc:
            if self.proc.poll() is None:
                _process.terminate(self.proc.pid, 5.0, whole_group=True, reap=False)
            self.proc.communicate(timeout=10)

    @classmethod
    def stop_all(cls) -> list[str]:
        """Stop every run still going; what each was (empty when none was left)."""
        left = [f'ansible-playbook pid {run.proc.pid}: {" ".join(run.proc.args[-1:])}' for run in list(cls.running)]
        for run in list(cls.running):
            run.stop()
        return left
