"""Benchmark 5: the rolling deploy over real SSH, and which connection settings to run it with.

tests/harness/netns.py's topology: 8 web hosts, each in its own network and mount namespace with
its own sshd and nginx, reached by Ansible over real SSH; HAProxy (mode tcp) on its own LB host;
the L4 steps once per batch on the controller, in its own process, through HAProxy's
controller-side runtime socket. ``l4vip.rollout.rolling_deploy`` in batches of 25 % with
benchmark 2's L4 (interval 1 s, retry 1, rise 1), live keep-alive and new-connection traffic
through the VIP the whole time. Ideal per batch = the slowest member's detection + stop + deploy
+ start + bring-up, as in benchmark 4, the transitions from HAProxy's own log. Then the same
rollout on slots (``rolling_deploy_max_out: 2``, pipelining on, forks 8): its wall time against
the slot limit (benchmarks/_slots.py: no prepare tasks here, so the sum of the members' parts / 2).

The same rollout runs once per connection setting: pipelining on (the harness's setting) and
off, without ControlPersist (a new SSH connection per command), without compression, and with
the mitogen strategy where mitogen is installed. A fresh topology for each, so no one inherits
another's SSH masters. Each web host's interpreter is a copy of timed_python.sh in its /srv: it
counts and times the host's module runs there. Controller CPU = ansible-playbook and every
process it waited for (the ssh clients) + the ssh ControlPersist masters it left running.
Needs root (namespaces), iproute2, sshd, nginx and HAProxy.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import time
import typing as t

import _common
import _slots
from bench_fleet import SERIAL, batch_members
from bench_rollout import DEPLOY_SECONDS, PROFILE, batch_span, inventory_with_timed_modules, member_record
from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.netns import IP_BIN, SSHD_BIN, NetnsFleet, NetnsOptions
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

MEMBERS = 8
SMOKE_MEMBERS = 4  # run.py --smoke: 4 batches of one
GOAL = 1.15
# Live traffic through the VIP: keep-alive clients (20 requests/s each) and new connections.
TRAFFIC = {'keepalive_clients': 8, 'new_connection_rate': 10.0, 'request_interval': 0.05}
# On each web host (its private /srv): the interpreter wrapper, and beside it the file it appends to.
REMOTE_DIR = '/srv/bench'
REMOTE_PYTHON = f'{REMOTE_DIR}/python'
# Ansible's own default ssh_args (the ssh connection plugin's): compression, and a master per host kept 60 s.
DEFAULT_SSH_ARGS = '-C -o ControlMaster=auto -o ControlPersist=60s'
MITOGEN_STRATEGY = 'mitogen_linear'

# (key, label, connection variables of every web host, strategy). The first is the harness's own and carries the goal.
CASES = (
    ('pipelining', 'pipelining on, ControlPersist 60 s (Ansible\'s default ssh_args)', {'ansible_ssh_pipelining': True}, None),
    ('no-pipelining', 'pipelining off', {'ansible_ssh_pipelining': False}, None),
    ('no-controlpersist', 'pipelining on, no ControlPersist (a new SSH connection per command)',
     {'ansible_ssh_pipelining': True, 'ansible_ssh_args': '-C -o ControlMaster=no'}, None),
    ('no-compression', 'pipelining on, ControlPersist 60 s, no compression (no -C)',
     {'ansible_ssh_pipelining': True, 'ansible_ssh_args': '-o ControlMaster=auto -o ControlPersist=60s'}, None),
    ('mitogen', f'the {MITOGEN_STRATEGY} strategy (mitogen: its own SSH connections, modules in one Python per host)', {}, MITOGEN_STRATEGY),
)
SMOKE_CASES = ('pipelining', 'no-pipelining')
# On slots: at most 2 of the 8 out at once, with the first case's connection settings; forks = the members, as above.
SLOT_MAX_OUT = 2
SLOT_CASE = ('slots', f'slots: max_out {SLOT_MAX_OUT}, pipelining on, ControlPersist 60 s', {'ansible_ssh_pipelining': True}, None)


def unavailable() -> str | None:
    """Why this machine cannot build the topology, or None."""
    if os.geteuid() != 0:
        return 'needs root (network and mount namespaces)'
    if IP_BIN is None or subprocess.run([IP_BIN, 'netns', 'list'], capture_output=True, check=False).returncode != 0:
        return 'needs `ip netns` (iproute2)'
    if not os.path.exists(SSHD_BIN):
        return f'needs {SSHD_BIN} (openssh-server)'
    return None


def mitogen_location() -> pathlib.Path | None:
    """Where ansible_mitogen is: this venv, or the directory $L4VIP_BENCH_MITOGEN names (a `pip install --target`)."""
    extra = os.environ.get('L4VIP_BENCH_MITOGEN')
    if extra and (pathlib.Path(extra) / 'ansible_mitogen').is_dir():
        return pathlib.Path(extra)
    spec = importlib.util.find_spec('ansible_mitogen')
    return pathlib.Path(spec.origin).parent.parent if spec and spec.origin else None


def mitogen_version(location: pathlib.Path) -> str:
    found = re.search(r'__version__ = \((\d+), (\d+), (\d+)\)', (location / 'mitogen' / '__init__.py').read_text(encoding='utf-8'))
    return '.'.join(found.groups()) if found else 'unknown'


def strategy_environment(strategy: str | None) -> dict[str, str]:
    if strategy is None:
        return {}
    location = mitogen_location()
    paths = [str(location), *filter(None, [os.environ.get('PYTHONPATH')])]
    return {'ANSIBLE_STRATEGY': strategy, 'ANSIBLE_STRATEGY_PLUGINS': str(location / 'ansible_mitogen' / 'plugins' / 'strategy'),
            'PYTHONPATH': os.pathsep.join(paths)}


def ssh_masters(control_dir: pathlib.Path) -> tuple[float, int]:
    """CPU seconds (user + system, with their reaped children) and count of the ssh processes still running with a
    ControlPath under ``control_dir``: the ControlPersist masters, which detach from ansible-playbook and so are
    not among the processes it waited for."""
    needle = os.fsencode(control_dir)
    ticks = os.sysconf('SC_CLK_TCK')
    total, count = 0.0, 0
    for entry in os.scandir('/proc'):
        if not entry.name.isdigit():
            continue
        try:
            # A master renames itself ("ssh: <control path> [mux]"); its comm stays ssh.
            with open(f'/proc/{entry.name}/comm', 'rb') as handle:
                if handle.read().strip() != b'ssh':
                    continue
            with open(f'/proc/{entry.name}/cmdline', 'rb') as handle:
                if needle not in handle.read():
                    continue
            with open(f'/proc/{entry.name}/stat', 'rb') as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(b')') + 2:].split()
        total += sum(int(value) for value in fields[11:15]) / ticks  # utime stime cutime cstime
        count += 1
    return total, count


def install_wrappers(fleet: NetnsFleet) -> None:
    """A copy of timed_python.sh as each web host's interpreter, in its own /srv (the hosts cannot see the controller's /tmp)."""
    for member in fleet.members:
        directory = member.path(REMOTE_DIR)
        directory.mkdir()
        shutil.copyfile(_common.TIMED_PYTHON, directory / 'python')
        (directory / 'python').chmod(0o755)
        (directory / _common.MODULE_CPU_FILE).write_text('', encoding='ascii')


def rollout(workdir: pathlib.Path, key: str, label: str, connection: dict[str, t.Any], strategy: str | None, members: int,
            max_out: int | None = None) -> dict[str, t.Any]:
    """One rollout in 25 % batches, or on slots with ``max_out``."""
    names = [f'web{n}' for n in range(1, members + 1)]
    host_vars = {name: {'ansible_python_interpreter': REMOTE_PYTHON, **connection} for name in names}
    options = NetnsOptions(members=members, profile=PROFILE, host_vars=host_vars)
    modules = _common.ModuleRuns(workdir / 'interpreters')  # the controller's, should an L4 step run as a module there
    workdir.mkdir(parents=True)
    with NetnsFleet(workdir, options) as fleet, _common.environment(ANSIBLE_FORKS=str(members), **strategy_environment(strategy)):
        install_wrappers(fleet)
        inventory = fleet.write_inventory()
        inventory_with_timed_modules(inventory, modules)
        with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic:
            started = time.time()
            with _common.measure() as measured:
                run = run_collection_playbook(workdir, 'l4vip.rollout.rolling_deploy', inventory,
                                              {'fleet_version': '2', 'fleet_deploy_seconds': DEPLOY_SECONDS,
                                               **({'rolling_deploy_serial': SERIAL} if max_out is None else {'rolling_deploy_max_out': max_out})},
                                              timeout=600)
            ended = time.time()
            masters_cpu, masters = ssh_masters(fleet.run_dir / 'cp')
            if run.returncode == 0:
                fleet.wait_all_bound()
            summary = traffic.stop()
        if run.returncode != 0:
            failed = [f'{e["host"]}: {e["task"]!r}: {e["result"].get("msg")}' for e in run.output if e['status'] == 'failed']
            raise RuntimeError(f'{label}: ansible-playbook failed (rc {run.returncode}); failed tasks: {failed}\n{run.stderr[-3000:]}')
        transitions = fleet.l4.transitions()
        per_host = {member.name: _common.read_module_cpu(member.path(f'{REMOTE_DIR}/{_common.MODULE_CPU_FILE}')) for member in fleet.members}
    per_host.update(modules.read())
    records = {name: member_record(run, name, transitions) for name in names}
    batches = batch_members(run, names)
    ideal = sum(max(records[name].ideal for name in batch) for batch in batches)
    spans = sum(batch_span(run, batch) for batch in batches)
    module_runs = _common.module_runs_summary(per_host, names)
    controller_cpu = measured.children_cpu + masters_cpu
    slots = {} if max_out is None else _slots.analyse(run, names, transitions, max_out, started, ended)
    return {
        **slots, 'key': key, 'label': label, 'connection': connection, 'strategy': strategy, 'members': members,
        'mitogen': mitogen_version(mitogen_location()) if strategy == MITOGEN_STRATEGY else None,
        'batches': [len(batch) for batch in batches], 'wall': measured.wall, 'ideal': ideal, 'ratio': measured.wall / ideal,
        'batch_spans': spans, 'ratio_batches': spans / ideal, 'own_cost_per_batch': (spans - ideal) / len(batches),
        'controller_cpu': controller_cpu, 'controller_cpu_per_host': controller_cpu / members, 'ssh_masters': masters,
        'ssh_masters_cpu': masters_cpu, 'benchmark_cpu': measured.own_cpu, **module_runs,
        'traffic': summary.as_dict(), 'failed_requests': summary.failed,
        'detection_max': max(m.detection for m in records.values()), 'bring_up_max': max(m.bring_up for m in records.values()),
    }


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    result: dict[str, t.Any] = {'profile': PROFILE, 'serial': SERIAL, 'deploy_seconds': DEPLOY_SECONDS, 'goal': GOAL, 'traffic': TRAFFIC,
                                'default_ssh_args': DEFAULT_SSH_ARGS, 'cases': []}
    reason = unavailable()
    if reason is not None:
        _common.log(f'ssh: not run: {reason}')
        return dict(result, skipped=reason)
    members = SMOKE_MEMBERS if _common.smoke() else MEMBERS
    result['members'] = members
    for key, label, connection, strategy in CASES:
        if _common.smoke() and key not in SMOKE_CASES:
            continue
        if strategy == MITOGEN_STRATEGY and mitogen_location() is None:
            _common.log(f'ssh: {label}: not run, mitogen is not installed')
            why = 'mitogen is not installed (`pip install --target DIR mitogen`, then L4VIP_BENCH_MITOGEN=DIR make bench BENCH=ssh)'
            result['cases'].append({'key': key, 'label': label, 'skipped': why})
            continue
        _common.log(f'ssh: {label}')
        case = rollout(workdir / key, key, label, connection, strategy, members)
        _common.log(f'ssh: {label}: {case["wall"]:.1f} s, ideal {case["ideal"]:.1f} s, ratio {case["ratio"]:.3f}, own cost '
                    f'{case["own_cost_per_batch"]:.2f} s per batch, controller CPU {case["controller_cpu_per_host"]:.2f} s/host, '
                    f'{_runs(case)} module runs per member, {case["controller_module_runs"]} on the controller, '
                    f'{case["failed_requests"]} failed requests of {case["traffic"]["total"]}')
        result['cases'].append(case)
    key, label, connection, strategy = SLOT_CASE
    _common.log(f'ssh: {label}')
    case = rollout(workdir / key, key, label, connection, strategy, members, SLOT_MAX_OUT)
    _common.log(f'ssh: {label}: {case["wall"]:.1f} s, slot limit {case["limit"]:.1f} s, ratio {case["ratio_limit"]:.3f}, most out at once '
                f'{case["most_out"]}, {_runs(case)} module runs per member, {case["failed_requests"]} failed requests of {case["traffic"]["total"]}')
    result.update(slots=case, slot_goal=_slots.GOAL_LIMIT)
    return result


def _runs(case: dict[str, t.Any]) -> str:
    """Module runs per member; under mitogen the wrapper starts once per host and the modules run inside that interpreter."""
    if case.get('strategy') == MITOGEN_STRATEGY:
        return f'{_common.runs_text(case)} Python per host, the modules inside'
    return _common.runs_text(case)


def _recommendation(cases: list[dict[str, t.Any]]) -> str:
    """What the figures say about the connection settings, against the first case (the harness's own)."""
    ran = [case for case in cases if 'skipped' not in case]
    if len(ran) < 2:
        return ''
    base = ran[0]
    lines = []
    for case in ran[1:]:
        wall = case['wall'] - base['wall']
        cost = case['own_cost_per_batch'] - base['own_cost_per_batch']
        cpu = case['controller_cpu_per_host'] - base['controller_cpu_per_host']
        lines.append(f'- {case["label"]}: {wall:+.1f} s wall ({case["ratio"]:.3f} against {base["ratio"]:.3f}), {cost:+.2f} s own cost per '
                     f'batch, {cpu:+.2f} s controller CPU per host, module CPU on the hosts {case["member_module_cpu_per_host"]:.2f} s per host '
                     f'({_runs(case)})'
                     f'{", " + str(case["failed_requests"]) + " failed requests" if case["failed_requests"] else ""}.')
    fastest = min(ran, key=lambda case: case['wall'])
    cheapest = min(ran, key=lambda case: case['controller_cpu_per_host'])
    return '\n'.join([
        'Connection settings: compare the rows by wall seconds and CPU, not by wall ÷ ideal. The ideal holds the user\'s own stop, '
        'deploy and start as Ansible ran them, so a setting that makes every module run slower makes the ideal longer too and '
        f'its ratio look better. Against the first row ({base["label"]}):',
        '',
        *lines,
        '',
        f'In this run the shortest rollout was "{fastest["label"]}" ({fastest["wall"]:.1f} s) and the least controller CPU '
        f'"{cheapest["label"]}" ({cheapest["controller_cpu_per_host"]:.2f} s per host).',
    ])


def render(result: dict[str, t.Any]) -> str:
    title = '## 5. Over SSH: 8 web hosts in their own namespaces, HAProxy on its own LB host, 25 % batches'
    if 'skipped' in result:
        return '\n\n'.join([title, f'Not run on this machine: {result["skipped"]}.'])
    cases = result['cases']
    rows = []
    for case in cases:
        if 'skipped' in case:
            rows.append((case['label'], *(['-'] * 10), f'not run: {case["skipped"]}'))
            continue
        rows.append((case['label'], '+'.join(str(n) for n in case['batches']), _common.fmt(case['wall'], 1), _common.fmt(case['ideal'], 1),
                     f'**{case["ratio"]:.3f}**', f'{case["ratio_batches"]:.3f}', _common.fmt(case['own_cost_per_batch'], 2),
                     _common.fmt(case['controller_cpu_per_host'], 2), _common.fmt(case['member_module_cpu_per_host'], 2), _runs(case),
                     f'{case["failed_requests"]} of {case["traffic"]["total"]:,}',
                     _common.verdict(case['ratio'], result['goal']) if case is cases[0] and case['failed_requests'] == 0
                     else ('NOT met: failed requests' if case['failed_requests'] else '-')))
    traffic = result['traffic']
    mitogen = ''.join(f' - here mitogen {case["mitogen"]} from PyPI' for case in cases if case.get('mitogen'))
    return '\n\n'.join([
        title.replace('8 web hosts', f'{result["members"]} web hosts'),
        f'Profile {result["profile"]}; serial "{result["serial"]}"; deploy = write index.html + `sleep {result["deploy_seconds"]}`, on the host '
        'over SSH. Web hosts are network + mount namespaces of this machine, each with its own sshd (root, key only) and nginx; HAProxy '
        '(mode tcp) runs on the LB host; the L4 steps run once per batch in the controller\'s own process, through HAProxy\'s runtime '
        f'socket. Live traffic through the VIP the whole time: {traffic["keepalive_clients"]} keep-alive clients at one request per '
        f'{traffic["request_interval"]} s each and {traffic["new_connection_rate"]:g} new connections/s; every request must succeed. '
        'Ideal = per batch, the slowest member\'s detection + stop + deploy + start + bring-up (transitions from HAProxy\'s own log); '
        f'goal: wall ÷ ideal ≤ {result["goal"]} for the first row, with no failed request. "own cost" = (sum of the batches\' spans − '
        'ideal) per batch. Controller CPU = ansible-playbook, the ssh clients it waited for, and the ssh ControlPersist masters it left '
        'running; module CPU is the web hosts\' (each host\'s interpreter is a copy of benchmarks/timed_python.sh, which also counts '
        f'its module runs). Every host has forks enough (forks = {result["members"]}); Ansible\'s default ssh_args are '
        f'`{result["default_ssh_args"]}`. The mitogen row runs where mitogen is installed (in the venv, or in the directory '
        f'L4VIP_BENCH_MITOGEN names){mitogen}: its hosts start one Python each and run every module inside it.',
        _common.table(('connection', 'batches', 'wall s', 'ideal s', 'wall ÷ ideal', 'batches ÷ ideal', 'own cost s/batch',
                       'controller CPU s/host', 'module CPU s/host (on the hosts)', 'module runs/member', 'failed requests', 'goal'), rows),
        _recommendation(cases),
        *([render_slots(result)] if result.get('slots') else []),
    ])


def render_slots(result: dict[str, t.Any]) -> str:
    case = result['slots']
    verdict = _common.verdict(case['ratio_limit'], result['slot_goal']) if case['failed_requests'] == 0 else 'NOT met: failed requests'
    phase_names = list(case['phases'])
    batched = next((c for c in result['cases'] if 'skipped' not in c), None)
    against = (f' The 25 % batches of the first row above took {batched["wall"]:.1f} s in the same session: the slots '
               f'{case["wall"] / batched["wall"]:.3f} × that.') if batched else ''
    return '\n\n'.join([
        f'### 5\'. The same {case["members"]} hosts on slots: `rolling_deploy_max_out: {case["max_out"]}`',
        f'The same topology, deploy, traffic and connection settings as the first row above (forks = {case["members"]}), on slots. Goal: wall '
        f'≤ {result["slot_goal"]} × the slot limit = Σ parts ÷ {case["max_out"]} (no prepare tasks here; a member\'s part is HAProxy\'s own '
        'detection and bring-up from its log and the user\'s stop, deploy and start on the host as the tasks ran), with no failed request.'
        + against,
        _common.table(('rollout', 'wall s', 'Σ parts s', 'slot limit s', 'wall ÷ slot limit', 'most out at once (HAProxy)', 'controller CPU s/host',
                       'module CPU s/host (on the hosts)', 'module runs/member', 'failed requests', 'goal'),
                      [(case['label'], _common.fmt(case['wall'], 1), _common.fmt(case['parts'], 1), _common.fmt(case['limit'], 1),
                        f'**{case["ratio_limit"]:.3f}**', _slots.most_out_text(case), _common.fmt(case['controller_cpu_per_host'], 2),
                        _common.fmt(case['member_module_cpu_per_host'], 2), _runs(case), f'{case["failed_requests"]} of {case["traffic"]["total"]:,}',
                        verdict)]),
        'Where the wall time went, seconds, and one member\'s window, median (min-max):',
        _common.table(('wall', *phase_names, f'Σ parts ÷ {case["max_out"]}', f'Σ windows ÷ {case["max_out"]}'),
                      [(_common.fmt(case['wall'], 1), *(_common.fmt(case['phases'][name], 1) for name in phase_names),
                        _common.fmt(case['parts'] / case['max_out'], 1), _common.fmt(case['windows'] / case['max_out'], 1))]),
        _common.table(('part: detection, stop, deploy, start, bring-up', 'window', 'roles\' own time in the window', 'handover'),
                      [(_slots.parts_text(case), _slots.median_or_dash(case['window']), _slots.median_or_dash(case['own_in_window']),
                        _slots.handover_text(case))]),
    ])
