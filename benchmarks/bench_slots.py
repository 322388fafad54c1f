"""Benchmark 2': slots and pre-staging - 16 nginx members behind HAProxy, at most 4 out at once.

Sixteen real nginx members behind a real HAProxy (mode tcp, L7 check, interval 1 s, retry 1,
rise 1: benchmark 2's L4), deployed by ``l4vip.rollout.rolling_deploy`` under live traffic
through the VIP. Each member's release takes a 3 s prepare - a ``sleep 3`` standing for a
download and an unpack, which then writes the new index.html beside the docroot - and a 0.5 s
switch - a ``sleep 0.5`` standing for the rest of a switch, then the staged file renamed over
index.html (atomic). The same two tasks in every rollout, placed two ways:

- in 25 % batches (``rolling_deploy_serial: "25%"``, 4 batches of 4), both in the deploy tasks:
  every member is out of the VIP for the download, the unpack and the switch;
- on slots (``rolling_deploy_max_out: 4``) with ``rolling_deploy_prepare: group``: the first as
  the prepare tasks, which every member runs at once while all of them serve, before the first
  goes out; the deploy tasks hold only the switch.

Goals: the slots' wall time at most 0.6 x that of the batches in the same run, and at most 1.15
x the slot limit (benchmarks/_slots.py: the longest prepare + the sum of the members' parts / 4,
each part the L4's own detection and bring-up from HAProxy's log and the user's stop, switch and
start as the tasks ran). Every rollout with no failed request. The slots run with forks 16 (every
member prepares at once) and with forks 5 (max_out + 1, as the playbook's comment puts it).
CPU per task from benchmarks/callback_plugins/cpu_profile.py.
"""

from __future__ import annotations

import pathlib
import time
import typing as t

import yaml

import _common
import _slots
from bench_fleet import batch_members
from bench_rollout import PROFILE, inventory_with_timed_modules, member_record
from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.fleet import HAPROXY, Fleet, FleetOptions
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

MEMBERS = 16
MAX_OUT = 4
SERIAL = '25%'
PREPARE_SECONDS = 3.0
SWITCH_SECONDS = 0.5
GOAL_AGAINST_BATCHES = 0.6
GOAL_LIMIT = _slots.GOAL_LIMIT
VERSION = '2'
TRAFFIC, ANSWERED_WITHIN = _slots.TRAFFIC, _slots.ANSWERED_WITHIN
SMOKE_MEMBERS, SMOKE_MAX_OUT = 4, 1  # run.py --smoke: batches of one, one slot

# (key, label, forks, extra variables, prepare apart): forks 'members' is one per member (every member prepares at once),
# 'max_out+1' the least the playbook's comment asks for. The label's {members} and {max_out} are the run's.
CASES = (
    ('batches', '25 % batches, prepare and switch in the deploy tasks (out of the VIP)', 'members', {'rolling_deploy_serial': SERIAL}, False),
    ('slots', 'max_out {max_out}, prepare: group, forks {forks} (every member prepares at once)', 'members',
     {'rolling_deploy_max_out': 'max_out', 'rolling_deploy_prepare': 'group'}, True),
    ('slots-forks', 'max_out {max_out}, prepare: group, forks {forks} (max_out + 1)', 'max_out+1',
     {'rolling_deploy_max_out': 'max_out', 'rolling_deploy_prepare': 'group'}, True),
)


def _stage(prefix: str) -> dict[str, t.Any]:
    return {
        'name': f'{prefix} | download and unpack the release (a sleep of {PREPARE_SECONDS:g} s stands for both), staged beside the docroot',
        'ansible.builtin.command': {'argv': ['sh', '-c', 'sleep "$1" && printf "server=%s version=%s\\n" "$2" "$3" > "$4"', 'sh',
                                             '{{ bench_prepare_seconds }}', '{{ inventory_hostname }}', '{{ fleet_version }}',
                                             '{{ fleet_docroot }}/../staged.html']},
        'changed_when': True,
    }


