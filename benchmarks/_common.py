"""What every benchmark shares: the machine's description, statistics, tables, CPU time.

A benchmark is a module ``bench_<name>.py`` with ``run(workdir) -> dict`` (JSON-able figures)
and ``render(result) -> str`` (its section of RESULTS.md). ``benchmarks/run.py`` runs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
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
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
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


def fmt(seconds: float, digits: int = 3) -> str:
    return f'{seconds:.{digits}f}'


def log(message: str) -> None:
    print(f'[bench {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)
