"""Benchmark 3': the emulator under a real VIP's load - 10,000 concurrent keep-alive connections.

The lab of benchmark 3 (one nginx member, the emulator in its own process, a real HAProxy in
``mode tcp``), loaded by ``wrk`` with 10,000 keep-alive connections instead of 16, through the
emulator and through HAProxy in interleaved rounds, so the ratio is taken within one run. Session
aging is on: with a 30 s idle timeout the emulator sweeps every second and every session comes up
for a look every 30 s (none may age: each carries requests all the time). Reported: the
requests/s of both, the emulator's resident memory at the end of its rounds, and what one aging
sweep cost (read from the emulator's /metrics during the load).

10,000 connections need about 20,000 open files in the emulator and in HAProxy (a client side
and a member side each) and 10,000 in wrk: this benchmark raises its own open-file limit
(RLIMIT_NOFILE, inherited by everything it starts) to 65,536 where it may (root with
CAP_SYS_RESOURCE), else to its hard limit, and then runs as many connections as that limit holds
(a container without CAP_SYS_RESOURCE and a hard limit of 20,000: 9,900). Its output says which.

Addresses 127.0.3.1-9 (those of benchmark 3: run one at a time), ports 23000-23009.
"""

from __future__ import annotations

import json
import pathlib
import re
import resource
import statistics
import threading
import typing as t
import urllib.request

import _common
import bench_datapath as datapath

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Profile
from ansible_collections.l4vip.rollout.tests.harness.real_parts import HAProxy, Nginx, stop_all

WANTED_CONNECTIONS = 100 if _common.smoke() else 10_000
FILES_BESIDE = 200  # what an L4 process holds beside its two sockets per connection (listeners, logs, its API)
ROUNDS = 1 if _common.smoke() else 3
SECONDS = 3 if _common.smoke() else 20
OPEN_FILES = 65_536
GOAL = 0.5  # emulator requests/s >= 0.5 x HAProxy's, at this load
# Checks with room for the load: under 10,000 connections one Python loop answers its own health
# checks late (a 0.5 s check timeout took the only member down mid-round, and every client with it).
# A 30 s idle timeout: every busy session comes up for the sweep's look every 30 s.
PROFILE = Profile(interval=2.0, retry=2, rise=1, check_timeout=2.0, idle_timeout=30.0)
EMULATOR, HAPROXY = datapath.EMULATOR, datapath.HAPROXY
TARGETS = (EMULATOR, HAPROXY)


def wrk_argv(url: str, seconds: int, connections: int) -> list[str]:
    # Two threads (two cores); a generous timeout: 10,000 connections queue behind each other.
    return ['wrk', '-t2', f'-c{connections}', '--latency', '--timeout', '10s', f'-d{seconds}s', url]


def run_wrk(url: str, seconds: int, connections: int) -> dict[str, t.Any]:
    return datapath.run_wrk_argv(wrk_argv(url, seconds, connections), seconds + 60)