SWITCH = {
    'name': f'Deploy | switch to the staged release (a sleep of {SWITCH_SECONDS:g} s, then index.html replaced by a rename)',
    'ansible.builtin.command': {'argv': ['sh', '-c', 'sleep "$1" && mv -f "$2" "$3"', 'sh', '{{ bench_switch_seconds }}',
                                         '{{ fleet_docroot }}/../staged.html', '{{ fleet_docroot }}/index.html']},
    'changed_when': True,
}


def tasks_file(tasks: list[dict[str, t.Any]]) -> str:
    return '---\n' + yaml.safe_dump(tasks, sort_keys=False, width=200)


def rollout(workdir: pathlib.Path, key: str, label: str, members: int, forks: int, extra: dict[str, t.Any], prepare_apart: bool,
            max_out: int) -> dict[str, t.Any]:
    workdir.mkdir(parents=True)
    names = [f'web{n}' for n in range(1, members + 1)]
    modules = _common.ModuleRuns(workdir / 'interpreters')
    prepare_file = workdir / 'prepare.yml'
    prepare_file.write_text(tasks_file([_stage('Prepare')]), encoding='utf-8')
    host_vars = {name: {'ansible_python_interpreter': modules.interpreter(name), 'bench_prepare_seconds': PREPARE_SECONDS,
                        'bench_switch_seconds': SWITCH_SECONDS, **({'l7_vip_deploy_prepare_tasks': str(prepare_file)} if prepare_apart else {})}
                 for name in names}
    deploy = tasks_file([SWITCH] if prepare_apart else [_stage('Deploy'), SWITCH])
    options = FleetOptions(groups={'web': members}, l4=HAPROXY, profile=PROFILE, host_vars=host_vars, deploy_tasks=deploy)
    more_env, cpu_file = _common.cpu_profile_env(workdir)
    with Fleet(workdir, options) as fleet, _common.environment(ANSIBLE_FORKS=str(forks)):
        inventory = fleet.write_inventory()
        inventory_with_timed_modules(inventory, modules)
        with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic:
            traffic.wait_every_client_answered(ANSWERED_WITHIN)  # every keep-alive client holds a session before the first member leaves
            started = time.time()
            with _common.measure() as measured:
                run = run_collection_playbook(workdir, 'l4vip.rollout.rolling_deploy', inventory, {'fleet_version': VERSION, **extra},
                                              timeout=900, more_env=more_env)
            ended = time.time()
            if run.returncode == 0:
                fleet.wait_all_bound()
                traffic.wait_every_client_answered(ANSWERED_WITHIN, since=ended)
            summary = traffic.stop()
        if run.returncode != 0:
            failed = [f'{e["host"]}: {e["task"]!r}: {e["result"].get("msg")}' for e in run.output if e['status'] == 'failed']
            raise RuntimeError(f'{label}: ansible-playbook failed (rc {run.returncode}); failed tasks: {failed}\n{run.stderr[-3000:]}')
        transitions = fleet.l4.transitions()
        served = {member.name: member.served_version() for member in fleet.members}
    wrong = {name: text for name, text in served.items() if text != f'server={name} version={VERSION}'}
    if wrong:
        raise RuntimeError(f'{label}: members not serving version {VERSION} after the rollout: {wrong}')
    analysis = _slots.analyse(run, names, transitions, max_out, started, ended)
    batches = batch_members(run, names)
    records = {name: member_record(run, name, transitions) for name in names}
    module_runs = _common.module_runs_summary(modules.read(), names)
    rows = _common.task_profile(run.output, names, modules.read_times())
    cpu = _common.read_cpu_profile(cpu_file)
    return {
        'key': key, 'label': label, 'members': members, 'forks': forks, 'extra': extra, 'prepare_apart': prepare_apart, **analysis,
        'batches': [len(batch) for batch in batches],
        'batch_ideal': sum(max(records[name].ideal for name in batch) for batch in batches),
        'cpu': measured.children_cpu, 'cpu_per_host': measured.children_cpu / members, 'main_cpu': cpu['main'],
        'controller_cpu': measured.children_cpu - module_runs['member_module_cpu'], **module_runs,
        'profile': _common.profile_summary(rows, members, measured.children_cpu, cpu['main']), 'tasks': rows,
        'traffic': summary.as_dict(), 'failed_requests': summary.failed,
    }


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    smoke = _common.smoke()
    members, max_out = (SMOKE_MEMBERS, SMOKE_MAX_OUT) if smoke else (MEMBERS, MAX_OUT)
    cases = []
    for key, label, forks_of, extra, prepare_apart in CASES:
        forks = members if forks_of == 'members' else max_out + 1
        extra = {name: max_out if value == 'max_out' else value for name, value in extra.items()}
        label = label.format(max_out=max_out, forks=forks)
        _common.log(f'slots: {label}')
        case = rollout(workdir / key, key, label, members, forks, extra, prepare_apart, max_out)
        _common.log(f'slots: {label}: {case["wall"]:.1f} s, slot limit {case["limit"]:.1f} s (longest prepare {case["longest_prepare"]:.1f} s), '
                    f'ratio {case["ratio_limit"]:.3f}, most out at once {case["most_out"]}, {_common.runs_text(case)} module runs per member, '
                    f'{case["failed_requests"]} failed requests of {case["traffic"]["total"]}')
        cases.append(case)
    batches = next(case for case in cases if case['key'] == 'batches')
    for case in cases:
        case['ratio_batches'] = case['wall'] / batches['wall']
    return {'profile': PROFILE, 'members': members, 'max_out': max_out, 'serial': SERIAL, 'prepare_seconds': PREPARE_SECONDS,
            'switch_seconds': SWITCH_SECONDS, 'goal_batches': GOAL_AGAINST_BATCHES, 'goal_limit': GOAL_LIMIT, 'traffic': TRAFFIC,
            'cases': cases}


