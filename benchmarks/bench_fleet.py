"""Benchmark 4: how the rollout's time and the controller's CPU grow with the fleet.

16, 32 and 64 embedded real servers (the collection's own, one daemon each on 127.0.1.x)
behind the embedded emulator, deployed by ``l4vip.rollout.rolling_deploy`` in batches of 25 %
(4 batches whatever the size), forks = the batch size. The L4 is benchmark 2's (interval 1 s,
retry 1, rise 1). Ideal per batch = the slowest member's detection + stop + deploy + start +
bring-up, as in benchmark 2. CPU: every process ansible-playbook ran; the members' module runs
are counted and timed per host by the interpreter wrapper timed_python.sh (on real hosts that
CPU is theirs). The L4 steps run once per batch in the controller's own process: no module run.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import typing as t
import urllib.request

import yaml

import _common
from bench_rollout import DEPLOY_SECONDS, PROFILE, batch_span, member_record
from ansible_collections.l4vip.rollout.plugins.module_utils import _timing
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile, up_window
from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.emulator_thread import EmulatorThread
from ansible_collections.l4vip.rollout.tests.harness.fleet import deploy_tasks, emulator_transitions
from ansible_collections.l4vip.rollout.tests.harness.real_parts import wait_until

SIZES = (16, 32, 64)
SMOKE_SIZES = (8,)  # run.py --smoke
POLL_INTERVAL = 0.1  # member_wait's default: 16 members of a batch ask the one emulator at once
SERIAL = '25%'
GOAL = 1.15
CONTROLLER_CPU_GOAL = 0.3  # seconds of the controller's CPU per host
MEMBER_PORT = 24080
VIP = '127.0.1.250:24000'
CONTROL = '127.0.1.250:24009'
CHECK_SOURCE = '127.0.1.251'
# As the embedded lookup builds it: the collection's tree (.../ansible_collections/l4vip/rollout/plugins/module_utils) on PYTHONPATH.
COLLECTIONS_ROOT = pathlib.Path(_timing.__file__).parents[5]
REALSERVER = ['env', f'PYTHONPATH={COLLECTIONS_ROOT}', sys.executable, '-m', 'ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver']
SUMMARY_TASK = 'Keep this host\'s summary as a fact, for later plays'


def member_address(number: int) -> str:
    return f'127.0.1.{number}'


class EmbeddedFleet:
    """``size`` embedded real servers, daemonized as the roles start them, behind the emulator; all stopped on exit."""

    def __init__(self, workdir: pathlib.Path, size: int) -> None:
        self.workdir = workdir
        self.names = [f'web{n}' for n in range(1, size + 1)]
        self.emulator = EmulatorThread({
            'vips': [{'name': 'web', 'listen': VIP,
                      'members': [{'name': name, 'address': f'{member_address(n)}:{MEMBER_PORT}'} for n, name in enumerate(self.names, 1)]}],
            'profile': PROFILE, 'control': CONTROL, 'check_source': CHECK_SOURCE, 'seed': 1})

    def docroot(self, name: str) -> pathlib.Path:
        return self.workdir / name

    def pidfile(self, name: str) -> pathlib.Path:
        return self.workdir / f'{name}.pid'

    def start_command(self, number: int, name: str) -> list[str]:
        return [*REALSERVER, '--daemon', '--name', name, '--listen', f'{member_address(number)}:{MEMBER_PORT}',
                '--docroot', str(self.docroot(name)), '--pidfile', str(self.pidfile(name))]

    def stop_command(self, name: str) -> list[str]:
        return [*REALSERVER, '--stop', '--pidfile', str(self.pidfile(name))]

    def __enter__(self) -> EmbeddedFleet:
        try:
            for number, name in enumerate(self.names, 1):
                self.docroot(name).mkdir(parents=True)
                (self.docroot(name) / 'health_check.html').write_text('OK\n', encoding='utf-8')
                (self.docroot(name) / 'index.html').write_text(f'server={name} version=1\n', encoding='utf-8')
            self._run_all([self.start_command(number, name) for number, name in enumerate(self.names, 1)])
            self.emulator.start()
            bound_within = up_window(parse_profile(PROFILE)).high + 5.0
            wait_until(lambda: ((seen := self.bound()).count(True) == len(self.names), f'{seen.count(True)} of {len(seen)} bound'),
                       bound_within, 'every member bound')
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        with contextlib.suppress(Exception):
            self.emulator.stop()
        self._run_all([self.stop_command(name) for name in self.names if self.pidfile(name).exists()])
        left = [name for name in self.names if self.pidfile(name).exists()]
        if left:
            raise RuntimeError(f'embedded servers still running after --stop: {left}')

    def _run_all(self, commands: list[list[str]]) -> None:
        """Run the commands 16 at a time (each returns once its server listens, or has stopped); fail naming the first failure."""
        for first in range(0, len(commands), 16):
            running = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for command in commands[first:first + 16]]
            for command, process in zip(commands[first:first + 16], running):
                _out, err = process.communicate(timeout=30)
                if process.returncode != 0:
                    raise RuntimeError(f'{" ".join(command[-6:])}: exit {process.returncode}: {err.decode(errors="replace")[-500:]}')

    def api(self, path: str) -> t.Any:
        with urllib.request.urlopen(f'http://{CONTROL}{path}', timeout=5) as answer:
            return json.load(answer)

    def bound(self) -> list[bool]:
        return [member['bound'] for member in self.api('/api/vips/web')['members']]

    def write_inventory(self, deploy: pathlib.Path, modules: _common.ModuleRuns) -> pathlib.Path:
        """Each member and the controller (implicit localhost takes all's variables) with an interpreter that counts its module runs."""
        hosts = {}
        for number, name in enumerate(self.names, 1):
            address = member_address(number)
            hosts[name] = {
                'ansible_python_interpreter': modules.interpreter(name),
                'l7_vip_deploy_l4': {'provider': 'emulator', 'endpoint': f'http://{CONTROL}', 'pool': 'web', 'member': name,
                                     'poll_interval': POLL_INTERVAL},
                'l7_vip_deploy_health_check_path': str(self.docroot(name) / 'health_check.html'),
                'l7_vip_deploy_health_check_url': f'http://{address}:{MEMBER_PORT}/health_check.html',
                'l7_vip_deploy_service_address': address,
                'l7_vip_deploy_service_port': MEMBER_PORT,
                'l7_vip_deploy_stop_command': self.stop_command(name),
                'l7_vip_deploy_start_command': self.start_command(number, name),
                'l7_vip_deploy_deploy_tasks': str(deploy),
                'l7_vip_deploy_drain_timeout': 10,
                'fleet_docroot': str(self.docroot(name)),
            }
        inventory = {'all': {'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': modules.interpreter('localhost'),
                                      'ansible_pipelining': True,
                                      'rolling_deploy_profile': PROFILE},
                             'children': {'web': {'hosts': hosts}}}}
        path = self.workdir / 'inventory.yml'
        path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding='utf-8')
        return path


