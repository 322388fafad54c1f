"""Benchmark 1: how soon member_wait returns after the L4's own transition.

Two real nginx members stand behind two L4s at once: the emulator and a real HAProxy (mode tcp,
L7 check). For each provider one ansible-playbook alternates ``member_wait state=down`` and
``state=up`` for web1; while each task waits, this process fails or restores web1's health
check. On the controller's local connection member_wait's action plugin runs the wait in
ansible-playbook's worker process, with no module process (as the roles' L4 steps run). The
reaction is the step's ``ended_at`` less the L4's own transition time: the
emulator's event log, or the DOWN/UP line HAProxy sends to its log, stamped here on receipt.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import subprocess
import sys
import time
import typing as t

import yaml

import _common
from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import provider_argument_spec
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Profile
from ansible_collections.l4vip.rollout.tests.harness.ansible import PLAYBOOK_BIN, _playbook_env
from ansible_collections.l4vip.rollout.tests.harness.fleet import DaemonNginx, EmulatorL4, HAProxyL4
from ansible_collections.l4vip.rollout.tests.harness.real_parts import pid_alive, tail

PROFILE = Profile(interval=0.5, retry=1, rise=1, check_timeout=0.25)
# Each provider and the L4 whose own transition times are its ground truth.
PROVIDERS = {'emulator': 'emulator', 'http': 'emulator', 'haproxy': 'haproxy', 'access_log': 'haproxy'}
TRANSITIONS = 3 if _common.smoke() else 20  # of each direction, per provider
GOAL = 0.25  # median seconds from the L4's transition to the module's return
POLL_INTERVAL = provider_argument_spec()['poll_interval']['default']  # left at the module's default
WAIT_TIMEOUT = 10.0  # far beyond any transition: a wait that misses one fails rather than returning late
TOGGLE_DELAY = (0.1, 0.3)  # seconds from the module's first question to the toggle: a random phase against the L4's checks

POOL, MEMBER = 'web', 'web1'
MEMBERS = {'web1': ('127.0.2.11', 22011), 'web2': ('127.0.2.12', 22012)}
EMULATOR_VIP, EMULATOR_CONTROL, EMULATOR_CHECK_SOURCE = ('127.0.2.1', 22001), ('127.0.2.1', 22009), '127.0.2.8'
HAPROXY_VIP, HAPROXY_CHECK_SOURCE = ('127.0.2.2', 22002), '127.0.2.7'
SEED = 22000

MODULE_SCRIPT = b'/AnsiballZ_member_wait.py'

T = t.TypeVar('T')


class BenchmarkError(RuntimeError):
    """A trial could not be measured; the message says what was last seen."""


def until(what: str, probe: t.Callable[[], tuple[T | None, str]], timeout: float, every: float) -> T:
    """Call ``probe`` until it finds something (not None); raise naming ``what`` and the last thing seen."""
    deadline = time.monotonic() + timeout
    while True:
        found, seen = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise BenchmarkError(f'{what}: not within {timeout:g}s; last saw {seen}')
        time.sleep(every)


# --- the processes member_wait runs in ------------------------------------------------------------

def _start_time(pid: str) -> str:
    with open(f'/proc/{pid}/stat', 'rb') as handle:
        stat = handle.read()
    return stat[stat.rindex(b')') + 2:].split()[19].decode()


def module_processes(script_dir: pathlib.Path) -> set[tuple[int, str]]:
    """member_wait's module processes run from ``script_dir``, as (pid, start time): a reused pid is a new process."""
    prefix = os.fsencode(script_dir)
    found = set()
    for entry in os.scandir('/proc'):
        if not entry.name.isdigit():
            continue
        try:
            with open(f'/proc/{entry.name}/cmdline', 'rb') as handle:
                argv = handle.read().split(b'\0')
            # The interpreter running the script; not the chmod that Ansible runs on it first.
            if len(argv) > 1 and argv[1].startswith(prefix) and argv[1].endswith(MODULE_SCRIPT):
                found.add((int(entry.name), _start_time(entry.name)))
        except (OSError, IndexError):
            continue  # gone meanwhile
    return found


