"""What every benchmark shares: the machine's description, statistics, tables, CPU time.

A benchmark is a module ``bench_<name>.py`` with ``run(workdir) -> dict`` (JSON-able figures)
and ``render(result) -> str`` (its section of RESULTS.md). ``benchmarks/run.py`` runs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import typing as t

import ansible


def _version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        return 'not installed'
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else 'unknown'


def machine() -> dict[str, t.Any]:
    """What the figures were measured on: they mean little without it."""
    cpu = 'unknown'
    try:
        with open('/proc/cpuinfo', encoding='ascii', errors='replace') as info:
            cpu = next(line.split(':', 1)[1].strip() for line in info if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
    return {
        'cpu': cpu,
        'cores': os.cpu_count(),
        'memory_gib': round(memory, 1),
        'kernel': platform.release(),
        'python': platform.python_version(),
        'ansible_core': ansible.__version__,
        'nginx': _version(['/usr/sbin/nginx', '-v']),
        'haproxy': _version(['/usr/sbin/haproxy', '-v']),
        'wrk': _version(['wrk', '-v']),
    }


def percentile(values: t.Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: a value that was measured, never an interpolation."""
    if not values:
        raise ValueError('percentile of no values')
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def describe(values: t.Sequence[float]) -> dict[str, float]:
    """n, median, p95, min and max of a sample."""
    return {'n': len(values), 'median': statistics.median(values), 'p95': percentile(values, 0.95),
            'min': min(values), 'max': max(values)}


