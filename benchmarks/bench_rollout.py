"""Benchmark 2: how close a rolling deploy of 8 servers gets to the L4's own limit.

Eight real nginx members behind the emulator, then behind a real HAProxy (interval 1 s,
retry 1, rise 1), deployed one at a time by ``l4vip.rollout.rolling_deploy``: in batches of one
(``rolling_deploy_serial: 1``), and on one slot (``rolling_deploy_max_out: 1``). The ideal is
what no rollout can beat: per member, the L4's actual detection (health check out -> the L4
marks the member down) + stop + deploy + start + bring-up (health check in -> the L4 binds
it), where stop, deploy and start are the user's own tasks as Ansible ran them. Beside it, the
same roles with the ``timer`` provider (the model's worst case instead of asking the L4) and the
reference sequence by hand with a fixed sleep of the worst case (playbooks/fixed_sleep.yml).

The roles' L4 steps (capacity guard, the waits, the L4's session count, the claims) run once per
batch on the controller, in its own process; every other step is a module run on the member.
Module runs are counted and timed per host by the interpreter wrapper timed_python.sh.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import typing as t

import yaml

import _common
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import down_window, parse_profile, up_window
from ansible_collections.l4vip.rollout.tests.harness.ansible import PlaybookRun, run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.fleet import EMULATOR, HAPROXY, POLL_INTERVAL, Fleet, FleetOptions
from ansible_collections.l4vip.rollout.tests.harness.haproxy_log import Transition

PROFILE = {'interval': 1.0, 'retry': 1, 'rise': 1, 'check_timeout': 0.5}
MEMBERS = 8
DEPLOY_SECONDS = 1.0
FIXED_SLEEP = pathlib.Path(__file__).resolve().parent / 'playbooks' / 'fixed_sleep.yml'
GOAL = 1.10
INCLUDES = ('ansible.builtin.include_tasks', 'ansible.builtin.include_role')

# The reference device (interval 10 s), for one more row: the same overhead against its real detection times.
NOTES_PROFILE = {'interval': 10.0, 'retry': 1, 'rise': 1, 'check_timeout': 3.0}
NOTES_MEMBERS = 4

# One at a time on slots: rolling_deploy_max_out 1, with the forks the playbook asks for (max_out + 1).
SLOT_MAX_OUT = 1
SLOT_FORKS = SLOT_MAX_OUT + 1

# (label, L4, how the rollout waits, profile, members); 'slots' waits as 'observed' does, one member out at a time on slots.
FULL_CASES = (
    ('roles, emulator provider', EMULATOR, 'observed', PROFILE, MEMBERS),
    ('roles, haproxy provider', HAPROXY, 'observed', PROFILE, MEMBERS),
    ('roles on slots (max_out 1), emulator provider', EMULATOR, 'slots', PROFILE, MEMBERS),
    ('roles on slots (max_out 1), haproxy provider', HAPROXY, 'slots', PROFILE, MEMBERS),
    ('roles, timer provider (emulator)', EMULATOR, 'timer', PROFILE, MEMBERS),
    ('roles, timer provider (HAProxy)', HAPROXY, 'timer', PROFILE, MEMBERS),
    ('fixed sleep by hand (emulator)', EMULATOR, 'fixed', PROFILE, MEMBERS),
    ('fixed sleep by hand (HAProxy)', HAPROXY, 'fixed', PROFILE, MEMBERS),
    ('roles, emulator provider, the reference device (interval 10 s), 4 servers', EMULATOR, 'observed', NOTES_PROFILE, NOTES_MEMBERS),
)
# run.py --smoke: does it run? Two members, one case of each kind at interval 1 s.
SMOKE_MEMBERS = 2
SMOKE_LABELS = ('roles, emulator provider', 'roles, haproxy provider', 'roles on slots (max_out 1), emulator provider',
                'roles, timer provider (emulator)', 'fixed sleep by hand (emulator)')
SMOKE_CASES = tuple((label, l4, mode, profile, SMOKE_MEMBERS) for label, l4, mode, profile, _count in FULL_CASES if label in SMOKE_LABELS)

# What each of the roles' tasks is, for the breakdown of where the time went: (step, task names start with).
# The L4 steps (guard, waits, the L4's sessions, release) run once per batch on the L4 host - the controller
# here, in its own process - and are recorded for the batch's first member. The per-member checks after a
# batch step ("... has marked the member down") run only when that member failed it.
STEPS = (
    ('capacity guard', ('Capacity guard',)),
    ('health check out', ('Health check out',)),
    ('wait down', ('Wait until the L4 has marked the batch down', "Sleep the worst case of the L4's mark-down")),
    # The roles: one module run (the stop command, then the server's own sessions until none is left); by hand: the stop, then wait_for.
    ('stop + server drain', ('Stop the web server', 'Wait until the web server no longer')),
    ('L4 drain', ('Wait until the L4 holds no session of the batch',)),
    ('deploy', ('Deploy | ',)),
    # The roles' l7_vip_deploy: the start and the health check back in are one task, counted as the start.
    ('start', ('Start the web server',)),
    ('health check in', ('Health check in',)),
    # The roles: the wait also releases the claims of the members bound again.
    ('wait up', ('Wait until the L4 has bound the batch again', "Sleep the worst case of the L4's mark-up")),
)
# The user's own stop as the ideal counts it: the task that runs the stop command (the roles: with the server's
# drain, in one module run; by hand: the command alone).
STOP = ('Stop the web server',)
# The task that put the health check back in service, whose result says when (changed_at); by hand, its own task.
BACK_IN = ('Health check in', 'Start the web server, then its health check in service')


def matches(entry: dict[str, t.Any], step: str) -> bool:
    return entry['task'].startswith(dict(STEPS)[step])


@dataclasses.dataclass
class Member:
    """One member's deploy, from the task records and the L4's own transitions (epoch seconds)."""

    name: str
    out_at: float
    down_at: float
    stop: float
    deploy: float
    start: float
    in_at: float
    up_at: float
    first_task: float
    last_task: float

    @property
    def detection(self) -> float:
        return self.down_at - self.out_at

    @property
    def bring_up(self) -> float:
        return self.up_at - self.in_at

    @property
    def ideal(self) -> float:
        return self.detection + self.stop + self.deploy + self.start + self.bring_up


def _entries(run: PlaybookRun, host: str) -> list[dict[str, t.Any]]:
    """The host's tasks that ran in its batch (an include is not a step of its own: its tasks are); the batch's
    L4 steps are among its first member's. The batch is the play in which the host's health check went out:
    rolling_deploy's plays before it (the check of every member, the plan, the prepare of every member's release
    with rolling_deploy_prepare: group) are not part of any batch."""
    mine = [e for e in run.output if e['host'] == host and e['status'] != 'skipped' and e['action'] not in INCLUDES]
    plays = {e['play'] for e in mine if e['task'].startswith(dict(STEPS)['health check out'])}
    if len(plays) != 1:
        raise RuntimeError(f'{host}: expected its health check out in one play, found it in {sorted(plays)}')
    return [e for e in mine if e['play'] in plays]


def _one(entries: list[dict[str, t.Any]], what: str, prefixes: tuple[str, ...]) -> dict[str, t.Any]:
    found = [e for e in entries if e['task'].startswith(prefixes)]
    if len(found) != 1:
        raise RuntimeError(f'expected one {what} task, found {[e["task"] for e in found]}')
    return found[0]


def _command_time(entry: dict[str, t.Any], edge: str = 'end') -> float:
    """When a command task's command started or ended (its own clock, not Ansible's result handling)."""
    return datetime.datetime.strptime(entry['result'][edge], '%Y-%m-%d %H:%M:%S.%f').timestamp()


def member_record(run: PlaybookRun, name: str, transitions: list[Transition], fixed: bool = False) -> Member:
    entries = _entries(run, name)
    out, back = _one(entries, 'health check out', dict(STEPS)['health check out']), _one(entries, 'health check in', BACK_IN)
    out_at = _command_time(out) if fixed else out['result']['changed_at']
    # The rename back happens between the command's start and end, and the L4 may check (and bind) in between.
    in_at = _command_time(back, 'start') if fixed else back['result']['changed_at']
    deploy = [e for e in entries if matches(e, 'deploy')]

    def first(state: str, after: float) -> float:
        found = [at for member, to, at in transitions if member == name and to == state and at > after]
        if not found:
            raise RuntimeError(f'{name}: the L4 never went {state} after {after:.3f}: {transitions}')
        return min(found)

    def duration(entry: dict[str, t.Any]) -> float:
        return entry['ended'] - entry['started']

    start = _one(entries, 'start', dict(STEPS)['start'])
    # Started and put back in one task: the start ends at the rename, where the bring-up begins.
    start_seconds = in_at - start['started'] if start is back else duration(start)
    return Member(name, out_at, first('down', out_at), duration(_one(entries, 'stop', STOP)), deploy[-1]['ended'] - deploy[0]['started'],
                  start_seconds, in_at, first('up', in_at), min(e['started'] for e in entries), max(e['ended'] for e in entries))


def batch_span(run: PlaybookRun, batch: t.Sequence[str]) -> float:
    """From the first task of the batch's deploy play to its last, over all its members."""
    entries = [e for host in batch for e in _entries(run, host)]
    return max(e['ended'] for e in entries) - min(e['started'] for e in entries)


