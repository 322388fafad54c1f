"""Every runnable shell example of the user docs runs exactly as printed.

The convention: in README.md or docs/*.md (not docs/plugins/, which is generated), a fenced
``sh``/``bash``/``shell`` block directly preceded by the line ``<!-- runnable -->`` is runnable.
Each of its commands runs with ``bash -c`` exactly as written, in order, from the repository
root, and must exit 0 without printing ``[WARNING]``, ``ERROR``, ``CRITICAL`` or "cleanup
failed". A command is one line, or several joined by a trailing backslash; blank lines and
lines that start with ``#`` are skipped, and a trailing ``# comment`` stays part of the line
(the shell ignores it). The commands run as a new user would run them: no ``ANSIBLE_*`` or
make variables from this test run, and ``HOME``, ``ANSIBLE_HOME`` and ``TMPDIR`` in the test's
own temporary directory, so that nothing lands in the real home directory. ``PATH`` is left as
it is.

``CHECKS`` holds further checks for single commands, keyed by the command as written without
its trailing comment; each is called with the finished run (``stdout`` holds stdout and stderr
interleaved) and the repository root.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pathlib
import re
import subprocess
import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.tests.harness.ansible import pids_running
from ansible_collections.l4vip.rollout.tests.harness.report_pixels import check_rehearsal_report

ROOT = pathlib.Path(__file__).resolve().parents[2]
MARKER = '<!-- runnable -->'
SHELL_LANGUAGES = frozenset({'sh', 'bash', 'shell'})
# Seconds one command may take: `make rehearsal` takes about a minute, more on a loaded machine.
TIMEOUT = 600
FORBIDDEN = ('[WARNING]', 'ERROR', 'CRITICAL', 'cleanup failed')
STOP_WITHIN = 120  # seconds a command that ran out of time gets to stop after SIGTERM

_FENCE = re.compile(r'^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)[^`]*$')
_HEREDOC = re.compile(r'<<-?\s*[\'"]?[A-Za-z_]')
_TRAILING_COMMENT = re.compile(r'\s+#[^\'"]*$')


class RunnableBlockError(ValueError):
    """A ``<!-- runnable -->`` marker that does not mark a shell block this test can run."""


@dataclasses.dataclass(frozen=True)
class RunnableBlock:
    source: str
    line: int  # the opening fence's, counted from 1
    commands: tuple[str, ...]
    also_at: tuple[str, ...] = ()  # where the same block is printed again (it runs once)

    @property
    def id(self) -> str:
        return '+'.join((f'{self.source}:{self.line}',) + self.also_at)


def command_key(command: str) -> str:
    """The command as written, without a trailing ``# comment`` (one with no quote in it)."""
    return _TRAILING_COMMENT.sub('', command.rstrip()).strip()


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _commands(body: list[str], indent: int, where: str) -> tuple[str, ...]:
    commands: list[str] = []
    pending: list[str] = []
    for line in body:
        line = line[indent:] if line[:indent].strip() == '' else line.lstrip()
        if not pending and (not line.strip() or line.lstrip().startswith('#')):
            continue
        if _HEREDOC.search(line):
            raise RunnableBlockError(f'{where}: a here-document cannot run line by line: {line.strip()!r}')
        pending.append(line.rstrip())
        if not pending[-1].endswith('\\'):
            commands.append('\n'.join(pending))
            pending = []
    if pending:
        raise RunnableBlockError(f'{where}: the block ends inside a continued line: {pending[-1]!r}')
    if not commands:
        raise RunnableBlockError(f'{where}: the runnable block holds no command')
    return tuple(commands)


def extract_runnable_blocks(text: str, source: str = '<markdown>') -> list[RunnableBlock]:
    """The runnable blocks of one markdown text, in order; RunnableBlockError for a marker that marks none.

    A marker line inside a fenced block is text, not a marker.
    """
    lines = text.splitlines()
    blocks: list[RunnableBlock] = []
    open_fence: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if open_fence is not None:
            if _closes(line, open_fence):
                open_fence = None
            index += 1
            continue
        fence = _FENCE.match(line)
        if line.strip() == MARKER:
            where = f'{source}:{index + 1}'
            opening = _FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
            if opening is None:
                raise RunnableBlockError(f'{where}: {MARKER} must be directly followed by a fenced block')
            language = opening.group('info').lower()
            if language not in SHELL_LANGUAGES:
                raise RunnableBlockError(f'{where}: {MARKER} marks a {language or "plain"!r} block; only '
                                         f'{", ".join(sorted(SHELL_LANGUAGES))} blocks can run')
            start = index + 1
            end = next((n for n in range(start + 1, len(lines)) if _closes(lines[n], opening.group('fence'))), None)
            if end is None:
                raise RunnableBlockError(f'{source}:{start + 1}: the runnable block is never closed')
            commands = _commands(lines[start + 1:end], len(opening.group('indent')), f'{source}:{start + 1}')
            blocks.append(RunnableBlock(source, start + 1, commands))
            index = end + 1
            continue
        if fence is not None:
            open_fence = fence.group('fence')
        index += 1
    return blocks


