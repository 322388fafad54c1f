"""Benchmark 3': the emulator under a real VIP's load - 10,000 concurrent keep-alive connections.

The lab of benchmark 3 (one nginx member, the emulator in its own process, a real HAProxy in
``mode tcp``), loaded by ``wrk`` with 10,000 keep-alive connections instead of 16, through the
emulator and through HAProxy in interleaved rounds, so the ratio is taken within one run. Session
aging is on and busy: with a 5 s idle timeout the emulator sweeps every second and every session
comes up for a look every 5 s (none may age: each carries requests all the time). Reported: the
requests/s of both, the emulator's resident memory at the end of its rounds, and what one aging
sweep cost (read from the emulator's /metrics during the load).

10,000 connections need about 20,000 open files in the emulator and in HAProxy (a client side
and a member side each) and 10,000 in wrk: this benchmark raises its own open-file limit
(RLIMIT_NOFILE, inherited by everything it starts) to 65,536, which needs root or a hard limit
that high, and says so in its output.

Addresses 127.0.3.1-9 (those of benchmark 3: run one at a time), ports 23000-23009.
"""

from __future__ import annotations

import pathlib
import re
import resource
import statistics
import subprocess
import threading
import typing as t
import urllib.request

import _common
import bench_datapath as datapath

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Profile
from ansible_collections.l4vip.rollout.tests.harness.real_parts import HAProxy, HarnessError, Nginx, stop_all

CONNECTIONS = 100 if _common.smoke() else 10_000
ROUNDS = 1 if _common.smoke() else 3
SECONDS = 3 if _common.smoke() else 10
OPEN_FILES = 65_536
GOAL = 0.5  # emulator requests/s >= 0.5 x HAProxy's, at this load
# Checks every second; a 5 s idle timeout keeps the aging sweep busy (every session looked at every 5 s).
PROFILE = Profile(interval=1.0, retry=1, rise=1, check_timeout=0.5, idle_timeout=5.0)
EMULATOR, HAPROXY = datapath.EMULATOR, datapath.HAPROXY
TARGETS = (EMULATOR, HAPROXY)


def wrk_argv(url: str, seconds: int) -> list[str]:
    # Two threads (two cores); a generous timeout: 10,000 connections queue behind each other.
    return ['wrk', '-t2', f'-c{CONNECTIONS}', '--latency', '--timeout', '10s', f'-d{seconds}s', url]


def run_wrk(url: str, seconds: int) -> dict[str, t.Any]:
    argv = wrk_argv(url, seconds)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise HarnessError(f'{" ".join(argv)}: exit {done.returncode}\n{done.stdout}{done.stderr}')
    return datapath.parse_wrk(done.stdout)


def raise_open_files() -> tuple[int, int]:
    """RLIMIT_NOFILE up to OPEN_FILES (soft and hard) for this process and what it starts; the limit before."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(OPEN_FILES, before[0])
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, before[1])))
    except (ValueError, OSError) as error:
        raise HarnessError(f'cannot raise the open-file limit from {before} to {wanted} (root, or a hard limit that high, '
                           f'is needed for {CONNECTIONS} connections): {error}') from None
    return before


def rss_kib(pid: int) -> dict[str, int]:
    """Resident memory now and at its peak (VmRSS, VmHWM), KiB."""
    status = pathlib.Path(f'/proc/{pid}/status').read_text(encoding='ascii')
    return {key: int(re.search(rf'^{key}:\s+(\d+) kB', status, re.MULTILINE).group(1)) for key in ('VmRSS', 'VmHWM')}


def metric(text: str, name: str) -> float:
    return float(re.search(rf'^{name} (\S+)$', text, re.MULTILINE).group(1))


class SweepWatch:
    """Reads the emulator's last aging sweep every second while wrk runs (each sweep is reported once)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sweeps: list[tuple[float, float, int]] = []  # (seconds, keys looked at, sessions in the table)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SweepWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: t.Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as answer:
                    text = answer.read().decode()
            except OSError:
                continue  # a busy control API: the next second tries again
            sessions = sum(int(float(n)) for n in re.findall(r'^l4vip_sessions\{[^}]*\} (\S+)$', text, re.MULTILINE))
            self.sweeps.append((metric(text, 'l4vip_aging_sweep_seconds'), int(metric(text, 'l4vip_aging_sweep_looked_at')), sessions))