def table(headers: t.Sequence[str], rows: t.Iterable[t.Sequence[t.Any]]) -> str:
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '|'.join(' --- ' for _header in headers) + '|']
    # A cell's own "|" (task names such as "Deploy | ...") would end the cell: escaped, as Markdown tables take it.
    lines += ['| ' + ' | '.join(str(cell).replace('|', '\\|') for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)


def verdict(value: float, goal: float, lower_is_better: bool = True) -> str:
    met = value <= goal if lower_is_better else value >= goal
    return 'met' if met else 'NOT met'


@dataclasses.dataclass
class Measured:
    """Wall time and the CPU time of every child process waited for meanwhile (ansible-playbook and its forks)."""

    wall: float = 0.0
    children_cpu: float = 0.0
    own_cpu: float = 0.0  # this process's threads meanwhile (an embedded emulator, a log receiver)


@contextlib.contextmanager
def measure() -> t.Iterator[Measured]:
    """``with measure() as m:`` then ``m.wall``, ``m.children_cpu`` and ``m.own_cpu`` (user + system seconds)."""
    measured = Measured()
    wall, children, own = time.monotonic(), _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
    try:
        yield measured
    finally:
        measured.wall = time.monotonic() - wall
        measured.children_cpu = _cpu(resource.RUSAGE_CHILDREN) - children
        measured.own_cpu = _cpu(resource.RUSAGE_SELF) - own


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# The interpreter wrapper that counts and times module runs, one directory per host (see the script).
TIMED_PYTHON = pathlib.Path(__file__).resolve().parent / 'timed_python.sh'
MODULE_CPU_FILE = 'module-cpu.txt'  # beside each host's wrapper: one line per module run, "<user s> <system s>"


MODULE_RUNS_FILE = 'module-runs.txt'  # beside it: one line per module run, "<started> <ended>" (epoch seconds)


def read_module_cpu(path: os.PathLike[str] | str) -> tuple[float, int]:
    """(CPU seconds, module runs) from one host's module-cpu.txt (none yet: no run)."""
    try:
        lines = pathlib.Path(path).read_text(encoding='ascii').splitlines()
    except FileNotFoundError:
        return 0.0, 0
    # bash adds a line of its own ("Terminated") when the interpreter was killed, as mitogen ends its own.
    runs = [line.split() for line in lines if re.fullmatch(r'\d+\.\d+ \d+\.\d+', line.strip())]
    return sum(float(user) + float(system) for user, system in runs), len(runs)


class ModuleRuns:
    """What ran as a module process, per host, when the hosts are this machine (the local connection).

    ``interpreter(host)`` is the ansible_python_interpreter to give that host: a link to
    timed_python.sh in a directory of the host's own, so each module run appends its CPU time
    there. An L4 step that runs in the controller's process runs no module and leaves no line.
    Module processes run with ``python`` ($L4VIP_BENCH_PYTHON, which the local connection passes on).
    """

    def __init__(self, root: pathlib.Path, python: str = sys.executable) -> None:
        self.root = root
        os.environ['L4VIP_BENCH_PYTHON'] = python
        self.hosts: list[str] = []

    def interpreter(self, host: str) -> str:
        directory = self.root / host
        directory.mkdir(parents=True, exist_ok=True)
        link = directory / 'python'
        if not link.exists():
            link.symlink_to(TIMED_PYTHON)
            (directory / MODULE_CPU_FILE).write_text('', encoding='ascii')
            self.hosts.append(host)
        return str(link)

    def read(self) -> dict[str, tuple[float, int]]:
        """{host: (module CPU seconds, module runs)} for every host given an interpreter."""
        return {host: read_module_cpu(self.root / host / MODULE_CPU_FILE) for host in self.hosts}

    def read_times(self) -> dict[str, list[tuple[float, float]]]:
        """{host: [(started, ended) of each module run]} for every host given an interpreter."""
        return {host: read_module_times(self.root / host / MODULE_RUNS_FILE) for host in self.hosts}


def read_module_times(path: os.PathLike[str] | str) -> list[tuple[float, float]]:
    """When each module run of one host started and ended (epoch seconds), from its module-runs.txt."""
    try:
        lines = pathlib.Path(path).read_text(encoding='ascii').splitlines()
    except FileNotFoundError:
        return []
    return [(float(started), float(ended)) for started, ended in
            (line.split() for line in lines if re.fullmatch(r'\d+\.\d+ \d+\.\d+', line.strip()))]


def module_runs_summary(per_host: t.Mapping[str, tuple[float, int]], members: t.Sequence[str]) -> dict[str, t.Any]:
    """Members' module runs and CPU (per host: mean, min, max) and what ran as a module anywhere else (the controller)."""
    runs = [per_host.get(name, (0.0, 0))[1] for name in members]
    cpu = [per_host.get(name, (0.0, 0))[0] for name in members]
    others = {host: value for host, value in per_host.items() if host not in members}
    return {'member_module_runs_per_host': sum(runs) / len(runs), 'member_module_runs_min': min(runs), 'member_module_runs_max': max(runs),
            'member_module_cpu': sum(cpu), 'member_module_cpu_per_host': sum(cpu) / len(cpu),
            'controller_module_runs': sum(runs for _cpu, runs in others.values()),
            'controller_module_cpu': sum(cpu for cpu, _runs in others.values())}


def runs_text(summary: t.Mapping[str, t.Any]) -> str:
    """"7" when every member ran as many modules, else "7.5 (7-8)"."""
    low, high, mean = summary['member_module_runs_min'], summary['member_module_runs_max'], summary['member_module_runs_per_host']
    return f'{low}' if low == high else f'{mean:.1f} ({low}-{high})'


@contextlib.contextmanager
def environment(**values: str) -> t.Iterator[None]:
    """ansible-playbook's environment (run_collection_playbook takes this process's) with ``values``, restored after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- where the CPU goes, task by task (benchmarks/callback_plugins/cpu_profile.py) ------------------------------

BENCH_CALLBACKS = pathlib.Path(__file__).resolve().parent / 'callback_plugins'
CPU_KEY = 'l4vip_bench_cpu'  # in each recorded task result: {worker, children} CPU seconds of its TaskExecutor.run
# Actions that run on the controller only, whatever host the task is for.
CONTROLLER_ONLY = ('ansible.builtin.set_fact', 'ansible.builtin.assert', 'ansible.builtin.fail', 'ansible.builtin.debug',
                   'ansible.builtin.set_stats', 'ansible.builtin.include_tasks', 'ansible.builtin.include_role',
                   'ansible.builtin.add_host', 'ansible.builtin.meta')


def cpu_profile_env(workdir: pathlib.Path) -> tuple[dict[str, str], pathlib.Path]:
    """more_env for run_collection_playbook that loads the cpu_profile callback beside the test one, and its file."""
    from ansible_collections.l4vip.rollout.tests.harness.ansible import CALLBACKS  # pylint: disable=import-outside-toplevel
    path = workdir / f'cpu-profile-{time.monotonic_ns()}.json'
    return {'ANSIBLE_CALLBACK_PLUGINS': f'{CALLBACKS}{os.pathsep}{BENCH_CALLBACKS}', 'L4VIP_BENCH_CPU': str(path)}, path


def read_cpu_profile(path: pathlib.Path) -> dict[str, float]:
    """{main, reaped}: ansible-playbook's main process's own CPU and its reaped children's, at the end of the run."""
    return json.loads(path.read_text(encoding='utf-8'))


def task_profile(output: t.Sequence[t.Mapping[str, t.Any]], hosts: t.Sequence[str],
                 module_times: t.Mapping[str, t.Sequence[tuple[float, float]]]) -> list[dict[str, t.Any]]:
    """Per task name, over ``hosts``: how often it ran (skipped apart), its wall seconds, its workers' own CPU, the CPU
    of the processes they ran, and the module runs placed in it (a run of the host's interpreter between the task's
    start and end on that host). Totals over the hosts; sorted by CPU, the costliest first."""
    rows: dict[str, dict[str, t.Any]] = {}
    for entry in output:
        if entry['host'] not in hosts or entry.get('started') is None:
            continue
        row = rows.setdefault(entry['task'], {'task': entry['task'], 'action': entry['action'], 'ran': 0, 'skipped': 0, 'wall': 0.0,
                                              'worker_cpu': 0.0, 'children_cpu': 0.0, 'module_runs': 0})
        row['skipped' if entry['status'] == 'skipped' else 'ran'] += 1
        row['wall'] += entry['ended'] - entry['started']
        cpu = entry['result'].get(CPU_KEY) or {}
        row['worker_cpu'] += cpu.get('worker', 0.0)
        row['children_cpu'] += cpu.get('children', 0.0)
        runs = sum(1 for started, ended in module_times.get(entry['host'], ()) if entry['started'] <= started and ended <= entry['ended'])
        row['module_runs'] += runs
    return sorted(rows.values(), key=lambda row: -(row['worker_cpu'] + row['children_cpu']))


def profile_summary(rows: t.Sequence[t.Mapping[str, t.Any]], hosts: int, total_cpu: float, main: float) -> dict[str, t.Any]:
    """Per host: tasks, module runs, CPU in the workers' tasks (own + their processes), the main process, and the rest."""
    worker = sum(row['worker_cpu'] for row in rows)
    children = sum(row['children_cpu'] for row in rows)
    return {'tasks_per_host': sum(row['ran'] + row['skipped'] for row in rows) / hosts,
            'skipped_per_host': sum(row['skipped'] for row in rows) / hosts,
            'module_tasks_per_host': sum(row['ran'] for row in rows if row['action'] not in CONTROLLER_ONLY) / hosts,
            'module_runs_placed_per_host': sum(row['module_runs'] for row in rows) / hosts,
            'worker_cpu_per_host': worker / hosts, 'children_cpu_per_host': children / hosts, 'main_cpu_per_host': main / hosts,
            'other_cpu_per_host': (total_cpu - worker - children - main) / hosts}


def profile_table(rows: t.Sequence[t.Mapping[str, t.Any]], hosts: int, limit: int = 14) -> str:
    """The costliest ``limit`` task names, per host, and the rest summed."""
    def line(name: str, group: t.Sequence[t.Mapping[str, t.Any]]) -> tuple[t.Any, ...]:
        ran, skipped = sum(r['ran'] for r in group), sum(r['skipped'] for r in group)
        return (name, f'{ran / hosts:.2g}' + (f' (+{skipped / hosts:.2g} skipped)' if skipped else ''),
                f'{sum(r["module_runs"] for r in group) / hosts:.2g}', fmt(sum(r['wall'] for r in group) / hosts, 2),
                fmt(sum(r['worker_cpu'] for r in group) / hosts, 3), fmt(sum(r['children_cpu'] for r in group) / hosts, 3),
                fmt(sum(r['worker_cpu'] + r['children_cpu'] for r in group) / hosts, 3))
    shown = [line(f'{row["task"][:90]} (`{row["action"].split(".")[-1]}`)', [row]) for row in rows[:limit]]
    rest = list(rows[limit:])
    if rest:
        shown.append(line(f'{len(rest)} other tasks', rest))
    return table(('task (action)', 'runs/host', 'module runs/host', 'wall s/host', 'worker CPU s/host', 'its processes CPU s/host',
                  'CPU s/host'), shown)


def smoke() -> bool:
    """L4VIP_BENCH_SMOKE=1 (run.py --smoke): each benchmark at a small size, to check that it runs; figures are not kept."""
    return os.environ.get('L4VIP_BENCH_SMOKE') == '1'


def fmt(seconds: float, digits: int = 3) -> str:
    return f'{seconds:.{digits}f}'


def log(message: str) -> None:
    print(f'[bench {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)