def user_docs(root: pathlib.Path) -> list[pathlib.Path]:
    """README.md and docs/*.md: the pages users read (docs/plugins/ is rendered from the plugins)."""
    return [path for path in [root / 'README.md', *sorted((root / 'docs').glob('*.md'))] if path.is_file()]


def collect_runnable_blocks(root: pathlib.Path) -> list[RunnableBlock]:
    """Every runnable block; one printed on several pages is one block that names every place (it runs once)."""
    blocks: dict[tuple[str, ...], RunnableBlock] = {}
    for path in user_docs(root):
        for block in extract_runnable_blocks(path.read_text(encoding='utf-8'), str(path.relative_to(root))):
            first = blocks.get(block.commands)
            blocks[block.commands] = block if first is None else dataclasses.replace(first, also_at=first.also_at + (block.id,))
    return list(blocks.values())


def _rehearsal_report_written(run: subprocess.CompletedProcess, root: pathlib.Path) -> None:
    """The main job's report, as a user gets it: the safe flow failed nothing, the naive flow failed requests, and the
    picture - rendered to pixels - shows them where they happened; nothing of the lab is left."""
    report_dir = root / 'rehearsal-report'
    assert (report_dir / 'report.json').is_file(), f'no {report_dir}/report.json after `make rehearsal`'
    assert str(report_dir / 'report.md') in run.stdout, f'`make rehearsal` does not name {report_dir}/report.md as its report'
    check_rehearsal_report(report_dir, members=4)
    assert not pathlib.Path('/tmp/l4vip-rehearsal').exists(), 'the lab\'s working directory was left behind'
    assert not pids_running('/tmp/l4vip-rehearsal'), 'a process of the lab is still running'


# Checks run after a command of a runnable block, keyed by command_key(command).
CHECKS: dict[str, t.Callable[[subprocess.CompletedProcess, pathlib.Path], None]] = {
    'make rehearsal': _rehearsal_report_written,
}


def _blocks_or_none() -> list[RunnableBlock]:
    try:
        return collect_runnable_blocks(ROOT)
    except RunnableBlockError:
        return []  # test_the_docs_have_runnable_blocks_and_make_rehearsal_is_one fails with the reason


def _user_env(tmp_path: pathlib.Path) -> dict[str, str]:
    """This test run's environment as a fresh shell of a new user would have it."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith('ANSIBLE_') and key not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES')}
    home = tmp_path / 'home'
    scratch = tmp_path / 'tmp'
    home.mkdir()
    scratch.mkdir()
    env.update(HOME=str(home), ANSIBLE_HOME=str(home / '.ansible'), TMPDIR=str(scratch))
    return env


def _run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``bash -c command`` from the repository root; on timeout, its whole process group gets SIGTERM, then SIGKILL."""
    with subprocess.Popen(['bash', '-c', command], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as process:
        try:
            output = process.communicate(timeout=TIMEOUT)[0]
        except subprocess.TimeoutExpired:
            # The rehearsal stops what it started on SIGTERM: STOP_WITHIN for all of the group to go, then SIGKILL.
            # Its output is read meanwhile, so that no process of it blocks on a full pipe. reap=False: bash is Popen's.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                stopping = pool.submit(_process.terminate, process.pid, STOP_WITHIN, whole_group=True, reap=False)
                output = process.communicate()[0]
                stopping.result()  # StillRunning when something outlived SIGKILL
            pytest.fail(f'{command!r} still ran after {TIMEOUT} s:\n{output[-4000:]}')
    return subprocess.CompletedProcess(process.args, process.returncode, output, None)


@pytest.mark.real
@pytest.mark.parametrize('block', _blocks_or_none(), ids=lambda block: block.id)
def test_runnable_block_runs_as_printed(block, tmp_path):
    env = _user_env(tmp_path)
    for command in block.commands:
        started = time.monotonic()
        run = _run(command, env)
        where = f'{block.id}: {command!r} (exit {run.returncode} after {time.monotonic() - started:.0f} s)'
        assert run.returncode == 0, f'{where}\n{run.stdout[-6000:]}'
        for word in FORBIDDEN:
            said = [line for line in run.stdout.splitlines() if word in line]
            assert not said, f'{where} printed {word!r}:\n' + '\n'.join(said[:20])
        check = CHECKS.get(command_key(command))
        if check is not None:
            check(run, ROOT)


def test_the_docs_have_runnable_blocks_and_make_rehearsal_is_one():
    blocks = collect_runnable_blocks(ROOT)
    assert blocks, f'no {MARKER} block in {", ".join(str(p.relative_to(ROOT)) for p in user_docs(ROOT))}'
    commands = {command_key(command) for block in blocks for command in block.commands}
    assert 'make rehearsal' in commands, f'`make rehearsal` is in no runnable block; the runnable commands: {sorted(commands)}'
    unused = sorted(set(CHECKS) - commands)
    assert not unused, f'CHECKS for commands no runnable block holds (renamed in the docs?): {unused}'