def raise_open_files() -> tuple[tuple[int, int], int]:
    """RLIMIT_NOFILE up to OPEN_FILES for this process and what it starts, or to its hard limit; (before, now)."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(OPEN_FILES, before[0])
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, before[1])))
    except (ValueError, OSError):
        # No CAP_SYS_RESOURCE: the hard limit is as far as it goes.
        resource.setrlimit(resource.RLIMIT_NOFILE, (before[1], before[1]))
    return before, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def haproxy_maxconn(limit: int) -> int:
    """HAProxy refuses to start when maxconn needs more files than the limit (two per connection and a few)."""
    return (limit - FILES_BESIDE // 2) // 2


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


def measure_round(urls: dict[str, str], pids: dict[str, int], target: str, metrics_url: str, connections: int) -> dict[str, t.Any]:
    user, system = datapath.cpu_seconds(pids[target])
    if target == EMULATOR:
        with SweepWatch(metrics_url) as watch:
            figures = run_wrk(urls[target], SECONDS, connections)
        figures['sweeps'] = watch.sweeps
        figures['rss_kib'] = rss_kib(pids[target])
    else:
        figures = run_wrk(urls[target], SECONDS, connections)
    user_after, system_after = datapath.cpu_seconds(pids[target])
    figures['l4_cpu_us_per_request'] = (user_after - user + system_after - system) / max(1, figures['requests']) * 1e6
    return figures


def run(workdir: pathlib.Path) -> dict[str, t.Any]:
    limit_before, limit = raise_open_files()
    connections = min(WANTED_CONNECTIONS, (limit - FILES_BESIDE) // 2)
    _common.log(f'connections: open-file limit {limit_before[0]:,} (hard {limit_before[1]:,}) raised to {limit:,}: '
                f'{connections:,} connections (of {WANTED_CONNECTIONS:,} wanted)')
    parts: list[t.Any] = []
    rounds: dict[str, list[dict[str, t.Any]]] = {target: [] for target in TARGETS}
    try:
        nginx = Nginx(datapath.MEMBER_NAME, *datapath.MEMBER, workdir / 'nginx')
        parts.append(nginx)
        nginx.start()
        haproxy = HAProxy(workdir / 'haproxy', PROFILE, datapath.HAPROXY_VIP, [(datapath.MEMBER_NAME, *datapath.MEMBER)],
                          backend=datapath.VIP_NAME, extra_global=[f'maxconn {haproxy_maxconn(limit)}'])
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
                figures = measure_round(urls, pids, target, metrics_url, connections)
                rounds[target].append(figures)
                _common.log(f'connections: round {number + 1} {target}: {figures["requests_per_s"]:,.0f} req/s, '
                            f'p99 {figures["p99"]:.1f} ms, errors {figures["errors"] or "none"}')
        rss = rss_kib(emulator.pid)
        with urllib.request.urlopen(f'http://{datapath.EMULATOR_CONTROL[0]}:{datapath.EMULATOR_CONTROL[1]}/api/events', timeout=10) as answer:
            downs = [e for e in json.load(answer) if e['kind'] == 'health' and e['to'] == 'down']
    finally:
        stop_all(parts, timeout=20.0)
    summary = {target: datapath.summarize(rounds[target]) for target in TARGETS}
    # Sweeps while the table held the load (more than half the connections in it).
    loaded = [s for r in rounds[EMULATOR] for s in r['sweeps'] if s[2] > connections // 2]
    return {
        'connections': connections, 'wanted_connections': WANTED_CONNECTIONS, 'rounds_count': ROUNDS, 'seconds': SECONDS, 'goal': GOAL,
        'open_files': {'before': list(limit_before), 'raised_to': limit},
        'profile': PROFILE.as_dict(), 'wrk': ' '.join(wrk_argv('http://<target>/', SECONDS, connections)),
        'targets': summary, 'rounds': rounds,
        'ratio_emulator_haproxy': summary[EMULATOR]['requests_per_s'] / max(1.0, summary[HAPROXY]['requests_per_s']),
        'emulator_rss_kib': rss,
        'member_marked_down': len(downs),  # by the emulator's own checks during the load: must be none
        'sweep': {'count': len(loaded),
                  'seconds_median': statistics.median(s[0] for s in loaded) if loaded else None,
                  'looked_at_median': statistics.median(s[1] for s in loaded) if loaded else None,
                  'sessions_median': statistics.median(s[2] for s in loaded) if loaded else None,
                  # The sweep that had most to do: its seconds and how many keys it popped.
                  'busiest': list(max(loaded, key=lambda s: s[1])) if loaded else None},
    }


def render(result: dict[str, t.Any]) -> str:
    targets, sweep = result['targets'], result['sweep']
    labels = {EMULATOR: 'through the emulator', HAPROXY: 'through HAProxy (mode tcp)'}
    rows = [[labels[target], f'{targets[target]["requests_per_s"]:,.0f}', f'{targets[target]["p99"]:.1f}',
             f'{targets[target]["l4_cpu_us_per_request"]:.1f}',
             ', '.join(f'{kind} {n}' for kind, n in sorted(targets[target]['errors'].items())) or '0'] for target in TARGETS]
    ratio = result['ratio_emulator_haproxy']
    # The emulator is what is judged: HAProxy's own errors (requests past wrk's timeout) are reported, not held against it.
    verdict = _common.verdict(ratio, result['goal'], lower_is_better=False) if not targets[EMULATOR]['errors'] else 'not met (errors)'
    rss = result['emulator_rss_kib']
    busiest = sweep['busiest']
    sweep_line = ('no sweep was read while the table held the load' if not sweep['count'] else
                  f'median {sweep["seconds_median"] * 1e6:,.0f} µs over the {sweep["count"]} sweeps read while the table held a median '
                  f'{sweep["sessions_median"]:,.0f} sessions (median keys looked at: {sweep["looked_at_median"]:,.0f}); the busiest took '
                  f'{busiest[0] * 1e3:.1f} ms for {busiest[1]:,} keys ({busiest[0] / max(1, busiest[1]) * 1e6:.1f} µs a key)')
    return '\n'.join([
        f"## 3'. The emulator under {result['connections']:,} concurrent keep-alive connections",
        '',
        _common.table(['target', 'requests/s (median)', 'p99 ms', 'L4 CPU µs/request', 'errors'], rows),
        '',
        f'**Emulator / HAProxy: {ratio:.2f}** (goal >= {result["goal"]}): **{verdict}**. '
        + ('HAProxy\'s errors are requests wrk gave up on after 10 s (it served more, some much later). '
           if targets[HAPROXY]['errors'] else '') +
        f'The emulator\'s memory: {rss["VmRSS"] / 1024:,.0f} MiB resident, {rss["VmHWM"] / 1024:,.0f} MiB at its peak. '
        f'One aging sweep (idle timeout {result["profile"]["idle_timeout"]:g} s, a sweep a second): {sweep_line}. '
        f'The emulator marked its member down {result["member_marked_down"]} time{"" if result["member_marked_down"] == 1 else "s"} '
        f'during the load (its own checks: interval '
        f'{result["profile"]["interval"]:g} s, timeout {result["profile"]["check_timeout"]:g} s, retry {result["profile"]["retry"]}).',
        '',
        f'Method: `{result["wrk"]}` through each L4 in {result["rounds_count"]} interleaved rounds; the table gives the medians. '
        f'The lab is benchmark 3\'s (one nginx member, the emulator in its own process, HAProxy in `mode tcp` with '
        f'`maxconn {haproxy_maxconn(result["open_files"]["raised_to"])}`). The benchmark raises its own open-file limit (RLIMIT_NOFILE, from '
        f'{result["open_files"]["before"][0]:,} to {result["open_files"]["raised_to"]:,}: {OPEN_FILES:,} where it may, with '
        f'CAP_SYS_RESOURCE, else the hard limit) for wrk, nginx, HAProxy and the emulator it starts, and runs as many '
        f'connections as that holds, two open files each in an L4: {result["connections"]:,} of the '
        f'{result["wanted_connections"]:,} wanted. The sweep figures are the emulator\'s own '
        f'(`l4vip_aging_sweep_seconds` and `l4vip_aging_sweep_looked_at` on /metrics), read every second during its rounds; '
        f'a sweep pops only the session keys older than the idle timeout (about a thirtieth of a busy table a second '
        f'here, none while every session is newer than the timeout), where a scan would read all of them every second.',
    ])