def render(result: dict[str, t.Any]) -> str:
    cases = result['cases']
    slots = [case for case in cases if case['key'] != 'batches']

    def goals(case: dict[str, t.Any]) -> str:
        if case['key'] == 'batches':
            return '-' if not case['failed_requests'] else 'NOT met: failed requests'
        met_batches = _common.verdict(case['ratio_batches'], result['goal_batches'])
        met_limit = _common.verdict(case['ratio_limit'], result['goal_limit'])
        failed = '; NOT met: failed requests' if case['failed_requests'] else ''
        return f'(a) {met_batches}, (b) {met_limit}{failed}'

    rows = [(case['label'], case['forks'], _common.fmt(case['wall'], 1),
             f'**{case["ratio_batches"]:.3f}**' if case['key'] != 'batches' else '1',
             _common.fmt(case['longest_prepare'], 2) if case['key'] != 'batches' else '-',
             _common.fmt(case['parts'], 1), _common.fmt(case['limit'], 1) if case['key'] != 'batches' else f'({_common.fmt(case["batch_ideal"], 1)})',
             f'**{case["ratio_limit"]:.3f}**' if case['key'] != 'batches' else '-', _slots.most_out_text(case),
             _common.runs_text(case), f'{case["failed_requests"]} of {case["traffic"]["total"]:,}', goals(case)) for case in cases]
    phase_names = list(cases[0]['phases'])
    phase_rows = [(case['label'], _common.fmt(case['wall'], 1), *(_common.fmt(case['phases'][name], 1) for name in phase_names),
                   _common.fmt(case['parts'] / result['max_out'], 1), _common.fmt(case['windows'] / result['max_out'], 1))
                  for case in cases]
    window_rows = [(case['label'], _slots.parts_text(case), _slots.median_or_dash(case['window']), _slots.median_or_dash(case['own_in_window']),
                    _slots.handover_text(case)) for case in cases]
    cpu_rows = [(case['label'], _common.fmt(case['cpu_per_host'], 2), _common.fmt(case['profile']['worker_cpu_per_host'], 2),
                 _common.fmt(case['profile']['children_cpu_per_host'], 2), _common.fmt(case['profile']['main_cpu_per_host'], 2),
                 _common.fmt(case['profile']['other_cpu_per_host'], 2), f'{case["profile"]["tasks_per_host"]:.0f} '
                 f'({case["profile"]["skipped_per_host"]:.0f} skipped)') for case in cases]
    profiled = slots[0] if slots else cases[0]
    profile = result['profile']
    return '\n\n'.join([
        f'## 2\'. Slots and pre-staging: {result["members"]} nginx members behind HAProxy, at most {result["max_out"]} out at once',
        f'Profile {profile}; {result["members"]} real nginx members behind a real HAProxy (mode tcp, L7 check); live traffic through the VIP '
        f'the whole time ({result["traffic"]["keepalive_clients"]} keep-alive clients at one request per {result["traffic"]["request_interval"]} s '
        f'each and {result["traffic"]["new_connection_rate"]:g} new connections/s; every request must succeed, and every member serves the '
        f'new version after). Each member\'s release: a {result["prepare_seconds"]:g} s prepare - `sleep {result["prepare_seconds"]:g}` '
        'standing for a download and an unpack, then the new index.html written beside the docroot - and a '
        f'{result["switch_seconds"]:g} s switch - `sleep {result["switch_seconds"]:g}` standing for the rest of a switch, then the staged file '
        'renamed over index.html. The batches (`rolling_deploy_serial: "25%"`) run both tasks as deploy tasks, out of the VIP; the slots '
        f'(`rolling_deploy_max_out: {result["max_out"]}`, `rolling_deploy_prepare: group`) run the first as prepare tasks, every member at once '
        'while all serve, and only the switch out of the VIP. Goals: (a) slots wall ≤ '
        f'{result["goal_batches"]} × the batches\' wall in the same run; (b) slots wall ≤ {result["goal_limit"]} × the slot limit = the longest '
        f'prepare + Σ parts ÷ {result["max_out"]}, a member\'s part being the L4\'s own detection (health check out → HAProxy\'s DOWN in its log) '
        'and bring-up (health check in → UP) and the user\'s stop, switch and start as the tasks ran (the test callback\'s start and end of '
        'each). "wall" is the whole ansible-playbook run. The batches\' "(ideal)" is benchmark 4\'s: per batch its slowest member\'s part. '
        '"module runs" are counted per host by benchmarks/timed_python.sh.',
        _common.table(('rollout', 'forks', 'wall s', 'wall ÷ batches\' wall', 'longest prepare s', 'Σ parts s', 'slot limit s',
                       'wall ÷ slot limit', 'most out at once (HAProxy)', 'module runs/member', 'failed requests', 'goals'), rows),
        'Where the wall time went, seconds (from the task records and HAProxy\'s log); the last two columns are what the slot phase '
        f'would take with every slot always busy: Σ parts ÷ {result["max_out"]}, and Σ of the members\' actual windows (health check out → '
        f'bound again) ÷ {result["max_out"]}:',
        _common.table(('rollout', 'wall', *phase_names, 'Σ parts ÷ max_out', 'Σ windows ÷ max_out'), phase_rows),
        'One member, median (min-max), seconds: its part\'s pieces; its window (health check out → bound again); what the roles added '
        'inside the window (window − part); and the handover - from the L4 binding a member again to the next member\'s health check out, '
        'the slot unused:',
        _common.table(('rollout', 'part: detection, stop, deploy, start, bring-up', 'window', 'roles\' own time in the window', 'handover'),
                      window_rows),
        'CPU per member, seconds (user + system of everything ansible-playbook ran, benchmarks/callback_plugins/cpu_profile.py): the '
        'tasks\' workers (templating, action plugins, the L4 steps in-process), the processes they ran (module runs, commands), '
        'ansible-playbook\'s main process (strategy, includes, results, callbacks) and the rest (the workers\' fork and exit):',
        _common.table(('rollout', 'CPU s/member', 'task workers', 'their processes', 'main process', 'rest', 'tasks/member'), cpu_rows),
        f'The costliest tasks of "{profiled["label"]}", per member (prepare play included):',
        _common.profile_table(profiled['tasks'], profiled['members']),
    ])