def worker_processes(parent: int) -> set[tuple[int, str]]:
    """The processes ansible-playbook (``parent``) forked: one worker per task. On the controller's local connection
    member_wait's action plugin runs the wait in the worker itself, with no module process
    (plugins/plugin_utils/_in_process.py)."""
    found = set()
    for entry in os.scandir('/proc'):
        if not entry.name.isdigit():
            continue
        try:
            with open(f'/proc/{entry.name}/stat', 'rb') as handle:
                stat = handle.read()
            fields = stat[stat.rindex(b')') + 2:].split()
            if int(fields[1]) == parent:
                found.add((int(entry.name), fields[19].decode()))
        except (OSError, IndexError, ValueError):
            continue
    return found


def step_processes(playbook: Playbook) -> set[tuple[int, str]]:
    """Where a member_wait task may run: its module process, or the worker that runs it in-process."""
    return module_processes(playbook.script_dir) | worker_processes(playbook.proc.pid)


class Playbook:
    """One ansible-playbook of member_wait tasks, run in its own session so that it can be stopped whole."""

    def __init__(self, workdir: pathlib.Path, tasks: list[dict[str, t.Any]]) -> None:
        self.workdir = workdir
        self.tasks = tasks
        self.results_path = workdir / 'results.json'
        self.output_path = workdir / 'ansible.out'
        self.env = _playbook_env(workdir, self.results_path)
        # Where this run's modules are copied (ANSIBLE_REMOTE_TMP): no one else's member_wait is found there.
        self.script_dir = pathlib.Path(self.env['ANSIBLE_REMOTE_TMP'])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True)
        playbook = self.workdir / 'playbook.yml'
        playbook.write_text(yaml.safe_dump([{'name': 'reaction', 'hosts': 'localhost', 'gather_facts': False, 'tasks': self.tasks}],
                                           sort_keys=False))
        command = [str(PLAYBOOK_BIN), '-i', 'localhost,', '-c', 'local', '-e', f'ansible_python_interpreter={sys.executable}', str(playbook)]
        with open(self.output_path, 'wb') as output:
            # pylint: disable-next=consider-using-with  # lives until finish() or stop()
            self.proc = subprocess.Popen(command, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    def exited(self) -> str | None:
        """Once ansible-playbook has exited, why: the failed task and its message, or the end of its output."""
        if self.proc is None or self.proc.poll() is None:
            return None
        records = json.loads(self.results_path.read_text()) if self.results_path.exists() else []
        failed = [f"task {record['task']!r} failed: {record['result'].get('msg')}" for record in records if record['result']['failed']]
        return f'ansible-playbook exited with {self.proc.returncode}: ' + ('; '.join(failed) or f'\n{tail(self.output_path, 25)}')

    def finish(self, timeout: float) -> list[dict[str, t.Any]]:
        """Wait for the end; every task's record (result, and `ended` as Ansible saw it)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise BenchmarkError(f'ansible-playbook still running {timeout:g}s after its last task:\n{tail(self.output_path)}') from None
        if self.proc.returncode != 0 or not self.results_path.exists():
            raise BenchmarkError(self.exited())
        return json.loads(self.results_path.read_text())

    def stop(self) -> None:
        """SIGTERM the session, SIGKILL what is left after 5 s; nothing when it has already ended."""
        if self.proc is None or self.proc.poll() is not None:
            return
        # reap=False: ansible-playbook's exit status is the Popen's, collected just after.
        _process.terminate(self.proc.pid, 5.0, kill_timeout=5.0, whole_group=True, reap=False)
        self.proc.wait(5)


# --- the lab: two nginx members behind both L4s ----------------------------------------------------

class Lab:
    """web1 and web2 (fleet.DaemonNginx) behind fleet's EmulatorL4 and HAProxyL4 at once, both built from PROFILE."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.members = [DaemonNginx(name, address, port, workdir / name) for name, (address, port) in MEMBERS.items()]
        groups, profile = {POOL: self.members}, PROFILE.as_dict()
        self.emulator = EmulatorL4(groups, profile, EMULATOR_CHECK_SOURCE, vip_address=EMULATOR_VIP[0], vip_ports=[EMULATOR_VIP[1]],
                                   control=EMULATOR_CONTROL, seed=SEED)
        self.haproxy = HAProxyL4(workdir / 'haproxy', groups, profile, HAPROXY_CHECK_SOURCE, frontend=HAPROXY_VIP)
        self._started: list[t.Any] = []  # stopped on stop(), last first

    def start(self) -> None:
        for part in [*self.members, self.haproxy, self.emulator]:
            self._started.append(part)
            part.start()
        self.wait_all_up()

    @property
    def web1(self) -> DaemonNginx:
        return self.members[0]

    def wait_all_up(self) -> None:
        """Both L4s bind both members, and HAProxy needs `fall` failures to drop one (see HAProxy.unsettled)."""
        def emulator_bound() -> tuple[bool | None, str]:
            bound = self.emulator.bound(POOL)
            return (True if all(bound.values()) else None), f'emulator bindings {bound}'
        until('the emulator binds every member', emulator_bound, 5, 0.05)
        self.haproxy.haproxy.wait_settled(timeout=5)
        states = {name: self.haproxy.haproxy.member_state(name) for name in MEMBERS}
        if set(states.values()) != {'up'}:
            raise BenchmarkError(f'HAProxy settled with members not up: {states}')

    def l4_transitions(self, l4: str) -> list[tuple[float, str]]:
        """(epoch, 'down' | 'up') of web1's transitions, from the L4's own record, oldest first."""
        seen = (self.emulator if l4 == 'emulator' else self.haproxy).transitions()
        return [(transition.at, transition.to) for transition in seen if transition.member == MEMBER]

    def stop(self) -> None:
        """Stop every part started, the L4s first, also when one of them fails to stop; then raise the failures."""
        errors = []
        for part in self._started[::-1]:
            try:
                part.stop()
            except Exception as exc:  # pylint: disable=broad-exception-caught  # keep stopping the rest
                errors.append(f'{part!r}: {exc}')
        errors += [f'{member!r}: pid {pid} still alive' for member in self.members for pid in member.leftover_pids()]
        self._started = []
        if errors:
            raise BenchmarkError('stopping the lab:\n' + '\n'.join(errors))


def provider_options(provider: str, lab: Lab) -> dict[str, t.Any]:
    if provider == 'emulator':
        return dict(endpoint=lab.emulator.control_url, pool=POOL, member=MEMBER)
    if provider == 'http':
        # The emulator's REST API read as any REST API: `bound` is a JSON boolean, and matches() compares it as such.
        return dict(endpoint=f'{lab.emulator.control_url}/api/vips/{POOL}/members/{MEMBER}', query='bound', down_values=[False], up_values=[True])
    if provider == 'haproxy':
        return dict(endpoint=str(lab.haproxy.haproxy.socket_path), pool=POOL, member=MEMBER)
    return dict(endpoint=str(lab.web1.access_log_path), sources=[HAPROXY_CHECK_SOURCE])


# --- the trials --------------------------------------------------------------------------------

def wait_step_polling(playbook: Playbook, seen: set[tuple[int, str]], task: str) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
    """Until the task's wait sleeps between two questions to the L4: its start-up is over and its first answer was "not yet".

    The wait runs in a process that was not there before (``seen``): member_wait's module process or, as the
    action plugin runs it on the controller, the worker ansible-playbook forked for the task. Nothing else in
    either sleeps; the kernel names the sleep in /proc/<pid>/wchan. Returns (the sleeping process(es), every new one).
    """
    def probe() -> tuple[tuple[set[tuple[int, str]], set[tuple[int, str]]] | None, str]:
        if (exited := playbook.exited()) is not None:
            raise BenchmarkError(f'task {task!r} never ran: {exited}')
        new = step_processes(playbook) - seen
        wchan = {}
        for pid, started in new:
            try:
                wchan[(pid, started)] = pathlib.Path(f'/proc/{pid}/wchan').read_text(encoding='ascii')
            except OSError:
                wchan[(pid, started)] = 'gone'
        sleeping = {process for process, where in wchan.items() if 'nanosleep' in where}
        return ((sleeping, new) if sleeping else None), f'{len(seen)} processes before; new ones, wchan: {wchan}'
    # A scan of /proc costs about a millisecond of CPU, and the step's start-up takes far longer than 0.01 s.
    return until(f'task {task!r}: member_wait polling', probe, 60, 0.01)


def wait_step_gone(step: set[tuple[int, str]], task: str) -> None:
    def probe() -> tuple[bool | None, str]:
        alive = [pid for pid, _started in step if pid_alive(pid)]
        return (None if alive else True), f'pids {alive} alive'
    until(f'task {task!r}: member_wait ending', probe, WAIT_TIMEOUT + 10, 0.02)


def drive(playbook: Playbook, tasks: list[tuple[str, str]], lab: Lab, rng: random.Random) -> list[float]:
    """For each (name, state) task in turn: wait until its module polls, fail or restore web1's health check, wait for its end.

    Returns the epoch of each toggle.
    """
    toggled = []
    seen: set[tuple[int, str]] = set()
    for name, state in tasks:
        step, new = wait_step_polling(playbook, seen, name)
        seen |= new
        time.sleep(rng.uniform(*TOGGLE_DELAY))
        if state == 'down':
            lab.haproxy.haproxy.wait_settled(timeout=3)  # else HAProxy drops web1 on one failed check, the access log needs two
            lab.web1.disable_health_check()
        else:
            lab.web1.enable_health_check()
        toggled.append(time.time())
        wait_step_gone(step, name)
    return toggled


def measure_provider(provider: str, lab: Lab, workdir: pathlib.Path, rng: random.Random) -> dict[str, t.Any]:
    states = ['down', 'up'] * TRANSITIONS
    names = [f'{state} {number // 2 + 1}' for number, state in enumerate(states)]
    options = dict(provider=provider, timeout=WAIT_TIMEOUT, profile=PROFILE.as_dict(), **provider_options(provider, lab))
    tasks = [{'name': name, 'l4vip.rollout.member_wait': dict(options, state=state)} for name, state in zip(names, states)]
    playbook = Playbook(workdir / f'ansible-{provider}', tasks)
    try:
        playbook.start()
        toggled = drive(playbook, list(zip(names, states)), lab, rng)
        records = {record['task']: record for record in playbook.finish(timeout=60)}
    finally:
        playbook.stop()
    transitions = lab.l4_transitions(PROVIDERS[provider])
    trials = []
    for name, state, toggled_at in zip(names, states, toggled):
        record = records.get(name)
        if record is None:
            raise BenchmarkError(f'{provider}: no result for task {name!r}')
        result = record['result']
        if result['failed'] or result['bound'] is not (state == 'up'):
            raise BenchmarkError(f'{provider}: task {name!r} failed or ended with bound={result.get("bound")!r}: {result.get("msg")!r}')
        transition_at = next((at for at, to in transitions if to == state and at > toggled_at), None)
        if transition_at is None:
            raise BenchmarkError(f'{provider}: the L4 logged no {state} transition of {MEMBER} after the toggle at {toggled_at:.3f}; '
                                 f'its transitions: {transitions[-6:]}')
        if result['ended_at'] - result['elapsed'] > toggled_at:
            raise BenchmarkError(f'{provider}: task {name!r} began its wait after the toggle: it would time its start-up, not its reaction')
        trials.append({'state': state, 'reaction': result['ended_at'] - transition_at, 'task_end': record['ended'] - transition_at,
                       'detection': transition_at - toggled_at, 'polls': result['polls']})
    return {'l4': PROVIDERS[provider], 'trials': trials, **summarise(trials)}


def summarise(trials: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    directions = {'down': ['down'], 'up': ['up'], 'both': ['down', 'up']}
    return {figure: {direction: _common.describe([trial[figure] for trial in trials if trial['state'] in states])
                     for direction, states in directions.items()}
            for figure in ('reaction', 'task_end', 'detection')}


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    rng = random.Random(SEED)
    lab = Lab(workdir)
    providers = {}
    try:
        lab.start()
        for provider in PROVIDERS:
            _common.log(f'reaction: {provider}, {TRANSITIONS} down and {TRANSITIONS} up transitions')
            providers[provider] = measure_provider(provider, lab, workdir, rng)
            figures = providers[provider]['reaction']['both']
            _common.log(f'reaction: {provider}: median {figures["median"]:.3f} s, p95 {figures["p95"]:.3f} s')
    finally:
        lab.stop()
    return {'profile': PROFILE.as_dict(), 'poll_interval': POLL_INTERVAL, 'wait_timeout': WAIT_TIMEOUT, 'goal_median': GOAL,
            'transitions_per_direction': TRANSITIONS, 'providers': providers}


# --- RESULTS.md ----------------------------------------------------------------------------------

def render(result: dict[str, t.Any]) -> str:
    goal, profile = result['goal_median'], result['profile']
    rows = []
    for provider, figures in result['providers'].items():
        for direction in ('down', 'up', 'both'):
            reaction, task_end = figures['reaction'][direction], figures['task_end'][direction]
            rows.append([f'`{provider}`', direction, reaction['n'], *(_common.fmt(reaction[key]) for key in ('median', 'p95', 'min', 'max')),
                         _common.verdict(reaction['median'], goal), f'{_common.fmt(task_end["median"])} / {_common.fmt(task_end["p95"])}'])
    table = _common.table(['Provider', 'Direction', 'n', 'Median (s)', 'p95 (s)', 'Min (s)', 'Max (s)', f'Goal: median <= {goal:g} s',
                           'Task end median / p95 (s)'], rows)
    return '\n\n'.join([
        '## 1. Reaction: member_wait after the L4\'s own transition',
        table,
        f'L4 profile: interval {profile["interval"]:g} s, retry {profile["retry"]}, rise {profile["rise"]}, '
        f'check_timeout {profile["check_timeout"]:g} s. member_wait polls every {result["poll_interval"]:g} s (its default).',
        'Ground truth: for `emulator` and `http`, the `at` of web1\'s health transition in the emulator\'s event log (`/api/events`); '
        'for `haproxy` and `access_log`, the time HAProxy\'s own "Server web/web1 is DOWN/UP" log line arrived on a unix datagram socket.',
        'Method: two real nginx members stand behind the emulator and a real HAProxy (mode tcp, L7 check) at once. '
        f'For each provider one ansible-playbook runs {result["transitions_per_direction"]} pairs of `member_wait` state=down / state=up '
        'tasks for web1 on the controller (local connection: the action plugin runs the wait in ansible-playbook\'s worker, no module '
        'process); once a task\'s wait sleeps between two questions to the L4 (its start-up over), the benchmark waits 0.1-0.3 s '
        'and renames web1\'s health-check file away or back. '
        'Reaction is the step\'s `ended_at` minus the L4\'s first transition to the wanted state after the rename; every task must end '
        'with `bound` as wanted. "Task end" is the same from the end of the task as Ansible recorded it, its own result handling included.',
    ])
