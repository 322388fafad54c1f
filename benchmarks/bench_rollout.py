"""Benchmark 2: how close a rolling deploy of 8 servers gets to the L4's own limit.

Eight real nginx members behind the emulator, then behind a real HAProxy (interval 1 s,
retry 1, rise 1), deployed one at a time by ``l4vip.rollout.rolling_deploy``. The ideal is
what no rollout can beat: per batch, the L4's actual detection (health check out -> the L4
marks the member down) + stop + deploy + start + bring-up (health check in -> the L4 binds
it), where stop, deploy and start are the user's own tasks as Ansible ran them. Beside it, the
same roles with the ``timer`` provider (the model's worst case instead of asking the L4) and the
notes' flow by hand with a fixed sleep of the worst case (playbooks/fixed_sleep.yml).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import typing as t

import _common
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import down_window, parse_profile, up_window
from ansible_collections.l4vip.rollout.tests.harness.ansible import PlaybookRun, run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.fleet import EMULATOR, HAPROXY, POLL_INTERVAL, Fleet, FleetOptions, deploy_tasks
from ansible_collections.l4vip.rollout.tests.harness.haproxy_log import Transition

PROFILE = {'interval': 1.0, 'retry': 1, 'rise': 1, 'check_timeout': 0.5}
MEMBERS = 8
DEPLOY_SECONDS = 1.0
FIXED_SLEEP = pathlib.Path(__file__).resolve().parent / 'playbooks' / 'fixed_sleep.yml'
GOAL = 1.10
INCLUDES = ('ansible.builtin.include_tasks', 'ansible.builtin.include_role')
# rolling_deploy's first play asks every member before the batches start: not part of any batch.
LOOK_FOR_LEFT_OUT = "Read the health check's state (L7-checked VIPs)"

# The notes' own device (interval 10 s), for one more row: the same overhead against its real detection times.
NOTES_PROFILE = {'interval': 10.0, 'retry': 1, 'rise': 1, 'check_timeout': 3.0}
NOTES_MEMBERS = 4

# (label, L4, how the rollout waits, profile, members)
CASES = (
    ('roles, emulator provider', EMULATOR, 'observed', PROFILE, MEMBERS),
    ('roles, haproxy provider', HAPROXY, 'observed', PROFILE, MEMBERS),
    ('roles, timer provider (emulator)', EMULATOR, 'timer', PROFILE, MEMBERS),
    ('roles, timer provider (HAProxy)', HAPROXY, 'timer', PROFILE, MEMBERS),
    ('fixed sleep by hand (emulator)', EMULATOR, 'fixed', PROFILE, MEMBERS),
    ('fixed sleep by hand (HAProxy)', HAPROXY, 'fixed', PROFILE, MEMBERS),
    ('roles, emulator provider, the notes\' device (interval 10 s), 4 servers', EMULATOR, 'observed', NOTES_PROFILE, NOTES_MEMBERS),
)

# What each of the roles' tasks is, for the breakdown of where the time went. The L4 steps (guard, waits, the L4's
# sessions, release) run once per batch on the L4 host - the controller here, in its own process - and are recorded
# for the batch's first member. The per-member checks after a batch step ("... the member down") run only on failure.
STEPS = (
    ('capacity guard', lambda e: e['task'].startswith('Capacity guard')),
    ('health check out', lambda e: e['task'].startswith('Health check out')),
    ('wait down', lambda e: e['task'].startswith('Wait until the L4 has marked the batch down') or e['task'].startswith('Sleep the worst case of the L4\'s mark-down')),
    # The roles: one module run (the stop command, then the server's own sessions); by hand: the stop, then wait_for.
    ('stop + server drain', lambda e: e['task'].startswith('Stop the web server') or e['task'].startswith('Wait until the web server no longer')),
    ('L4 drain', lambda e: e['task'].startswith('Wait until the L4 holds no session of the batch')),
    ('deploy', lambda e: e['task'].startswith('Deploy | ')),
    ('start', lambda e: e['task'].startswith('Start the web server')),
    ('health check in', lambda e: e['task'].startswith('Health check in')),
    ('wait up', lambda e: e['task'].startswith('Wait until the L4 has bound the batch again') or e['task'].startswith('Sleep the worst case of the L4\'s mark-up')),
    ('release claims', lambda e: e['task'].startswith('Release the claims')),
)
# The parts of the ideal that are the user's own tasks: the one that runs the stop command (the roles: with the server's
# drain, in one module run; by hand: the command alone), and the start command.
STOP = lambda e: e['task'].startswith('Stop the web server')  # noqa: E731
START = dict(STEPS)['start']


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
    """The host's tasks that ran in its batch (an include is not a step of its own: its tasks are)."""
    return [e for e in run.output if e['host'] == host and e['status'] != 'skipped' and e['action'] not in INCLUDES
            and e['task'] != LOOK_FOR_LEFT_OUT]


