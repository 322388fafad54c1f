"""Benchmark 3: the emulator's data path against a real HAProxy and the member itself.

One real nginx member; the emulator (in a process of its own, as the l4_emulator module runs
it) and a real HAProxy (``mode tcp``, as the test harness builds it) both in front of it. The
same ``wrk`` run (keep-alive, a small static file) goes direct to the member, through the
emulator and through HAProxy, in interleaved rounds, so that the ratio emulator / HAProxy is
taken within one run on the same machine.

Addresses 127.0.3.1-9, ports 23000-23009.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import typing as t
import urllib.request

import _common

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Profile
from ansible_collections.l4vip.rollout.tests.harness import real_parts
from ansible_collections.l4vip.rollout.tests.harness.real_parts import HAProxy, HarnessError, Nginx, stop_all, wait_until

MEMBER = ('127.0.3.1', 23001)
EMULATOR_VIP = ('127.0.3.2', 23002)
EMULATOR_CONTROL = ('127.0.3.2', 23003)
EMULATOR_CHECK_SOURCE = '127.0.3.3'
HAPROXY_VIP = ('127.0.3.4', 23004)
VIP_NAME = 'bench'
MEMBER_NAME = 'web1'

DIRECT, EMULATOR, HAPROXY = 'direct', 'emulator', 'haproxy'
TARGETS = (DIRECT, EMULATOR, HAPROXY)
ROUNDS = 5
SECONDS = 5
WARMUP_SECONDS = 1
# One wrk thread and 16 keep-alive connections: on a 2-core machine wrk, nginx and the L4 share the cores.
WRK_OPTIONS = ('-t1', '-c16', '--latency')
GOAL = 0.5  # emulator requests/s >= 0.5 x HAProxy's
# Checks every second: a handful of requests to the member next to tens of thousands from wrk.
PROFILE = Profile(interval=1.0, retry=1, rise=1, check_timeout=0.5)
ENTRY_POINT = 'ansible_collections.l4vip.rollout.plugins.module_utils._emulator.daemon'
# The emulator's figures before the data-path work, measured once by this benchmark (see the file).
BEFORE_PATH = pathlib.Path(__file__).resolve().parent / 'datapath_before.json'
CLOCK_TICKS = os.sysconf('SC_CLK_TCK')


def wrk_argv(url: str, seconds: int = SECONDS) -> list[str]:
    return ['wrk', *WRK_OPTIONS, f'-d{seconds}s', url]


# --- wrk's report --------------------------------------------------------------------------

_UNITS_MS = {'us': 0.001, 'ms': 1.0, 's': 1000.0, 'm': 60_000.0}


def _duration_ms(text: str) -> float:
    number, unit = re.fullmatch(r'([\d.]+)(us|ms|s|m)', text).groups()
    return float(number) * _UNITS_MS[unit]


def parse_wrk(text: str) -> dict[str, t.Any]:
    """Requests/s, latency percentiles (ms), request count and errors from ``wrk --latency`` output."""
    rate = re.search(r'^Requests/sec:\s+([\d.]+)', text, re.MULTILINE)
    count = re.search(r'^\s*(\d+) requests in', text, re.MULTILINE)
    if rate is None or count is None:
        raise HarnessError(f'wrk: no result in its output:\n{text}')
    percentiles = {f'p{share}': _duration_ms(value) for share, value in re.findall(r'^\s+(50|75|90|99)%\s+(\S+)', text, re.MULTILINE)}
    socket_errors = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', text)
    errors = dict(zip(('connect', 'read', 'write', 'timeout'), map(int, socket_errors.groups()))) if socket_errors else {}
    non_2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', text)
    errors['non_2xx'] = int(non_2xx.group(1)) if non_2xx else 0
    return {'requests_per_s': float(rate.group(1)), 'requests': int(count.group(1)), **percentiles,
            'errors': {kind: n for kind, n in errors.items() if n}}


def run_wrk(url: str, seconds: int) -> dict[str, t.Any]:
    return run_wrk_argv(wrk_argv(url, seconds), seconds + 15)


def run_wrk_argv(argv: list[str], timeout: float) -> dict[str, t.Any]:
    """wrk with these arguments, its report parsed; a failed run raises with its output."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise HarnessError(f'{" ".join(argv)}: exit {done.returncode}\n{done.stdout}{done.stderr}')
    return parse_wrk(done.stdout)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process and its threads so far."""
    stat = pathlib.Path(f'/proc/{pid}/stat').read_text(encoding='ascii')
    fields = stat[stat.rindex(')') + 2:].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


# --- the emulator in its own process -------------------------------------------------------

class EmulatorProcess:
    """``python -m ..._emulator --config`` (the l4_emulator module's service), optionally under cProfile."""

    def __init__(self, workdir: pathlib.Path, profile_path: pathlib.Path | None = None, profile: Profile = PROFILE) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / 'emulator.json'
        self.state_path = workdir / 'emulator.state.json'
        self.profile_path = profile_path
        self.config_path.write_text(json.dumps({
            'vips': [{'name': VIP_NAME, 'listen': f'{EMULATOR_VIP[0]}:{EMULATOR_VIP[1]}',
                      'members': [{'name': MEMBER_NAME, 'address': f'{MEMBER[0]}:{MEMBER[1]}'}]}],
            'profile': profile.as_dict(),
            'control': f'{EMULATOR_CONTROL[0]}:{EMULATOR_CONTROL[1]}',
            'check_source': EMULATOR_CHECK_SOURCE,
            'seed': 8,
        }), encoding='utf-8')
        self._process = real_parts._Process('emulator', workdir / 'emulator.out')  # pylint: disable=protected-access

    def __repr__(self) -> str:
        return f'EmulatorProcess(pid={self.pid})'

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self, timeout: float = 10.0) -> EmulatorProcess:
        profiler = ['-m', 'cProfile', '-o', str(self.profile_path)] if self.profile_path else []
        # The collection is importable here through sys.path (run.py links the checkout): so it is there.
        saved = os.environ.get('PYTHONPATH')
        os.environ['PYTHONPATH'] = os.pathsep.join(path for path in sys.path if path)
        try:
            self._process.spawn([sys.executable, *profiler, '-m', ENTRY_POINT, '--config', str(self.config_path),
                                 '--state-file', str(self.state_path)], cwd=self.workdir)
        finally:
            if saved is None:
                del os.environ['PYTHONPATH']
            else:
                os.environ['PYTHONPATH'] = saved
        try:
            wait_until(self._member_up, timeout, f'emulator: {MEMBER_NAME} up behind {VIP_NAME}', poll=0.1)
        except HarnessError as exc:
            self._process.kill_group()
            raise HarnessError(f'{exc}\noutput:\n{real_parts.tail(self._process.log_path)}') from None
        return self

    def _member_up(self) -> tuple[bool, str]:
        if not self._process.is_running:
            return False, f'exited with {self._process.proc.returncode}'
        if not self.state_path.exists():
            return False, 'no state file yet'
        url = f'http://{EMULATOR_CONTROL[0]}:{EMULATOR_CONTROL[1]}/api/vips/{VIP_NAME}/members/{MEMBER_NAME}'
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                state = json.load(answer)['state']
        except OSError as exc:
            return False, f'control API: {exc}'
        return state == 'up', state

    def stop(self, timeout: float = 10.0) -> None:
        # SIGTERM: the emulator closes its sessions and returns from main, so cProfile writes its file.
        self._process.stop(signal.SIGTERM, timeout)

    def leftover_pids(self) -> list[int]:
        return self._process.leftover_pids()