def breakdown(run: PlaybookRun, batches: t.Sequence[t.Sequence[str]]) -> dict[str, float]:
    """Seconds per batch each step took on average (the longest of the batch's members for a member step), and the rest."""
    totals = {step: 0.0 for step, _prefixes in STEPS}
    spans = 0.0
    for batch in batches:
        spans += batch_span(run, batch)
        for step, prefixes in STEPS:
            totals[step] += max(sum(e['ended'] - e['started'] for e in _entries(run, host) if e['task'].startswith(prefixes)) for host in batch)
    per_batch = {step: total / len(batches) for step, total in totals.items()}
    per_batch['other tasks'] = spans / len(batches) - sum(per_batch.values())
    return per_batch


def inventory_with_timed_modules(inventory: pathlib.Path, modules: _common.ModuleRuns) -> None:
    """The controller (implicit localhost takes the group all's variables) gets its own timed interpreter too:
    a module run there shows as a controller module run. The members' are host variables (FleetOptions.host_vars)."""
    data = yaml.safe_load(inventory.read_text(encoding='utf-8'))
    data['all']['vars']['ansible_python_interpreter'] = modules.interpreter('localhost')
    inventory.write_text(yaml.safe_dump(data, sort_keys=False), encoding='utf-8')


def rollout(workdir: pathlib.Path, l4: str, mode: str, profile_values: t.Mapping[str, t.Any] | None = None, count: int = MEMBERS) -> dict[str, t.Any]:
    profile_values = dict(profile_values or PROFILE)
    profile = parse_profile(profile_values)
    names = [f'web{i}' for i in range(1, count + 1)]
    modules = _common.ModuleRuns(workdir / 'interpreters')
    host_vars: dict[str, dict[str, t.Any]] = {name: {'ansible_python_interpreter': modules.interpreter(name)} for name in names}
    if mode == 'timer':
        for name in names:
            host_vars[name]['l7_vip_deploy_l4'] = {'provider': 'timer', 'poll_interval': POLL_INTERVAL}
    options = FleetOptions(groups={'web': count}, l4=l4, profile=profile_values, host_vars=host_vars)
    with Fleet(workdir, options) as fleet:
        inventory = fleet.write_inventory()
        inventory_with_timed_modules(inventory, modules)
        playbook = str(FIXED_SLEEP) if mode == 'fixed' else 'l4vip.rollout.rolling_deploy'
        extra = {'fleet_version': '2', 'fleet_deploy_seconds': DEPLOY_SECONDS}
        forks = {}
        if mode == 'fixed':
            extra.update(fixed_sleep_down=down_window(profile).high, fixed_sleep_up=up_window(profile).high)
        if mode == 'slots':
            extra.update(rolling_deploy_max_out=SLOT_MAX_OUT)
            forks = {'ANSIBLE_FORKS': str(SLOT_FORKS)}
        with _common.environment(**forks), _common.measure() as measured:
            run = run_collection_playbook(workdir, playbook, inventory, extra, timeout=600)
        if run.returncode != 0:
            raise RuntimeError(f'{l4} {mode}: ansible-playbook failed (rc {run.returncode}):\n{run.stderr[-3000:]}')
        transitions = fleet.l4.transitions()
    members = [member_record(run, name, transitions, mode == 'fixed') for name in names]
    ideal = sum(member.ideal for member in members)  # one member out at a time
    # In batches, the sum of the batches' spans; on slots, where a member's first tasks overlap the last ones of the member
    # before it, the slot phase: from the first member's first task to the last member's last.
    batches = (max(m.last_task for m in members) - min(m.first_task for m in members) if mode == 'slots'
               else sum(member.last_task - member.first_task for member in members))
    module_runs = _common.module_runs_summary(modules.read(), names)
    return {
        'l4': l4, 'mode': mode, 'profile': profile_values, 'members': count, 'wall': measured.wall, 'batches': batches, 'ideal': ideal,
        'ratio_wall': measured.wall / ideal, 'ratio_batches': batches / ideal, 'own_cost_per_batch': (batches - ideal) / count,
        'cpu': measured.children_cpu, 'controller_cpu': measured.children_cpu - module_runs['member_module_cpu'], **module_runs,
        'detection': _common.describe([m.detection for m in members]), 'bring_up': _common.describe([m.bring_up for m in members]),
        'stop': _common.describe([m.stop for m in members]), 'deploy': _common.describe([m.deploy for m in members]),
        'start': _common.describe([m.start for m in members]),
        'breakdown': breakdown(run, [[name] for name in names]), 'records': [dataclasses.asdict(m) for m in members],
    }


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    cases_run = SMOKE_CASES if _common.smoke() else FULL_CASES
    os.environ['ANSIBLE_FORKS'] = str(max(count for *_rest, count in cases_run))  # the look for members left out asks all at once
    cases = []
    for number, (label, l4, mode, profile, count) in enumerate(cases_run):
        _common.log(f'rollout: {label}')
        case = rollout(workdir / f'case{number}', l4, mode, profile, count)
        case['label'] = label
        _common.log(f'rollout: {label}: {case["wall"]:.1f} s, ideal {case["ideal"]:.1f} s, ratio {case["ratio_wall"]:.3f}, '
                    f'own cost {case["own_cost_per_batch"]:.2f} s per batch, {_common.runs_text(case)} module runs per member, '
                    f'{case["controller_module_runs"]} on the controller')
        cases.append(case)
    return {'profile': PROFILE, 'members': cases[0]['members'], 'deploy_seconds': DEPLOY_SECONDS, 'poll_interval': POLL_INTERVAL, 'goal': GOAL,
            'cases': cases}