def _one(entries: list[dict[str, t.Any]], step: str, matcher: t.Callable[[dict[str, t.Any]], bool] | None = None) -> dict[str, t.Any]:
    matcher = matcher or dict(STEPS)[step]
    found = [e for e in entries if matcher(e)]
    if len(found) != 1:
        raise RuntimeError(f'expected one {step} task, found {[e["task"] for e in found]}')
    return found[0]


def _command_time(entry: dict[str, t.Any]) -> float:
    """When a command task's command ended (its own clock, not Ansible's result handling)."""
    return datetime.datetime.strptime(entry['result']['end'], '%Y-%m-%d %H:%M:%S.%f').timestamp()


def member_record(run: PlaybookRun, name: str, transitions: list[Transition], fixed: bool = False) -> Member:
    entries = _entries(run, name)
    out, back = _one(entries, 'health check out'), _one(entries, 'health check in')
    out_at = _command_time(out) if fixed else out['result']['changed_at']
    in_at = _command_time(back) if fixed else back['result']['changed_at']
    deploy = [e for e in entries if dict(STEPS)['deploy'](e)]

    def first(state: str, after: float) -> float:
        found = [at for member, to, at in transitions if member == name and to == state and at > after]
        if not found:
            raise RuntimeError(f'{name}: the L4 never went {state} after {after:.3f}: {transitions}')
        return min(found)

    def duration(entry: dict[str, t.Any]) -> float:
        return entry['ended'] - entry['started']

    return Member(name, out_at, first('down', out_at), duration(_one(entries, 'stop', STOP)), deploy[-1]['ended'] - deploy[0]['started'],
                  duration(_one(entries, 'start', START)), in_at, first('up', in_at), min(e['started'] for e in entries),
                  max(e['ended'] for e in entries))


def _breakdown(run: PlaybookRun, hosts: list[str]) -> dict[str, float]:
    """Seconds per batch each step took on average (a batch is one host here), and the rest."""
    totals = {step: 0.0 for step, _matcher in STEPS}
    spans = 0.0
    for host in hosts:
        deploy_play = _entries(run, host)
        spans += max(e['ended'] for e in deploy_play) - min(e['started'] for e in deploy_play)
        for step, matcher in STEPS:
            totals[step] += sum(e['ended'] - e['started'] for e in deploy_play if matcher(e))
    per_batch = {step: total / len(hosts) for step, total in totals.items()}
    per_batch['other tasks'] = spans / len(hosts) - sum(per_batch.values())
    return per_batch