# --- the run -------------------------------------------------------------------------------

class Lab(t.NamedTuple):
    urls: dict[str, str]
    pids: dict[str, int | None]
    body_bytes: int


def start_lab(workdir: pathlib.Path, parts: list[t.Any], profile_path: pathlib.Path | None = None) -> Lab:
    """The member, HAProxy and the emulator, every part appended to ``parts`` as soon as it runs."""
    nginx = Nginx(MEMBER_NAME, *MEMBER, workdir / 'nginx')
    parts.append(nginx)
    nginx.start()
    haproxy = HAProxy(workdir / 'haproxy', PROFILE, HAPROXY_VIP, [(MEMBER_NAME, *MEMBER)], backend=VIP_NAME)
    parts.append(haproxy)
    haproxy.start()
    haproxy.wait_settled()
    emulator = EmulatorProcess(workdir / 'emulator', profile_path)
    parts.append(emulator)
    emulator.start()
    urls = {DIRECT: nginx.url('/'), EMULATOR: f'http://{EMULATOR_VIP[0]}:{EMULATOR_VIP[1]}/', HAPROXY: f'http://{HAPROXY_VIP[0]}:{HAPROXY_VIP[1]}/'}
    with urllib.request.urlopen(urls[DIRECT], timeout=2) as answer:
        body_bytes = len(answer.read())
    return Lab(urls, {DIRECT: None, EMULATOR: emulator.pid, HAPROXY: haproxy.pid}, body_bytes)