def measure_round(urls: dict[str, str], pids: dict[str, int], target: str, metrics_url: str) -> dict[str, t.Any]:
    user, system = datapath.cpu_seconds(pids[target])
    if target == EMULATOR:
        with SweepWatch(metrics_url) as watch:
            figures = run_wrk(urls[target], SECONDS)
        figures['sweeps'] = watch.sweeps
        figures['rss_kib'] = rss_kib(pids[target])
    else:
        figures = run_wrk(urls[target], SECONDS)
    user_after, system_after = datapath.cpu_seconds(pids[target])
    figures['l4_cpu_us_per_request'] = (user_after - user + system_after - system) / max(1, figures['requests']) * 1e6
    return figures


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    limit_before = raise_open_files()
    _common.log(f'connections: open-file limit raised from {limit_before} to {resource.getrlimit(resource.RLIMIT_NOFILE)}')
    parts: list[t.Any] = []
    rounds: dict[str, list[dict[str, t.Any]]] = {target: [] for target in TARGETS}
    try:
        nginx = Nginx(datapath.MEMBER_NAME, *datapath.MEMBER, workdir / 'nginx')
        parts.append(nginx)
        nginx.start()
        haproxy = HAProxy(workdir / 'haproxy', PROFILE, datapath.HAPROXY_VIP, [(datapath.MEMBER_NAME, *datapath.MEMBER)],
                          backend=datapath.VIP_NAME, extra_global=[f'maxconn {3 * CONNECTIONS}'])
        parts.append(haproxy)
        haproxy.start()
        haproxy.wait_settled()
        emulator = datapath.EmulatorProcess(workdir / 'emulator', profile=PROFILE)
        parts.append(emulator)
        emulator.start()
        urls = {EMULATOR: f'http://{datapath.EMULATOR_VIP[0]}:{datapath.EMULATOR_VIP[1]}/',
                HAPROXY: f'http://{datapath.HAPROXY_VIP[0]}:{datapath.HAPROXY_VIP[1]}/'}
        pids = {EMULATOR: emulator.pid, HAPROXY: haproxy.pid}
        metrics_url = f'http://{datapath.EMULATOR_CONTROL[0]}:{datapath.EMULATOR_CONTROL[1]}/metrics'
        for number in range(ROUNDS):
            for target in TARGETS[number % 2:] + TARGETS[:number % 2]:
                figures = measure_round(urls, pids, target, metrics_url)
                rounds[target].append(figures)
                _common.log(f'connections: round {number + 1} {target}: {figures["requests_per_s"]:,.0f} req/s, '
                            f'p99 {figures["p99"]:.1f} ms, errors {figures["errors"] or "none"}')
        rss = rss_kib(emulator.pid)
    finally:
        stop_all(parts, timeout=20.0)
    summary = {target: {'requests_per_s': statistics.median(r['requests_per_s'] for r in rounds[target]),
                        'p99': statistics.median(r['p99'] for r in rounds[target]),
                        'l4_cpu_us_per_request': statistics.median(r['l4_cpu_us_per_request'] for r in rounds[target]),
                        'errors': {kind: sum(r['errors'].get(kind, 0) for r in rounds[target])
                                   for kind in {k for r in rounds[target] for k in r['errors']}}}
               for target in TARGETS}
    # Sweeps while the table held the load (more than half the connections in it).
    loaded = [s for r in rounds[EMULATOR] for s in r['sweeps'] if s[2] > CONNECTIONS // 2]
    return {
        'connections': CONNECTIONS, 'rounds_count': ROUNDS, 'seconds': SECONDS, 'goal': GOAL,
        'open_files': {'before': list(limit_before), 'raised_to': OPEN_FILES},
        'profile': PROFILE.as_dict(), 'wrk': ' '.join(wrk_argv('http://<target>/', SECONDS)),
        'targets': summary, 'rounds': rounds,
        'ratio_emulator_haproxy': summary[EMULATOR]['requests_per_s'] / max(1.0, summary[HAPROXY]['requests_per_s']),
        'emulator_rss_kib': rss,
        'sweep': {'count': len(loaded),
                  'seconds_median': statistics.median(s[0] for s in loaded) if loaded else None,
                  'seconds_max': max(s[0] for s in loaded) if loaded else None,
                  'looked_at_median': statistics.median(s[1] for s in loaded) if loaded else None,
                  'sessions_median': statistics.median(s[2] for s in loaded) if loaded else None},
    }


def render(result: dict[str, t.Any]) -> str:
    targets, sweep = result['targets'], result['sweep']
    labels = {EMULATOR: 'through the emulator', HAPROXY: 'through HAProxy (mode tcp)'}
    rows = [[labels[target], f'{targets[target]["requests_per_s"]:,.0f}', f'{targets[target]["p99"]:.1f}',
             f'{targets[target]["l4_cpu_us_per_request"]:.1f}',
             ', '.join(f'{kind} {n}' for kind, n in sorted(targets[target]['errors'].items())) or '0'] for target in TARGETS]
    ratio = result['ratio_emulator_haproxy']
    clean = not any(targets[target]['errors'] for target in TARGETS)
    verdict = _common.verdict(ratio, result['goal'], lower_is_better=False) if clean else 'not measured cleanly (errors)'
    rss = result['emulator_rss_kib']
    sweep_line = ('no sweep ran while the table held the load' if not sweep['count'] else
                  f'median {sweep["seconds_median"] * 1e3:.2f} ms (max {sweep["seconds_max"] * 1e3:.2f} ms) over {sweep["count"]} sweeps, '
                  f'each looking at a median {sweep["looked_at_median"]:,.0f} session keys of a {sweep["sessions_median"]:,.0f}-session table')
    return '\n'.join([
        f"## 3'. The emulator under {result['connections']:,} concurrent connections",
        '',
        _common.table(['target', 'requests/s (median)', 'p99 ms', 'L4 CPU µs/request', 'errors'], rows),
        '',
        f'**Emulator / HAProxy: {ratio:.2f}** (goal >= {result["goal"]}): **{verdict}**. '
        f'The emulator\'s memory: {rss["VmRSS"] / 1024:,.0f} MiB resident, {rss["VmHWM"] / 1024:,.0f} MiB at its peak. '
        f'One aging sweep (idle timeout {result["profile"]["idle_timeout"]:g} s, a sweep a second): {sweep_line}.',
        '',
        f'Method: `{result["wrk"]}` through each L4 in {result["rounds_count"]} interleaved rounds; the table gives the medians. '
        f'The lab is benchmark 3\'s (one nginx member, the emulator in its own process, HAProxy in `mode tcp` with '
        f'`maxconn {3 * result["connections"]}`). The benchmark raises its own open-file limit (RLIMIT_NOFILE, from '
        f'{result["open_files"]["before"][0]:,} to {result["open_files"]["raised_to"]:,}, which needs root or a hard limit that '
        f'high) for wrk, nginx, HAProxy and the emulator it starts. The sweep figures are the emulator\'s own '
        f'(`l4vip_aging_sweep_seconds` and `l4vip_aging_sweep_looked_at` on /metrics), read every second during its rounds; '
        f'a sweep pops only the session keys older than the idle timeout, so it looks at about a fifth of a busy table '
        f'here and at none of a table whose sessions are all newer than the timeout.',
    ])
