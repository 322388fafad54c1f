"""Whether a module that a test's playbook runs has taken its first look: events to wait for, not a guess at how long it takes to start.

Test-only, Linux only. Seen from the L4, where the L4 can count the questions put to it:
``questions_to`` (HAProxy's accepted connections, the opens of an access log) and
``emulator_questions`` (an in-process emulator's answers on its control API).

Seen from the module's own process, where nothing outside can count its looks: session_drain
reads /proc/net/tcp (a /proc file: no inotify event, no reader left behind), and HAProxy's
accepted connections count the traffic through its frontend too. The steps poll with
``_timing.poll_until``, which looks at once and only then sleeps until the next look, and they
sleep nowhere else; the kernel says where a process sleeps (/proc/<pid>/wchan), and Python's
``time.sleep`` sleeps in a nanosleep. So the module's Python process seen asleep in a nanosleep
has looked at least once (``between_looks``). That process is the interpreter that runs the
AnsiballZ file, not the ``/bin/sh -c '... AnsiballZ_<name>.py && sleep 0'`` that starts it: the
shell's line names the module before Python has even started.
"""

from __future__ import annotations

import contextlib
import os
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.tests.harness.ansible import pids_running
from ansible_collections.l4vip.rollout.tests.harness.emulator_thread import EmulatorThread
from ansible_collections.l4vip.rollout.tests.harness.file_opens import FileOpens
from ansible_collections.l4vip.rollout.tests.harness.real_parts import connections_counter


def questions_to(provider: str, endpoint: str, stack: contextlib.ExitStack) -> t.Callable[[], int]:
    """A count of the questions put to the L4 so far, seen from the L4's side: HAProxy's accepted
    connections (its runtime socket's included), or the opens of the access log (the provider opens it at each look)."""
    if provider == 'haproxy':
        return connections_counter(endpoint)
    if provider == 'access_log':
        return stack.enter_context(FileOpens(endpoint)).count
    raise ValueError(f'no count of the questions to a {provider!r} L4: pass asked=')


def emulator_questions(thread: EmulatorThread) -> t.Callable[[], int]:
    """A count of the requests an in-process emulator has answered on its control API (read on its own loop)."""
    return lambda: thread.call(lambda: thread.emulator.api_requests)


def module_pids(name: str, under: str | os.PathLike[str]) -> list[int]:
    """The Python processes that run module ``name`` from a file under ``under`` (the test's ANSIBLE_REMOTE_TMP, or a
    directory above it: no other test's module is found): the interpreter whose first argument is the AnsiballZ file."""
    script = f'AnsiballZ_{name}.py'
    prefix = os.path.join(os.fspath(under), '')

    def runs_it(argv: t.Sequence[str]) -> bool:
        return len(argv) > 1 and argv[1].startswith(prefix) and os.path.basename(argv[1]) == script
    return [pid for pid in pids_running(script) if _process.matches(pid, runs_it)]


def sleeps_in(pid: int) -> str:
    """Where the kernel says ``pid`` sleeps (its wchan: '0' while it runs); '' when it cannot be read (gone, say)."""
    try:
        with open(f'/proc/{pid}/wchan', encoding='ascii', errors='replace') as handle:
            return handle.read().strip()
    except OSError:
        return ''


def between_looks(name: str, under: str | os.PathLike[str]) -> tuple[bool, dict[int, str]]:
    """Whether a process of module ``name`` (see module_pids) sleeps in a nanosleep, which its poll loop does only
    after a look (see the top of this file); with where each one was seen, for wait_until's message."""
    seen = {pid: sleeps_in(pid) for pid in module_pids(name, under)}
    return any('nanosleep' in where for where in seen.values()), seen