def rollout(workdir: pathlib.Path, size: int) -> dict[str, t.Any]:
    deploy = workdir / 'deploy.yml'
    workdir.mkdir(parents=True)
    deploy.write_text(deploy_tasks(DEPLOY_SECONDS), encoding='utf-8')
    modules = _common.ModuleRuns(workdir / 'interpreters')
    os.environ.update(ANSIBLE_FORKS=str(max(1, size // 4)))
    with EmbeddedFleet(workdir, size) as fleet:
        inventory = fleet.write_inventory(deploy, modules)
        with _common.measure() as measured:
            run = run_collection_playbook(workdir, 'l4vip.rollout.rolling_deploy', inventory,
                                          {'fleet_version': '2', 'rolling_deploy_serial': SERIAL}, timeout=900)
        if run.returncode != 0:
            raise RuntimeError(f'{size} servers: ansible-playbook failed (rc {run.returncode}):\n{run.stderr[-3000:]}')
        transitions = emulator_transitions(f'http://{CONTROL}')
    members = {name: member_record(run, name, transitions) for name in fleet.names}
    batches = batch_members(run, fleet.names)
    ideals = [max(members[name].ideal for name in batch) for batch in batches]
    spans = [batch_span(run, batch) for batch in batches]
    ideal = sum(ideals)
    module_runs = _common.module_runs_summary(modules.read(), fleet.names)
    controller_cpu = measured.children_cpu - module_runs['member_module_cpu']
    return {
        'size': size, 'batches': [len(batch) for batch in batches], 'wall': measured.wall, 'ideal': ideal, 'ratio': measured.wall / ideal,
        'batch_spans': sum(spans), 'own_cost_per_batch': (sum(spans) - ideal) / len(batches),
        'cpu': measured.children_cpu, 'cpu_per_host': measured.children_cpu / size, 'controller_cpu_per_host': controller_cpu / size,
        'module_cpu_per_host': module_runs['member_module_cpu_per_host'], **module_runs, 'emulator_cpu': measured.own_cpu,
        'detection_max': max(m.detection for m in members.values()), 'bring_up_max': max(m.bring_up for m in members.values()),
    }


def batch_members(run: t.Any, names: list[str]) -> list[list[str]]:
    """The batches as the roles saw them (ansible_play_batch in each member's summary), in order."""
    batches: list[list[str]] = []
    for entry in run.output:
        if entry['task'] == SUMMARY_TASK and entry['host'] in names:
            batch = entry['result']['ansible_facts']['l7_vip_deploy_summary']['batch']
            if batch not in batches:
                batches.append(batch)
    if sorted(name for batch in batches for name in batch) != sorted(names):
        raise RuntimeError(f'the batches {batches} do not cover the fleet {names}')
    return batches


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    sizes = []
    for size in SMOKE_SIZES if _common.smoke() else SIZES:
        _common.log(f'fleet: {size} servers')
        case = rollout(workdir / f'fleet{size}', size)
        _common.log(f'fleet: {size} servers: {case["wall"]:.1f} s, ideal {case["ideal"]:.1f} s, ratio {case["ratio"]:.3f}, '
                    f'own cost {case["own_cost_per_batch"]:.2f} s per batch, controller CPU {case["controller_cpu_per_host"]:.2f} s/host, '
                    f'{_common.runs_text(case)} module runs per member, {case["controller_module_runs"]} on the controller')
        sizes.append(case)
    return {'profile': PROFILE, 'serial': SERIAL, 'deploy_seconds': DEPLOY_SECONDS, 'poll_interval': POLL_INTERVAL, 'goal': GOAL,
            'controller_cpu_goal': CONTROLLER_CPU_GOAL, 'sizes': sizes}


def render(result: dict[str, t.Any]) -> str:
    sizes = result['sizes']

    def module_runs(case: dict[str, t.Any]) -> str:
        if 'member_module_runs_min' in case:
            return _common.runs_text(case)
        return f'{case["module_runs"] // case["size"]} (all hosts)'  # results from before the count per host

    def own_cost(case: dict[str, t.Any]) -> str:
        return _common.fmt(case['own_cost_per_batch'], 2) if 'own_cost_per_batch' in case else '-'

    rows = [(case['size'], '+'.join(str(n) for n in case['batches']), _common.fmt(case['wall'], 1), _common.fmt(case['ideal'], 1),
             f'**{case["ratio"]:.3f}**', own_cost(case), _common.fmt(case['cpu_per_host'], 2), _common.fmt(case['controller_cpu_per_host'], 2),
             _common.fmt(case['module_cpu_per_host'], 2), module_runs(case), case.get('controller_module_runs', '-'),
             _common.fmt(case.get('emulator_cpu', 0), 1),
             _common.verdict(case['ratio'], result['goal']) if case['size'] == max(c['size'] for c in sizes) else '-')
            for case in sizes]
    first, last = sizes[0], sizes[-1]
    growth = (f'From {first["size"]} to {last["size"]} servers ({last["size"] / first["size"]:.0f}x): wall ÷ ideal went from '
              f'{first["ratio"]:.3f} to {last["ratio"]:.3f}, the controller\'s CPU per host from {first["controller_cpu_per_host"]:.2f} s '
              f'to {last["controller_cpu_per_host"]:.2f} s, and all CPU per host from {first["cpu_per_host"]:.2f} s to {last["cpu_per_host"]:.2f} s.')
    cpu_goal = result.get('controller_cpu_goal', CONTROLLER_CPU_GOAL)
    controller_goal = (f'Controller CPU per host at {last["size"]}: {last["controller_cpu_per_host"]:.2f} s (goal ≤ {cpu_goal} s): '
                       f'{_common.verdict(last["controller_cpu_per_host"], cpu_goal)}.')
    return '\n\n'.join([
        f'## 4. Fleet scale: {", ".join(str(c["size"]) for c in sizes[:-1])} and {last["size"]} embedded servers in 25 % batches'
        if len(sizes) > 1 else f'## 4. Fleet scale: {last["size"]} embedded servers in 25 % batches',
        f'Profile {result["profile"]}; serial "{result["serial"]}" (4 batches), forks = the batch size; deploy = write index.html + '
        f'`sleep {result["deploy_seconds"]}`; member_wait polls every {result["poll_interval"]} s; '
        'the embedded emulator and servers, all on this machine. Ideal = per batch, the slowest '
        'member\'s detection + stop + deploy + start + bring-up (the L4\'s transitions from its event log; stop, deploy, start as the '
        f'tasks ran); goal ≤ {result["goal"]} at {last["size"]}. "own cost" = (sum of the batches\' spans − ideal) per batch. '
        'The L4 steps run once per batch in the controller\'s own process, and so does each member\'s stop with its server\'s drain '
        '(session_drain), as the members are reached by the local connection. CPU is user + system of every process ansible-playbook '
        'ran; "modules" is the part spent in the members\' module processes (counted and timed per host by benchmarks/timed_python.sh; '
        'on real hosts it is the hosts\'), "controller" the rest; "controller module runs" are module processes run for the controller '
        '(none when every L4 step runs in-process); the emulator (a thread of the benchmark) is counted apart.',
        _common.table(('servers', 'batches', 'wall s', 'ideal s', 'wall ÷ ideal', 'own cost s/batch', 'CPU s/host', 'controller CPU s/host',
                       'modules CPU s/host', 'module runs/member', 'controller module runs', 'emulator CPU s', 'goal'), rows),
        growth + ' ' + controller_goal,
    ])
