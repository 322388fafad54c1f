"""Benchmark 4: how the rollout's time and the controller's CPU grow with the fleet.

16, 32 and 64 embedded real servers (the collection's own, one daemon each on 127.0.1.x,
started and stopped by the roles with the argv the ``embedded`` lookup builds) behind the
embedded emulator: the harness's Fleet with embedded members. Deployed by
``l4vip.rollout.rolling_deploy`` in batches of 25 % (4 batches whatever the size), forks = the
batch size; the deploy is the fleet's (index.html) and ``sleep`` DEPLOY_SECONDS. The L4 is
benchmark 2's (interval 1 s, retry 1, rise 1). Ideal per batch = the slowest member's detection
+ stop + deploy + start + bring-up, as in benchmark 2. CPU: every process ansible-playbook ran;
the members' module runs are counted and timed per host by the interpreter wrapper
timed_python.sh (on real hosts that CPU is theirs). The L4 steps run once per batch in the
controller's own process: no module run.
"""

from __future__ import annotations

import os
import pathlib
import typing as t

import _common
from bench_rollout import DEPLOY_SECONDS, PROFILE, batch_span, inventory_with_timed_modules, member_record
from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.fleet import EMBEDDED, Fleet, FleetOptions

SIZES = (16, 32, 64)
SMOKE_SIZES = (8,)  # run.py --smoke
POLL_INTERVAL = 0.1  # member_wait's default: 16 members of a batch ask the one emulator at once
SERIAL = '25%'
GOAL = 1.15
CONTROLLER_CPU_GOAL = 0.3  # seconds of the controller's CPU per host
SUMMARY_TASK = 'Keep this host\'s summary as a fact, for later plays'


def rollout(workdir: pathlib.Path, size: int) -> dict[str, t.Any]:
    workdir.mkdir(parents=True)
    names = [f'web{n}' for n in range(1, size + 1)]
    modules = _common.ModuleRuns(workdir / 'interpreters')
    # Each member and the controller with an interpreter that counts its module runs; the fleet's deploy (index.html), and a while.
    options = FleetOptions(members=EMBEDDED, groups={'web': size}, profile=PROFILE, l4_extra={'poll_interval': POLL_INTERVAL},
                           host_vars={name: {'ansible_python_interpreter': modules.interpreter(name)} for name in names})
    os.environ.update(ANSIBLE_FORKS=str(max(1, size // 4)))
    with Fleet(workdir, options) as fleet:
        inventory = fleet.write_inventory()
        inventory_with_timed_modules(inventory, modules)
        with _common.measure() as measured:
            run = run_collection_playbook(workdir, 'l4vip.rollout.rolling_deploy', inventory,
                                          {'fleet_version': '2', 'fleet_deploy_seconds': DEPLOY_SECONDS, 'rolling_deploy_serial': SERIAL},
                                          timeout=900)
        if run.returncode != 0:
            raise RuntimeError(f'{size} servers: ansible-playbook failed (rc {run.returncode}):\n{run.stderr[-3000:]}')
        transitions = fleet.l4.transitions()
    members = {name: member_record(run, name, transitions) for name in names}
    batches = batch_members(run, names)
    ideals = [max(members[name].ideal for name in batch) for batch in batches]
    spans = [batch_span(run, batch) for batch in batches]
    ideal = sum(ideals)
    module_runs = _common.module_runs_summary(modules.read(), names)
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
