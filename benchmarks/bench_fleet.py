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

Then the same 64 members on slots (``rolling_deploy_max_out: 16``), under live traffic through the
VIP: wall time against the slot limit (benchmarks/_slots.py; no prepare tasks here, so the
limit is the sum of the members' parts / 16), and the CPU per member against the floor - as
many bare ``ansible.builtin.ping`` tasks per host as a member ran module processes, on the same
inventory (the same interpreters), forks and strategy, right after the rollout. Once with forks
= max_out + 1 (the least the playbook's comment asks for), once with forks = 2 x max_out (a
member ready for each slot that frees while others are still on their way to the guard). First
with the claims where the roles keep them by default for this provider (in the emulator, a
versioned read-and-write over its API); then, for the figures, in a directory on the controller
(``l7_vip_deploy_claims_dir``, a file under an exclusive lock), as a user can set. A rollout
that fails is reported with its first failure, not left out. CPU per task from
benchmarks/callback_plugins/cpu_profile.py.
"""

from __future__ import annotations

import os
import pathlib
import time
import typing as t

import yaml

import _common
import _slots
from bench_rollout import DEPLOY_SECONDS, PROFILE, batch_span, inventory_with_timed_modules, member_record
from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.fleet import EMBEDDED, Fleet, FleetOptions
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

SIZES = (16, 32, 64)
SMOKE_SIZES = (8,)  # run.py --smoke
POLL_INTERVAL = 0.1  # member_wait's default: 16 members of a batch ask the one emulator at once
SERIAL = '25%'
GOAL = 1.15
CONTROLLER_CPU_GOAL = 0.3  # seconds of the controller's CPU per host
SUMMARY_TASK = 'Keep this host\'s summary as a fact, for later plays'
# On slots: 64 members, at most 16 out; forks as the playbook's comment asks at least (max_out + 1), and twice max_out.
SLOT_SIZE, SLOT_MAX_OUT = 64, 16
SMOKE_SLOT_SIZE, SMOKE_SLOT_MAX_OUT = 8, 2
# (where the claims are kept, forks): 'l4' the provider's own store (the emulator's, the roles' default for it),
# 'directory' l7_vip_deploy_claims_dir on the controller.
SLOT_CASES = (('l4', 'max_out+1'), ('directory', 'max_out+1'), ('directory', '2*max_out'))
CLAIMS = {'l4': 'in the emulator (the default)', 'directory': 'in a directory on the controller (l7_vip_deploy_claims_dir)'}
CPU_GOAL = 1.25  # CPU per member ÷ the floor's per host (as many bare pings as the member's module runs)


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


def ping_playbook(path: pathlib.Path, pings: int) -> pathlib.Path:
    """The floor: ``pings`` bare ansible.builtin.ping tasks for every member, in the deploy play's strategy."""
    play = [{'name': f'The floor: {pings} bare ping module runs per host', 'hosts': 'web', 'gather_facts': False, 'strategy': 'host_pinned',
             'tasks': [{'name': f'Ping {n}', 'ansible.builtin.ping': None} for n in range(1, pings + 1)]}]
    path.write_text(yaml.safe_dump(play, sort_keys=False), encoding='utf-8')
    return path


def first_failure(run: t.Any) -> dict[str, t.Any]:
    """What stopped a failed rollout: its first failed task, how many hosts failed, how many members finished."""
    failed = sorted((e for e in run.output if e['status'] == 'failed'), key=lambda e: e['ended'])
    done = {e['host'] for e in run.output if e['task'] == SUMMARY_TASK and e['status'] == 'ok'}
    first = failed[0] if failed else None
    return {'rc': run.returncode, 'first_failed_host': first and first['host'], 'first_failed_task': first and first['task'],
            'message': (first['result'].get('msg') if first else run.stderr[-500:]), 'failed_hosts': len({e['host'] for e in failed}),
            'members_done': len(done)}


def slot_rollout(workdir: pathlib.Path, size: int, max_out: int, forks: int, claims: str) -> dict[str, t.Any]:
    """The fleet on slots under traffic, then the ping floor on the same inventory; both profiled task by task."""
    workdir.mkdir(parents=True)
    names = [f'web{n}' for n in range(1, size + 1)]
    modules = _common.ModuleRuns(workdir / 'interpreters')
    claims_vars = {'l7_vip_deploy_claims_dir': str(workdir / 'claims')} if claims == 'directory' else {}
    options = FleetOptions(members=EMBEDDED, groups={'web': size}, profile=PROFILE, l4_extra={'poll_interval': POLL_INTERVAL},
                           host_vars={name: {'ansible_python_interpreter': modules.interpreter(name), **claims_vars} for name in names})
    more_env, cpu_file = _common.cpu_profile_env(workdir)
    with Fleet(workdir, options) as fleet, _common.environment(ANSIBLE_FORKS=str(forks)):
        inventory = fleet.write_inventory()
        inventory_with_timed_modules(inventory, modules)
        with TrafficThread(*fleet.vip('web'), **_slots.TRAFFIC) as traffic:
            traffic.wait_every_client_answered(_slots.ANSWERED_WITHIN)
            started = time.time()
            with _common.measure() as measured:
                run = run_collection_playbook(workdir, 'l4vip.rollout.rolling_deploy', inventory,
                                              {'fleet_version': '2', 'fleet_deploy_seconds': DEPLOY_SECONDS, 'rolling_deploy_max_out': max_out},
                                              timeout=900, more_env=more_env)
            ended = time.time()
            if run.returncode == 0:
                fleet.wait_all_bound()
                traffic.wait_every_client_answered(_slots.ANSWERED_WITHIN, since=ended)
            summary = traffic.stop()
        if run.returncode != 0:
            return {'size': size, 'max_out': max_out, 'forks': forks, 'claims': claims, 'wall': measured.wall, 'failure': first_failure(run),
                    'traffic': summary.as_dict(), 'failed_requests': summary.failed}
        transitions = fleet.l4.transitions()
        rollout_runs = modules.read()
        rollout_times = modules.read_times()
        module_runs = _common.module_runs_summary(rollout_runs, names)
        # The floor, on the same inventory (the same timed interpreters: their counts go on from the rollout's).
        pings = max(1, round(module_runs['member_module_runs_per_host']))
        ping_env, ping_cpu_file = _common.cpu_profile_env(workdir)
        with _common.measure() as floor:
            ping_run = run_collection_playbook(workdir, ping_playbook(workdir / 'ping.yml', pings), inventory, timeout=900, more_env=ping_env)
        if ping_run.returncode != 0:
            raise RuntimeError(f'the ping floor failed (rc {ping_run.returncode}):\n{ping_run.stderr[-3000:]}')
    ping_runs = {host: (cpu - rollout_runs.get(host, (0.0, 0))[0], runs - rollout_runs.get(host, (0.0, 0))[1])
                 for host, (cpu, runs) in modules.read().items()}
    ping_summary = _common.module_runs_summary(ping_runs, names)
    if ping_summary['member_module_runs_min'] != pings or ping_summary['member_module_runs_max'] != pings:
        raise RuntimeError(f'the floor ran {_common.runs_text(ping_summary)} pings per host, not {pings}')
    analysis = _slots.analyse(run, names, transitions, max_out, started, ended)
    rows = _common.task_profile(run.output, names, rollout_times)
    ping_rows = _common.task_profile(ping_run.output, names, modules.read_times())  # each run placed in the task it fell in
    main = _common.read_cpu_profile(cpu_file)['main']
    ping_main = _common.read_cpu_profile(ping_cpu_file)['main']
    cpu_per_host = measured.children_cpu / size
    floor_per_host = floor.children_cpu / size
    return {
        'size': size, 'max_out': max_out, 'forks': forks, 'claims': claims, **analysis,
        'cpu': measured.children_cpu, 'cpu_per_host': cpu_per_host, 'module_cpu_per_host': module_runs['member_module_cpu_per_host'],
        'controller_cpu_per_host': (measured.children_cpu - module_runs['member_module_cpu']) / size, **module_runs,
        'emulator_cpu': measured.own_cpu, 'profile': _common.profile_summary(rows, size, measured.children_cpu, main), 'tasks': rows,
        'pings': pings, 'floor_wall': floor.wall, 'floor_cpu_per_host': floor_per_host,
        'floor_module_cpu_per_host': ping_summary['member_module_cpu_per_host'],
        'floor_profile': _common.profile_summary(ping_rows, size, floor.children_cpu, ping_main), 'floor_tasks': ping_rows,
        'cpu_ratio': cpu_per_host / floor_per_host,
        'traffic': summary.as_dict(), 'failed_requests': summary.failed,
    }


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    sizes = []
    for size in SMOKE_SIZES if _common.smoke() else SIZES:
        _common.log(f'fleet: {size} servers')
        case = rollout(workdir / f'fleet{size}', size)
        _common.log(f'fleet: {size} servers: {case["wall"]:.1f} s, ideal {case["ideal"]:.1f} s, ratio {case["ratio"]:.3f}, '
                    f'own cost {case["own_cost_per_batch"]:.2f} s per batch, controller CPU {case["controller_cpu_per_host"]:.2f} s/host, '
                    f'{_common.runs_text(case)} module runs per member, {case["controller_module_runs"]} on the controller')
        sizes.append(case)
    slot_size, max_out = (SMOKE_SLOT_SIZE, SMOKE_SLOT_MAX_OUT) if _common.smoke() else (SLOT_SIZE, SLOT_MAX_OUT)
    slots = []
    for claims, forks_of in SLOT_CASES:
        forks = max_out + 1 if forks_of == 'max_out+1' else 2 * max_out
        _common.log(f'fleet: {slot_size} servers on slots, max_out {max_out}, forks {forks}, claims {CLAIMS[claims]}')
        case = slot_rollout(workdir / f'slots{slot_size}-forks{forks}-{claims}', slot_size, max_out, forks, claims)
        slots.append(case)
        if 'failure' in case:
            _common.log(f'fleet: {slot_size} servers on slots, forks {forks}, claims {claims}: the rollout FAILED after {case["wall"]:.1f} s: '
                        f'{case["failure"]}; {case["failed_requests"]} failed requests of {case["traffic"]["total"]}')
            continue
        _common.log(f'fleet: {slot_size} servers on slots, forks {forks}: {case["wall"]:.1f} s, slot limit {case["limit"]:.1f} s, ratio '
                    f'{case["ratio_limit"]:.3f}, most out at once {case["most_out"]}; CPU {case["cpu_per_host"]:.2f} s/member against '
                    f'{case["floor_cpu_per_host"]:.2f} s for {case["pings"]} pings ({case["cpu_ratio"]:.3f}); {_common.runs_text(case)} module '
                    f'runs per member; {case["failed_requests"]} failed requests of {case["traffic"]["total"]}')
    return {'profile': PROFILE, 'serial': SERIAL, 'deploy_seconds': DEPLOY_SECONDS, 'poll_interval': POLL_INTERVAL, 'goal': GOAL,
            'controller_cpu_goal': CONTROLLER_CPU_GOAL, 'sizes': sizes, 'slot_goal': _slots.GOAL_LIMIT, 'cpu_goal': CPU_GOAL,
            'traffic': _slots.TRAFFIC, 'slots': slots}


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
    sections = [
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
    ]
    if result.get('slots'):
        sections.append(render_slots(result))
    return '\n\n'.join(sections)


def render_slots(result: dict[str, t.Any]) -> str:
    every = result['slots']
    slots = [case for case in every if 'failure' not in case]  # the rollouts that went through, with figures
    first = slots[0] if slots else every[0]

    def label(case: dict[str, t.Any]) -> str:
        return f'{case["forks"]}, claims {CLAIMS[case.get("claims", "l4")]}'

    def goals(case: dict[str, t.Any]) -> str:
        failed = '; NOT met: failed requests' if case['failed_requests'] else ''
        return (f'wall {_common.verdict(case["ratio_limit"], result["slot_goal"])}, CPU {_common.verdict(case["cpu_ratio"], result["cpu_goal"])}'
                f'{failed}')

    def row(case: dict[str, t.Any]) -> tuple[t.Any, ...]:
        if 'failure' in case:
            failure = case['failure']
            return (label(case), _common.fmt(case['wall'], 1), *(['-'] * 8), f'{case["failed_requests"]} of {case["traffic"]["total"]:,}',
                    f'NOT met: the rollout failed (rc {failure["rc"]}) at {failure["first_failed_host"]}\'s "{failure["first_failed_task"]}": '
                    f'{failure["message"]}; {failure["members_done"]} members done, {failure["failed_hosts"]} hosts failed')
        return (label(case), _common.fmt(case['wall'], 1), _common.fmt(case['parts'], 1), _common.fmt(case['limit'], 1),
                f'**{case["ratio_limit"]:.3f}**', _slots.most_out_text(case), _common.fmt(case['cpu_per_host'], 2),
                f'{_common.fmt(case["floor_cpu_per_host"], 2)} ({case["pings"]} pings)', f'**{case["cpu_ratio"]:.3f}**',
                f'{_common.runs_text(case)} ({case["profile"]["module_runs_placed_per_host"]:.1f} placed in tasks)',
                f'{case["failed_requests"]} of {case["traffic"]["total"]:,}', goals(case))
    rows = [row(case) for case in every]
    if not slots:
        return '\n\n'.join([f'## 4\'. The fleet of {first["size"]} on slots: `rolling_deploy_max_out: {first["max_out"]}`',
                            _common.table(('forks, claims', 'wall s', 'Σ parts s', 'slot limit s', 'wall ÷ slot limit', 'most out at once',
                                           'CPU s/member', 'floor CPU s/host', 'CPU ÷ floor', 'module runs/member', 'failed requests', 'goals'),
                                          rows)])
    phase_names = list(first['phases'])
    phase_rows = [(label(case), _common.fmt(case['wall'], 1), *(_common.fmt(case['phases'][name], 1) for name in phase_names),
                   _common.fmt(case['parts'] / case['max_out'], 1), _common.fmt(case['windows'] / case['max_out'], 1)) for case in slots]
    window_rows = [(label(case), _slots.parts_text(case), _slots.median_or_dash(case['window']), _slots.median_or_dash(case['own_in_window']),
                    _slots.handover_text(case)) for case in slots]

    def cpu_row(name: str, total: float, profile: dict[str, t.Any]) -> tuple[t.Any, ...]:
        return (name, _common.fmt(total, 2), _common.fmt(profile['worker_cpu_per_host'], 2), _common.fmt(profile['children_cpu_per_host'], 2),
                _common.fmt(profile['main_cpu_per_host'], 2), _common.fmt(profile['other_cpu_per_host'], 2),
                f'{profile["tasks_per_host"]:.0f} ({profile["skipped_per_host"]:.0f} skipped)', f'{profile["module_runs_placed_per_host"]:.1f}')
    cpu_rows = []
    for case in slots:
        cpu_rows.append(cpu_row(f'rollout, forks {label(case)}', case['cpu_per_host'], case['profile']))
        cpu_rows.append(cpu_row(f'floor: {case["pings"]} pings, forks {case["forks"]}', case['floor_cpu_per_host'], case['floor_profile']))
    size, max_out = first['size'], first['max_out']
    return '\n\n'.join([
        f'## 4\'. The fleet of {size} on slots: `rolling_deploy_max_out: {max_out}`',
        f'The same {size} embedded members, emulator and deploy as above, on slots (`rolling_deploy_max_out: {max_out}`), under live traffic '
        f'through the VIP ({result["traffic"]["keepalive_clients"]} keep-alive clients at one request per '
        f'{result["traffic"]["request_interval"]} s each and {result["traffic"]["new_connection_rate"]:g} new connections/s; every request '
        f'must succeed). Goals: wall ≤ {result["slot_goal"]} × the slot limit = Σ parts ÷ {max_out} (no prepare tasks here; a member\'s part '
        'is the emulator\'s own detection and bring-up from its event log and the user\'s stop, deploy and start as the tasks ran); CPU per '
        f'member ≤ {result["cpu_goal"]} × the floor\'s CPU per host. CPU is as above: user + system of every process ansible-playbook ran, '
        'controller and module processes, per member; the floor is a play of as many bare `ansible.builtin.ping` tasks per host as a member '
        'ran module processes (counted by benchmarks/timed_python.sh; "placed in tasks" counts the same runs by the task records they fall '
        'in), on the same inventory and interpreters, with the same forks and strategy (host_pinned), right after the rollout. Forks: '
        f'max_out + 1 = {max_out + 1} (the least the playbook\'s comment asks for) and 2 × max_out = {2 * max_out}. Claims: first where the '
        'roles keep them for this provider by default (in the emulator: a versioned read-and-write over its API, retried when another '
        'member wrote in between), then in a directory on the controller (`l7_vip_deploy_claims_dir`: a file under an exclusive lock), as '
        'a user can set.',
        _common.table(('forks, claims', 'wall s', 'Σ parts s', 'slot limit s', 'wall ÷ slot limit', 'most out at once (emulator)', 'CPU s/member',
                       'floor CPU s/host', 'CPU ÷ floor', 'module runs/member', 'failed requests', 'goals'), rows),
        'Where the wall time went, seconds; the last two columns are what the slot phase would take with every slot always busy '
        f'(Σ parts ÷ {max_out}, and Σ of the members\' actual windows ÷ {max_out}):',
        _common.table(('forks, claims', 'wall', *phase_names, 'Σ parts ÷ max_out', 'Σ windows ÷ max_out'), phase_rows),
        'One member, median (min-max), seconds: its part\'s pieces; its window (health check out → bound again); what the roles added '
        'inside the window; the handover (a member bound again → the next member\'s health check out):',
        _common.table(('forks, claims', 'part: detection, stop, deploy, start, bring-up', 'window', 'roles\' own time in the window', 'handover'),
                      window_rows),
        'CPU per host, seconds, by where it went (benchmarks/callback_plugins/cpu_profile.py): the tasks\' workers (templating, action '
        'plugins, the L4 steps in-process), the processes they ran (module runs, the start and stop commands), ansible-playbook\'s main '
        'process (strategy, includes, results, callbacks) and the rest (the workers\' fork and exit):',
        _common.table(('run', 'CPU s/host', 'task workers', 'their processes', 'main process', 'rest', 'tasks/host', 'module runs/host'), cpu_rows),
        f'The costliest tasks of the rollout with forks {label(first)}, per member:',
        _common.profile_table(first['tasks'], size),
        f'And of its floor ({first["pings"]} pings per host):',
        _common.profile_table(first['floor_tasks'], size, limit=4),
    ])