def rollout(workdir: pathlib.Path, l4: str, mode: str, profile_values: t.Mapping[str, t.Any] | None = None, count: int = MEMBERS) -> dict[str, t.Any]:
    profile_values = dict(profile_values or PROFILE)
    profile = parse_profile(profile_values)
    names = [f'web{i}' for i in range(1, count + 1)]
    host_vars = {name: {'l7_vip_deploy_l4': {'provider': 'timer', 'poll_interval': POLL_INTERVAL}} for name in names} if mode == 'timer' else {}
    options = FleetOptions(groups={'web': count}, l4=l4, profile=profile_values, deploy_tasks=deploy_tasks(DEPLOY_SECONDS), host_vars=host_vars)
    with Fleet(workdir, options) as fleet:
        inventory = fleet.write_inventory()
        playbook = str(FIXED_SLEEP) if mode == 'fixed' else 'l4vip.rollout.rolling_deploy'
        extra = {'fleet_version': '2'}
        if mode == 'fixed':
            extra.update(fixed_sleep_down=down_window(profile).high, fixed_sleep_up=up_window(profile).high)
        with _common.measure() as measured:
            run = run_collection_playbook(workdir, playbook, inventory, extra, timeout=600)
        if run.returncode != 0:
            raise RuntimeError(f'{l4} {mode}: ansible-playbook failed (rc {run.returncode}):\n{run.stderr[-3000:]}')
        transitions = fleet.l4.transitions()
    members = [member_record(run, name, transitions, mode == 'fixed') for name in names]
    ideal = sum(member.ideal for member in members)  # one member per batch
    batches = sum(member.last_task - member.first_task for member in members)
    return {
        'l4': l4, 'mode': mode, 'profile': profile_values, 'members': count, 'wall': measured.wall, 'batches': batches, 'ideal': ideal,
        'ratio_wall': measured.wall / ideal, 'ratio_batches': batches / ideal, 'controller_cpu': measured.children_cpu,
        'detection': _common.describe([m.detection for m in members]), 'bring_up': _common.describe([m.bring_up for m in members]),
        'stop': _common.describe([m.stop for m in members]), 'deploy': _common.describe([m.deploy for m in members]),
        'start': _common.describe([m.start for m in members]),
        'breakdown': _breakdown(run, names), 'records': [dataclasses.asdict(m) for m in members],
    }


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    os.environ['ANSIBLE_FORKS'] = str(MEMBERS)  # the look for members left out asks all of them at once
    cases = []
    for number, (label, l4, mode, profile, count) in enumerate(CASES):
        _common.log(f'rollout: {label}')
        case = rollout(workdir / f'case{number}', l4, mode, profile, count)
        case['label'] = label
        _common.log(f'rollout: {label}: {case["wall"]:.1f} s, ideal {case["ideal"]:.1f} s, ratio {case["ratio_wall"]:.3f}')
        cases.append(case)
    return {'profile': PROFILE, 'members': MEMBERS, 'deploy_seconds': DEPLOY_SECONDS, 'poll_interval': POLL_INTERVAL, 'goal': GOAL, 'cases': cases}


def render(result: dict[str, t.Any]) -> str:
    rows = [(case['label'], _common.fmt(case['wall'], 1), _common.fmt(case['batches'], 1), _common.fmt(case['ideal'], 1),
             f'**{case["ratio_wall"]:.3f}**', f'{case["ratio_batches"]:.3f}', _common.fmt(case['controller_cpu'], 1),
             _common.verdict(case['ratio_wall'], result['goal']) if case['mode'] == 'observed' else '-')
            for case in result['cases']]
    steps = list(result['cases'][0]['breakdown'])
    breakdown = [(case['label'], *(_common.fmt(case['breakdown'][step], 2) for step in steps)) for case in result['cases']]
    components = [(case['label'], *(f'{case[key]["median"]:.2f} ({case[key]["min"]:.2f}-{case[key]["max"]:.2f})'
                                    for key in ('detection', 'stop', 'deploy', 'start', 'bring_up'))) for case in result['cases']]
    return '\n\n'.join([
        '## 2. Rollout efficiency: 8 servers, one at a time',
        f'Profile {result["profile"]}; {result["members"]} real nginx members; deploy = write the new index.html + '
        f'`sleep {result["deploy_seconds"]}`; member_wait polls every {result["poll_interval"]} s. '
        'Ideal = sum over batches of the L4\'s actual detection + stop + deploy + start + bring-up (the L4\'s transition '
        'times from its own records: the emulator\'s event log, HAProxy\'s log; stop, deploy and start as the tasks ran). '
        f'Ratio = total ÷ ideal; goal ≤ {result["goal"]}. "total" is the whole ansible-playbook run (start-up, the look for '
        'members left out, the plan); "batches" is the sum of the batches\' own spans.',
        _common.table(('rollout', 'total s', 'batches s', 'ideal s', 'total ÷ ideal', 'batches ÷ ideal', 'controller CPU s', 'goal'), rows),
        'The ideal\'s parts per member, median (min-max), seconds:',
        _common.table(('rollout', 'detection', 'stop', 'deploy', 'start', 'bring-up'), components),
        'Where each batch\'s time went, seconds per batch (task durations as Ansible saw them; "wait down/up" include the L4\'s '
        'own detection and bring-up):',
        _common.table(('rollout', *steps), breakdown),
    ])