def render(result: dict[str, t.Any]) -> str:
    def own_cost(case: dict[str, t.Any]) -> float:
        return case.get('own_cost_per_batch', (case['batches'] - case['ideal']) / case['members'])

    def module_runs(case: dict[str, t.Any]) -> str:
        return _common.runs_text(case) if 'member_module_runs_min' in case else '-'

    rows = [(case['label'], _common.fmt(case['wall'], 1), _common.fmt(case['batches'], 1), _common.fmt(case['ideal'], 1),
             f'**{case["ratio_wall"]:.3f}**', f'{case["ratio_batches"]:.3f}', _common.fmt(own_cost(case), 2), module_runs(case),
             _common.fmt(case['controller_cpu'], 1), _common.verdict(case['ratio_wall'], result['goal']) if case['mode'] in ('observed', 'slots') else '-')
            for case in result['cases']]
    steps = list(result['cases'][0]['breakdown'])
    breakdown_rows = [(case['label'], *(_common.fmt(case['breakdown'].get(step, 0.0), 2) for step in steps)) for case in result['cases']]
    components = [(case['label'], *(f'{case[key]["median"]:.2f} ({case[key]["min"]:.2f}-{case[key]["max"]:.2f})'
                                    for key in ('detection', 'stop', 'deploy', 'start', 'bring_up'))) for case in result['cases']]
    return '\n\n'.join([
        f'## 2. Rollout efficiency: {result["members"]} servers, one at a time',
        f'Profile {result["profile"]}; {result["members"]} real nginx members; deploy = write the new index.html + '
        f'`sleep {result["deploy_seconds"]}`; member_wait polls every {result["poll_interval"]} s. '
        'Ideal = sum over batches of the L4\'s actual detection + stop + deploy + start + bring-up (the L4\'s transition '
        'times from its own records: the emulator\'s event log, HAProxy\'s log; stop, deploy and start as the tasks ran: the stop is '
        'the task that runs the stop command, which in the roles also waits until no client connection is left on the server; the '
        'start is the task that runs the start command, in the roles up to its rename of the health check back, in the same task). '
        f'Ratio = total ÷ ideal; goal ≤ {result["goal"]}. "total" is the whole ansible-playbook run (start-up, the look for '
        'members left out, the plan); "batches" is the sum of the batches\' own spans; "own cost" is what the collection adds to '
        'each batch, batch span − ideal, on average. On slots (`rolling_deploy_max_out: 1`, forks 2: one member out at a time, '
        'the next waiting for its slot in the capacity guard) a member\'s last tasks after the L4 bound it overlap the next '
        'member\'s first ones, and "batches" is the slot phase, from the first member\'s first task to the last member\'s last. '
        'The roles\' L4 steps (capacity guard, waits, the L4\'s session count, claims) '
        'run once per batch in the controller\'s own process; "module runs" are the module processes each member ran (counted by '
        'benchmarks/timed_python.sh, the look for members left out included). The members are reached by the local connection, '
        'so the stop with the server\'s drain (session_drain) runs in the controller\'s process as well; over SSH it is one module run '
        'more (benchmark 5). "controller CPU" is ansible-playbook\'s own, without the members\' module processes.',
        _common.table(('rollout', 'total s', 'batches s', 'ideal s', 'total ÷ ideal', 'batches ÷ ideal', 'own cost s/batch',
                       'module runs/member', 'controller CPU s', 'goal'), rows),
        'The ideal\'s parts per member, median (min-max), seconds:',
        _common.table(('rollout', 'detection', 'stop', 'deploy', 'start', 'bring-up'), components),
        'Where each batch\'s time went, seconds per batch (task durations as Ansible saw them; "wait down/up" include the L4\'s '
        'own detection and bring-up):',
        _common.table(('rollout', *steps), breakdown_rows),
    ])