def measure_round(lab: Lab, target: str) -> dict[str, t.Any]:
    pid = lab.pids[target]
    if pid is None:
        return run_wrk(lab.urls[target], SECONDS)
    user, system = cpu_seconds(pid)
    figures = run_wrk(lab.urls[target], SECONDS)
    user_after, system_after = cpu_seconds(pid)
    # What the L4 process spent per forwarded request: less noisy than requests/s on a shared machine,
    # and split, because the kernel's part (the sockets) is one the emulator cannot make smaller.
    requests = max(1, figures['requests'])
    figures['l4_cpu_us_per_request'] = (user_after - user + system_after - system) / requests * 1e6
    figures['l4_user_us_per_request'] = (user_after - user) / requests * 1e6
    return figures


def summarize(rounds: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    summary = {key: statistics.median(r[key] for r in rounds) for key in ('requests_per_s', 'p50', 'p99')}
    for key in ('l4_cpu_us_per_request', 'l4_user_us_per_request'):
        if key in rounds[0]:
            summary[key] = statistics.median(r[key] for r in rounds)
    errors: dict[str, int] = {}
    for figures in rounds:
        for kind, count in figures['errors'].items():
            errors[kind] = errors.get(kind, 0) + count
    return {**summary, 'errors': errors, 'ok': not errors}


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    parts: list[t.Any] = []
    rounds: dict[str, list[dict[str, t.Any]]] = {target: [] for target in TARGETS}
    body_bytes = 0
    try:
        lab = start_lab(workdir, parts)
        body_bytes = lab.body_bytes
        for target in TARGETS:
            run_wrk(lab.urls[target], WARMUP_SECONDS)
        for number in range(ROUNDS):
            # Each round starts with another target: none always runs right after the same neighbour.
            for target in TARGETS[number % len(TARGETS):] + TARGETS[:number % len(TARGETS)]:
                rounds[target].append(measure_round(lab, target))
                figures = rounds[target][-1]
                _common.log(f'datapath: round {number + 1} {target}: {figures["requests_per_s"]:.0f} req/s, '
                            f'p99 {figures["p99"]:.2f} ms, errors {figures["errors"] or "none"}')
    finally:
        stop_all(parts, timeout=10.0)
    targets = {target: summarize(rounds[target]) for target in TARGETS}
    ratio = targets[EMULATOR]['requests_per_s'] / max(1.0, targets[HAPROXY]['requests_per_s'])
    return {
        'targets': targets,
        'rounds': rounds,
        'ratio_emulator_haproxy': ratio,
        'goal': GOAL,
        'wrk': ' '.join(wrk_argv('http://<target>/')),
        'rounds_count': ROUNDS,
        'body_bytes': body_bytes,
        'before': json.loads(BEFORE_PATH.read_text(encoding='utf-8')) if BEFORE_PATH.exists() else None,
    }


# --- RESULTS.md ----------------------------------------------------------------------------

def _errors_cell(summary: dict[str, t.Any]) -> str:
    if summary['ok']:
        return '0'
    return 'FAILED: ' + ', '.join(f'{kind} {count}' for kind, count in sorted(summary['errors'].items()))


def render(result: dict[str, t.Any]) -> str:
    targets = result['targets']
    labels = {DIRECT: 'direct to the member (nginx)', EMULATOR: 'through the emulator', HAPROXY: 'through HAProxy (mode tcp)'}
    rows = []
    for target in TARGETS:
        summary = targets[target]
        cpu = f'{summary["l4_cpu_us_per_request"]:.1f} ({summary["l4_user_us_per_request"]:.1f})' if target != DIRECT else '-'
        rows.append([labels[target], f'{summary["requests_per_s"]:,.0f}', f'{summary["p50"]:.2f}', f'{summary["p99"]:.2f}', cpu,
                     _errors_cell(summary)])
    ratio = result['ratio_emulator_haproxy']
    measured = targets[EMULATOR]['ok'] and targets[HAPROXY]['ok']
    verdict = _common.verdict(ratio, result['goal'], lower_is_better=False) if measured else 'not measured (errors)'
    lines = [
        '## 3. Emulator data path',
        '',
        _common.table(['target', 'requests/s (median)', 'p50 ms', 'p99 ms', 'L4 CPU µs/request (user)', 'errors'], rows),
        '',
        f'**Emulator / HAProxy: {ratio:.2f}** (goal >= {result["goal"]}): **{verdict}**.',
    ]
    before = result.get('before')
    if before:
        emulator = before['emulator']
        lines += ['', f'Earlier run, {before["label"]} ({before["measured_at"]}): the emulator did {emulator["requests_per_s"]:,.0f} '
                  f'requests/s, p99 {emulator["p99"]:.2f} ms, {emulator["l4_cpu_us_per_request"]:.1f} µs CPU per request '
                  f'({emulator["l4_user_us_per_request"]:.1f} user), {before["ratio_emulator_haproxy"]:.2f} x HAProxy in that run.']
    lines += [
        '',
        f'Method: `{result["wrk"]}` against each target in {result["rounds_count"]} interleaved rounds (direct, emulator, HAProxy, '
        f'each round starting with the next); '
        f'the table gives the median of the rounds. One nginx member serves a {result["body_bytes"]}-byte file; the emulator runs '
        f'in its own process (`python -m ..._emulator`, as the l4_emulator module starts it) and HAProxy in `mode tcp` as the '
        f'test harness configures it, both in front of that member. "L4 CPU" is the emulator\'s or HAProxy\'s user + system '
        f'time during a round per request served, its user-space part in brackets; `benchmarks/profile_datapath.py` profiles '
        f'the emulator under the same load. wrk, nginx and the L4 share the cores, so requests/s move with the load from '
        f'elsewhere and only the ratio within one run compares the two L4s.',
    ]
    return '\n'.join(lines)


# --- profiling (benchmarks/profile_datapath.py) --------------------------------------------

def profile_emulator(workdir: pathlib.Path, profile_path: pathlib.Path, seconds: int) -> dict[str, t.Any]:
    """The emulator under cProfile while wrk loads it for ``seconds``; the profile is written at its stop."""
    parts: list[t.Any] = []
    try:
        lab = start_lab(workdir, parts, profile_path)
        return run_wrk(lab.urls[EMULATOR], seconds)
    finally:
        stop_all(parts, timeout=20.0)
