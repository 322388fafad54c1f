"""End to end: the rolling deploy through real ansible-playbook, real nginx members, live traffic.

Each test starts a fleet (tests/harness/fleet.py: daemonized nginx on 127.0.0.11-18 behind
the emulator or a real HAProxy), runs a playbook with the fleet's inventory while the traffic
generator sends keep-alive and fresh-connection requests through the VIP, and then judges the
rollout from three records that do not depend on each other: every client request (who
answered, when, with which version), each task's start and end on each host (the test
callback), and what the L4 saw (the emulator's event log).

Addresses: nginx 127.0.0.11-18, the L4 127.0.0.150-153; ports 20500-20519.
Measured figures are printed (run with -s to see them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import shlex
import socket
import subprocess
import threading
import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic import KIND_KEEPALIVE, Summary
from ansible_collections.l4vip.rollout.tests.harness.ansible import PlaybookRun, run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.fleet import EMULATOR, HAPROXY, DaemonNginx, Fleet, FleetOptions
from ansible_collections.l4vip.rollout.tests.harness.report_pixels import check_timeline
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

pytestmark = pytest.mark.real

ROLLING_DEPLOY = 'l4vip.rollout.rolling_deploy'
PLAYBOOKS = pathlib.Path(__file__).resolve().parent / 'playbooks'
NEW_VERSION = '2'
# 16 keep-alive clients at 20 requests/s each, plus 40 fresh connections/s: ~360 requests/s.
TRAFFIC = {'keepalive_clients': 16, 'new_connection_rate': 40.0, 'request_interval': 0.05}
MIN_RATE = 200
# How late the emulator's event or a client's record may land after the fact it reports
# (one process, two threads sharing the GIL, two CPUs).
LATENESS = 0.1
# For every keep-alive client (and member) to have had an answer: each client asks every 0.05 s. A bound, not a pause.
ANSWERED_WITHIN = 5.0


# --- running a playbook under traffic -------------------------------------------------------

@dataclasses.dataclass
class Rollout:
    run: PlaybookRun
    traffic: Summary
    started: float
    ended: float

    @property
    def duration(self) -> float:
        return self.ended - self.started

    def report(self, label: str) -> str:
        line = f'{label}: playbook {self.duration:.1f}s rc={self.run.returncode}; {self.traffic.line()}'
        print(line)
        return line


def roll_out(fleet: Fleet, tmp_path: pathlib.Path, playbook: str | pathlib.Path = ROLLING_DEPLOY,
             extra_vars: dict[str, t.Any] | None = None, more_env: dict[str, str] | None = None) -> Rollout:
    """Run ``playbook`` over the fleet's inventory while traffic runs through every VIP."""
    inventory = fleet.write_inventory()
    with contextlib.ExitStack() as stack:
        threads = {group: stack.enter_context(TrafficThread(*fleet.vip(group), **TRAFFIC)) for group in fleet.groups}
        for thread in threads.values():
            thread.wait_every_client_answered(ANSWERED_WITHIN)  # every keep-alive client holds a session before the first member leaves
        started = time.time()
        run = run_collection_playbook(tmp_path, playbook, inventory, {'fleet_version': NEW_VERSION, **(extra_vars or {})}, timeout=180,
                                      more_env=more_env)
        ended = time.time()
        # And traffic goes on after the rollout: every keep-alive client answered once more, and so did every member
        # the L4 binds now (assert_new_version_everywhere looks for each one's answers after the rollout).
        for group, thread in threads.items():
            bound = [name for name, is_bound in fleet.l4.bound(group).items() if is_bound]
            thread.wait_every_client_answered(ANSWERED_WITHIN, since=ended, servers=bound)
        summaries = [thread.stop() for thread in threads.values()]
    records = [record for summary in summaries for record in summary.requests]
    traffic = Summary(sorted(records, key=lambda r: r.start), min(s.started for s in summaries), max(s.stopped for s in summaries))
    return Rollout(run, traffic, started, ended)


# --- reading the records ------------------------------------------------------------------

@dataclasses.dataclass
class Step:
    started: float
    ended: float


def host_entries(run: PlaybookRun, host: str) -> list[dict[str, t.Any]]:
    return [entry for entry in run.output if entry['host'] == host and entry['status'] != 'skipped']


def start_step(run: PlaybookRun, member: DaemonNginx) -> Step:
    """The task that ran the member's start command (the only one: asserted): l7_vip_deploy's health check back in service,
    which runs it first, or l4_vip_deploy's command task."""
    argv = member.start_command
    found = [e for e in host_entries(run, member.name)
             if (e['action'] == 'ansible.builtin.command' and e['result'].get('cmd') == argv)
             or (e['action'] == 'l4vip.rollout.health_check' and e['result'].get('invocation', {}).get('module_args', {}).get('start_command') == argv)]
    assert len(found) == 1, f'{member.name}: expected one run of {argv}, saw {len(found)}'
    return Step(found[0]['started'], found[0]['ended'])


def module_step(run: PlaybookRun, member: DaemonNginx, action: str, **args: t.Any) -> Step:
    """The single run of module ``action`` on the member whose arguments include ``args``."""
    found = [e for e in host_entries(run, member.name) if e['action'] == action
             and all(e['result'].get('invocation', {}).get('module_args', {}).get(k) == v for k, v in args.items())]
    assert len(found) == 1, f'{member.name}: expected one run of {action} {args}, saw {len(found)}'
    return Step(found[0]['started'], found[0]['ended'])


def stop_step(run: PlaybookRun, member: DaemonNginx) -> Step:
    """The roles' stop: session_drain runs the member's stop command, then waits for its sessions to end."""
    return module_step(run, member, 'l4vip.rollout.session_drain', stop_command=member.stop_command)


def deploy_step(run: PlaybookRun, member: DaemonNginx) -> Step:
    """From the first to the last of the fleet's deploy tasks on the member."""
    found = [e for e in host_entries(run, member.name) if e['task'].startswith('Deploy | ')]
    assert found and found[0]['task'] == 'Deploy | write the new version into the docroot', f'{member.name}: {[e["task"] for e in found]}'
    return Step(found[0]['started'], found[-1]['ended'])


def health_events(fleet: Fleet, to: str) -> dict[str, list[float]]:
    """Per member, when the emulator moved it to health ``to`` (oldest first)."""
    times: dict[str, list[float]] = {member.name: [] for member in fleet.members}
    for event in fleet.l4.events():
        if event['to'] == to:
            times[event['member']].append(event['at'])
    return times


def out_windows(fleet: Fleet, since: float) -> dict[str, list[tuple[float, float]]]:
    """Per member, each stretch the emulator held it down (down event to the next up event) after ``since``."""
    windows: dict[str, list[tuple[float, float]]] = {member.name: [] for member in fleet.members}
    down_at: dict[str, float] = {}
    for event in fleet.l4.events():
        if event['at'] < since:
            continue
        if event['to'] == 'down':
            down_at[event['member']] = event['at']
        elif event['to'] == 'up' and event['member'] in down_at:
            windows[event['member']].append((down_at.pop(event['member']), event['at']))
    assert not down_at, f'members left down after the rollout: {down_at}'
    return windows


def most_down_at_once(windows: t.Iterable[tuple[float, float]]) -> int:
    """The largest number of the given down stretches that overlap at one moment."""
    windows = list(windows)
    # At a tie an end sorts before a start (-1 < 1): touching stretches do not overlap.
    edges = sorted([(start, 1) for start, _end in windows] + [(end, -1) for _start, end in windows])
    most = current = 0
    for _at, step in edges:
        current += step
        most = max(most, current)
    return most


def firewall_changes(run: PlaybookRun) -> list[tuple[str, str]]:
    """(host, state) of every iptables rule change the role made (its firewall task loops over the sources)."""
    items = [(e['host'], item) for e in run.output if e['action'] == 'ansible.builtin.iptables' and e['status'] == 'ok'
             for item in e['result'].get('results', [])]
    return [(host, item['invocation']['module_args']['state']) for host, item in items if item['changed']]


def firewall_rules() -> str:
    return subprocess.run(['iptables', '-S', 'INPUT'], capture_output=True, text=True, timeout=10, check=True).stdout


@contextlib.contextmanager
def no_rule_left_behind(source: str) -> t.Iterator[None]:
    """Whatever the role or the test did, delete any INPUT rule for ``source`` on the way out (a killed run skips the role's always)."""
    try:
        yield
    finally:
        for rule in firewall_rules().splitlines():
            if rule.startswith('-A INPUT ') and f' -s {source}/' in rule:
                subprocess.run(['iptables', '-D', *shlex.split(rule)[1:]], capture_output=True, timeout=10, check=False)


# --- what every good rollout shows ------------------------------------------------------------

def assert_live_traffic(rollout: Rollout) -> None:
    """The traffic was the load asked for, on both kinds of client, all through the rollout."""
    traffic = rollout.traffic
    assert traffic.requests_per_second >= MIN_RATE, traffic.line()
    kinds = {record.kind for record in traffic.requests}
    assert kinds == {'keepalive', 'new'}, kinds
    during = [r for r in traffic.requests if rollout.started <= r.start <= rollout.ended]
    assert len(during) >= MIN_RATE * rollout.duration, f'{len(during)} requests in {rollout.duration:.1f}s'


def assert_batches_out_together(rollout: Rollout, fleet: Fleet, size: int) -> None:
    """Members went out ``size`` at a time, in order: each batch's stops overlap, batches follow each other."""
    stops = [stop_step(rollout.run, member) for member in fleet.members]
    batches = [stops[i:i + size] for i in range(0, len(stops), size)]
    for batch, following in zip(batches, batches[1:]):
        assert max(step.started for step in batch) < min(step.ended for step in batch), batch
        assert max(step.ended for step in batch) < min(step.started for step in following), (batch, following)


def assert_no_failure(rollout: Rollout) -> None:
    failed = [r for r in rollout.traffic.requests if r.outcome == 'failed']
    assert not failed, f'{len(failed)} failed requests, first ones: {failed[:5]}; {rollout.traffic.line()}'


def assert_new_version_everywhere(fleet: Fleet, rollout: Rollout) -> None:
    """Every member answers the new version, straight and through the VIP, once the rollout is over."""
    for member in fleet.members:
        assert member.served_version() == f'server={member.name} version={NEW_VERSION}'
    after = [r for r in rollout.traffic.requests if r.start > rollout.ended and r.outcome != 'failed']
    assert after, 'no request after the rollout'
    assert {r.version for r in after} == {NEW_VERSION}, {r.version for r in after}
    assert {r.server for r in after} == {member.name for member in fleet.members}, rollout.traffic.by_server


def assert_silent_while_stopped(fleet: Fleet, rollout: Rollout) -> None:
    """No request reaches a member between its proven drain (after its stop) and its start.

    The stop and the drain are one step (session_drain runs the stop command, then watches the
    socket table). A request still in flight at ``nginx -s quit`` is answered after the stop
    command returns (graceful quit); once the drain has seen no session left, nothing may be.
    """
    for member in fleet.members:
        drain = stop_step(rollout.run, member)
        start = start_step(rollout.run, member)
        assert drain.ended <= start.started, (member.name, drain, start)
        assert rollout.traffic.served_by(member.name, None, drain.started), f'{member.name} served nothing before its stop'
        inside = [r for r in rollout.traffic.served_by(member.name, drain.ended, start.started) if r.start >= drain.ended]
        assert not inside, f'{member.name} answered {len(inside)} requests while stopped: {inside[:3]}'
        late = rollout.traffic.served_by(member.name, drain.started, drain.ended)
        print(f'  {member.name}: stopped {start.started - drain.ended:.2f}s; answered {len(late)} in-flight requests during the stop and drain')


# --- 1. the L7 role, on both L4s ------------------------------------------------------------

# Batches of one on the emulator, of two on HAProxy: one wait, one guard, one L4 session count per batch.
BATCH = {EMULATOR: 1, HAPROXY: 2}


def with_probe(fleet: Fleet, tmp_path: pathlib.Path, **options: t.Any) -> tuple[dict[str, t.Any], dict[str, str]]:
    """The rolling deploy's probe of the fleet's VIP, and the environment that writes the rollout report under tmp_path."""
    host, port = fleet.vip()
    probe = {'urls': [f'http://{host}:{port}/'], 'dir': str(tmp_path / 'probe'), **options}
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'l4vip.rollout.rollout_report', 'L4VIP_ROLLOUT_REPORT_DIR': str(tmp_path / 'report')}
    return {'rolling_deploy_probe': probe}, env


GATE = 'Probe | the most failed requests the VIP may have during the rollout - 0'


def probe_record(tmp_path: pathlib.Path) -> dict[str, t.Any]:
    return json.loads((tmp_path / 'probe' / 'probe.json').read_text())


# On real HAProxy; the same role on the emulator runs in the rehearsal, molecule and the fault tests.
@pytest.mark.parametrize('l4', [HAPROXY])
def test_l7_rolling_deploy_fails_no_request(tmp_path, l4):
    with Fleet(tmp_path, FleetOptions(l4=l4)) as fleet:
        probe, env = with_probe(fleet, tmp_path)
        rollout = roll_out(fleet, tmp_path, extra_vars={'rolling_deploy_serial': BATCH[l4], **probe}, more_env=env)
        rollout.report(f'L7 role, {l4}, batches of {BATCH[l4]}')
        if BATCH[l4] > 1:
            assert_batches_out_together(rollout, fleet, BATCH[l4])
        assert rollout.run.returncode == 0, rollout.run.stderr[-3000:]
        assert_live_traffic(rollout)
        assert_no_failure(rollout)
        assert_new_version_everywhere(fleet, rollout)
        assert_silent_while_stopped(fleet, rollout)
        # The probe ran the whole rollout (its default, gentle rate), saw nothing fail, and the gate passed.
        seen = probe_record(tmp_path)
        assert seen['source'] == 'probe' and seen['failed'] == 0 and seen['total'] >= 4 * (seen['stopped'] - seen['started']), seen
        assert all(seen['started'] < stop_step(rollout.run, m).started and stop_step(rollout.run, m).ended < seen['stopped']
                   for m in fleet.members), 'the probe did not run through every stop'
        assert rollout.run.task(GATE)['msg'].startswith(f"the probe saw 0 failed of {seen['total']} requests")
        report = json.loads((tmp_path / 'report' / 'report.json').read_text())
        assert report['traffic']['source'] == 'probe' and report['traffic']['total'] == seen['total']
        check_timeline(tmp_path / 'report')


# --- 2. the L4 role, with its window closed -------------------------------------------------

# The firewall rule on HAProxy here; admin_disable on HAProxy over SSH (test_fleet_over_ssh.py). (The emulator
# passes both as well; left out to keep the suite's time.)
@pytest.mark.parametrize(('l4', 'closer'), [(HAPROXY, 'health_check_sources')])
def test_l4_rolling_deploy_with_the_window_closed_fails_no_request(tmp_path, l4, closer):
    # Three members on the emulator (one batch each), four on HAProxy (two batches of two).
    options = FleetOptions(groups={'web': 3 if l4 == EMULATOR else 4}, l4=l4, profile={'health_check': 'l4'},
                           l4_extra={'admin_disable': True} if closer == 'admin_disable' else {}, firewall=closer == 'health_check_sources')
    with Fleet(tmp_path, options) as fleet, no_rule_left_behind(fleet.l4.check_source):
        check_source = fleet.l4.check_source
        assert check_source not in firewall_rules()
        rollout = roll_out(fleet, tmp_path, extra_vars={'rolling_deploy_serial': BATCH[l4]})
        rollout.report(f'L4 role, {l4}, {closer}, batches of {BATCH[l4]}')
        assert rollout.run.returncode == 0, rollout.run.stderr[-3000:]
        assert_live_traffic(rollout)
        assert_no_failure(rollout)
        assert_new_version_everywhere(fleet, rollout)
        assert_silent_while_stopped(fleet, rollout)
        if closer == 'health_check_sources':
            # What closed the window, as the L4 itself saw it: each member marked down (its checks refused) before its stop.
            downs = [transition for transition in fleet.l4.transitions() if transition.to == 'down']
            for member in fleet.members:
                stop = stop_step(rollout.run, member)
                assert any(d.member == member.name and d.at < stop.started for d in downs), f'{member.name}: still bound at its stop'
            # The rule was put in and taken out once per member, and nothing of it is left.
            assert sorted(firewall_changes(rollout.run)) == sorted((m.name, state) for m in fleet.members for state in ('present', 'absent'))
            assert check_source not in firewall_rules()


# --- 3. the L4 role's plain sequence: the window, measured, and the probe's gate ---------------------------

def test_l4_plain_sequence_fails_requests_only_between_stop_and_mark_down_and_its_probe_fails_the_run(tmp_path):
    """On real HAProxy: the L4 role without admin_disable or health-check sources leaves the stop -> mark-down window
    open. Requests fail there and nowhere else; the rollout's probe of the VIP counts what the window costs, the
    report draws it, and the release gate fails the run although every member was deployed."""
    options = FleetOptions(groups={'web': 3}, l4=HAPROXY, profile={'health_check': 'l4'})
    with Fleet(tmp_path, options) as fleet:
        # A brisker probe than the default, so that a 0.2-0.4 s window per member is sure to be seen.
        probe, env = with_probe(fleet, tmp_path, keepalive_clients=4, keepalive_interval=0.05, new_connection_rate=40)
        rollout = roll_out(fleet, tmp_path, extra_vars=probe, more_env=env)
        rollout.report('L4 role, plain sequence, HAProxy')
        assert_live_traffic(rollout)
        assert_new_version_everywhere(fleet, rollout)
        downs = [transition for transition in fleet.l4.transitions() if transition.to == 'down']
        windows = {}
        for member in fleet.members:
            stop = stop_step(rollout.run, member)
            marked = [d.at for d in downs if d.member == member.name and d.at > stop.started]
            assert marked, f'{member.name}: HAProxy never marked it down after its stop'
            windows[member.name] = (stop.started, marked[0])
        failed = [r for r in rollout.traffic.requests if r.outcome == 'failed']
        print('  windows (s):', {name: round(end - start, 2) for name, (start, end) in windows.items()},
              'failures per window:', {name: sum(start <= r.end <= end + LATENESS for r in failed) for name, (start, end) in windows.items()})
        # The window is real (connections refused by a stopped member the L4 still binds)...
        assert failed, 'no request failed: the plain sequence has no window?'
        # ...and it is the only place where requests fail, for the test's clients and for the probe alike.
        seen = probe_record(tmp_path)
        print(f'  the probe: {seen["failed"]} failed of {seen["total"]}, {seen["failed_by_cause"]}')
        outside = [r.end for r in failed] + [r['end'] for r in seen['requests']]
        outside = [end for end in outside if not any(start <= end <= stop + LATENESS for start, stop in windows.values())]
        assert not outside, f'{len(outside)} failures outside every stop -> mark-down window: {outside[:5]}'
        # Every member was deployed; the gate alone failed the run, naming what the probe saw.
        assert seen['failed'] > 0 and set(seen['failed_by_cause']) <= {'refused', 'reset', 'closed'}, seen['failed_by_cause']
        assert rollout.run.returncode == 2, rollout.run.stderr[-3000:]
        failed_tasks = [(e['host'], e['task']) for e in rollout.run.output if e['status'] == 'failed']
        assert failed_tasks == [('localhost', GATE)], failed_tasks
        assert f"saw {seen['failed']} failed requests of {seen['total']} (max_failed 0)" in rollout.run.task(GATE)['msg']
        # The report, from the callback: each failure the probe saw is marked where it happened.
        report = json.loads((tmp_path / 'report' / 'report.json').read_text())
        assert [f['at'] for f in report['traffic']['failures']] == sorted(r['end'] for r in seen['requests'])
        drawn = check_timeline(tmp_path / 'report')
        assert drawn['rollout']['failures'] == seen['failed'] and drawn['rollout']['marks']


# --- 4. the unsafe flows: the harness tells them from the safe one ----------------------------
# (The plain L4 sequence above is one; the rehearsal's naive flow, run by the docs' own `make rehearsal`, another.)

def test_404_and_wait_without_a_stop_serves_the_member_during_its_deploy(tmp_path):
    with Fleet(tmp_path) as fleet:
        rollout = roll_out(fleet, tmp_path, PLAYBOOKS / 'no_stop.yml')
        rollout.report('404 + wait, no stop')
        assert rollout.run.returncode == 0, rollout.run.stderr[-3000:]
        downs = health_events(fleet, 'down')
        for member in fleet.members:
            deploy = deploy_step(rollout.run, member)
            assert any(at < deploy.started for at in downs[member.name]), f'{member.name}: deployed before the L4 marked it down'
            during = rollout.traffic.served_by(member.name, deploy.started, deploy.ended)
            print(f'  {member.name}: {len(during)} requests answered during its deploy, though marked down')
            # The session table keeps the keep-alive clients on it: the traffic never drains.
            assert [r for r in during if r.kind == KIND_KEEPALIVE], f'{member.name}: no keep-alive request during its deploy'


# --- 5. Reset On Port Fail does not hurt the safe sequence ------------------------------------

def test_l7_rolling_deploy_with_reset_on_port_fail_fails_only_what_the_l4_itself_cuts(tmp_path):
    with Fleet(tmp_path, FleetOptions(profile={'reset_on_port_fail': True})) as fleet:
        rollout = roll_out(fleet, tmp_path, extra_vars={'rolling_deploy_serial': 2})
        rollout.report('L7 role, reset_on_port_fail, batches of 2')
        assert_batches_out_together(rollout, fleet, 2)
        assert rollout.run.returncode == 0, rollout.run.stderr[-3000:]
        assert_live_traffic(rollout)
        assert_new_version_everywhere(fleet, rollout)
        assert_silent_while_stopped(fleet, rollout)
        # The option did act: the L4 reset the clients of each member it marked down.
        resets = fleet.l4.events('reset')
        assert {e['member'] for e in resets} == {member.name for member in fleet.members}, resets
        # The sequence itself fails nothing; the L4's own RST at a mark-down cuts a request that happens to be in
        # flight on the member at that instant (a new connection it still balanced there while Suspect). Any
        # failure must be such a one: a reset, in flight at one of the L4's resets.
        failed = [r for r in rollout.traffic.requests if r.outcome == 'failed']
        stray = [r for r in failed if r.cause != 'reset' or not any(r.start <= e['at'] <= r.end + LATENESS for e in resets)]
        assert not stray, f'{len(stray)} failures not cut by the L4 at a mark-down: {stray[:5]}; {rollout.traffic.line()}'


# --- 6. two VIPs, deployed in order, batch by batch -------------------------------------------

def test_two_groups_are_deployed_in_order_never_more_than_a_batch_down(tmp_path):
    # A canary, then the rest of each VIP in one batch (percentages are cut the same way: tests/unit/plugins/filter).
    with Fleet(tmp_path, FleetOptions(groups={'vip_a': 3, 'vip_b': 3})) as fleet:
        rollout = roll_out(fleet, tmp_path, extra_vars={'rolling_deploy_groups': ['vip_a', 'vip_b'], 'rolling_deploy_serial': [1, 2]})
        rollout.report('two VIPs, serial [1, 2]')
        assert rollout.run.returncode == 0, rollout.run.stderr[-3000:]
        assert_live_traffic(rollout)
        assert_no_failure(rollout)
        assert_new_version_everywhere(fleet, rollout)
        windows = out_windows(fleet, rollout.started)
        assert all(len(w) == 1 for w in windows.values()), windows
        batches = [['web1'], ['web2', 'web3'], ['web4'], ['web5', 'web6']]
        # Batch after batch, as the L4 saw it: each batch back up before the next one goes down...
        for earlier, later in zip(batches, batches[1:]):
            back = max(windows[name][0][1] for name in earlier)
            gone = min(windows[name][0][0] for name in later)
            assert back < gone, f'{later} went down at {gone:.3f}, before {earlier} was back at {back:.3f}'
        # ...so vip_a is done before vip_b starts, and a VIP never has more than its batch down at once.
        for group, size in (('vip_a', 2), ('vip_b', 2)):
            most = most_down_at_once(w for name, ws in windows.items() if fleet.group_of(name) == group for w in ws)
            assert most == size, f'{group}: {most} members down at once'


# --- 7. a drain with a deadline: force cuts exactly what held the member ----------------------

SLOW_BODY = 256 * 1024  # at nginx's 1 KB/s for /slow/: minutes, far past the drain's deadline


class SlowDownload:
    """A client holding a slow response open: GET /slow/big.bin through the VIP, read as it comes, in a thread."""

    def __init__(self, vip: tuple[str, int]) -> None:
        self.sock = socket.create_connection(vip, timeout=5)
        self.sock.sendall(b'GET /slow/big.bin HTTP/1.1\r\nHost: vip\r\n\r\n')
        head = b''
        while b'\r\n\r\n' not in head and len(head) < 8192:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f'the slow download got no answer: {head!r}')
            head += chunk
        header, _separator, body = head.partition(b'\r\n\r\n')
        fields = dict(line.split(': ', 1) for line in header.decode('latin-1').split('\r\n')[1:])
        self.member, self.length = fields['X-Served-By'], int(fields['Content-Length'])
        self.received, self.ended_at = len(body), None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        self.sock.settimeout(None)  # limited by the server: it ends the response, or the test closes the socket
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(65536):
                self.received += len(chunk)
        self.ended_at = time.time()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


def test_a_forced_drain_cuts_exactly_the_held_response_and_nothing_else_fails(tmp_path):
    members = 3
    force = {'l7_vip_deploy_drain_at_timeout': 'force', 'l7_vip_deploy_drain_timeout': 1.0}
    options = FleetOptions(groups={'web': members}, host_vars={f'web{i}': dict(force) for i in range(1, members + 1)})
    with Fleet(tmp_path, options) as fleet:
        for member in fleet.members:
            (member.docroot / 'slow').mkdir()
            (member.docroot / 'slow' / 'big.bin').write_bytes(b'x' * SLOW_BODY)
            options.host_vars[member.name]['l7_vip_deploy_force_stop_command'] = member.force_stop_command
        # One slow download held on web2; the round robin decides where each lands, so open until one does.
        held, others = None, []
        for _attempt in range(3 * members):
            download = SlowDownload(fleet.vip('web'))
            if download.member == 'web2':
                held = download
                break
            others.append(download)
        for download in others:
            download.close()
        assert held is not None, [d.member for d in others]
        try:
            rollout = roll_out(fleet, tmp_path)
        finally:
            held.close()
        rollout.report('L7 role, a held slow response, drain at_timeout force')
        assert rollout.run.returncode == 0, rollout.run.stderr[-3000:]
        drains = {m.name: rollout.run.task(task_named(rollout.run, m.name, 'Stop the web server'), m.name) for m in fleet.members}
        # web2 alone was forced, and exactly one session was cut: the held download, open since before its stop.
        assert {name: drain['forced'] for name, drain in drains.items()} == {'web1': False, 'web2': True, 'web3': False}, drains
        cut = drains['web2']['cut_sessions']
        assert len(cut) == 1 and cut[0]['state'] == 'ESTABLISHED' and cut[0]['open_for'] >= 1.0, cut
        assert all(drains[name]['cut_sessions'] == [] for name in ('web1', 'web3')), drains
        stop = stop_step(rollout.run, fleet.members[1])
        # The download was cut mid-body, by the force, after the drain's deadline.
        assert held.received < held.length and held.ended_at is not None, (held.received, held.length)
        assert stop.started + 1.0 <= held.ended_at <= stop.ended + LATENESS, (stop, held.ended_at)
        summary = rollout.run.task('Keep this host\'s summary as a fact, for later plays', 'web2')['ansible_facts']['l7_vip_deploy_summary']
        assert summary['cut_sessions'] == cut, summary
        # Nothing else failed: every other client request was answered (or retried on a FIN).
        assert_live_traffic(rollout)
        assert_no_failure(rollout)
        assert_new_version_everywhere(fleet, rollout)
        print(f'FIGURES forced drain: cut={cut} download {held.received}/{held.length} bytes, ended {held.ended_at - stop.started:.2f}s '
              f'into the stop of web2; {rollout.traffic.line()}')


def task_named(run: PlaybookRun, host: str, prefix: str) -> str:
    """The full name of the one task on ``host`` whose name starts with ``prefix`` (task names carry their limits)."""
    names = {entry['task'] for entry in host_entries(run, host) if entry['task'].startswith(prefix)}
    assert len(names) == 1, (host, prefix, names)
    return names.pop()


# --- 8. slots: at most max_out out at once, the next member going as soon as one is back ------

class OutCount:
    """The L4's own binding list, polled every 50 ms: the most members of the group out at one moment."""

    def __init__(self, fleet: Fleet, group: str = 'web') -> None:
        self.fleet, self.group = fleet, group
        self.most_out, self.samples = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OutCount:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive(), 'the L4 poller did not stop'

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            out = [member for member, bound in self.fleet.l4.bound(self.group).items() if not bound]
            self.most_out, self.samples = max(self.most_out, len(out)), self.samples + 1


@pytest.mark.parametrize('l4', [EMULATOR, HAPROXY])
def test_slots_keep_at_most_max_out_members_out_and_fail_no_request(tmp_path, l4):
    with Fleet(tmp_path, FleetOptions(groups={'web': 6}, l4=l4)) as fleet, OutCount(fleet) as watch:
        rollout = roll_out(fleet, tmp_path, extra_vars={'rolling_deploy_max_out': 2})
        rollout.report(f'slots, {l4}, max_out 2 of 6')
        assert rollout.run.returncode == 0, rollout.run.stderr[-3000:]
        # None from the strategy (run_once, max_fail_percentage); the claims warning is HAProxy's on the controller.
        warned = [line for line in rollout.run.stderr.splitlines() if 'WARNING' in line and "only this controller's rollouts" not in line]
        assert not warned, warned
        assert_live_traffic(rollout)
        assert_no_failure(rollout)
        assert_new_version_everywhere(fleet, rollout)
        # Each member down and up once, by the L4's own record; never more than two out as the L4's binding list said.
        seen = [(t.member, t.to) for t in fleet.l4.transitions() if t.at >= rollout.started]
        assert sorted(seen) == sorted((m.name, to) for m in fleet.members for to in ('down', 'up')), seen
        assert watch.samples > 50 and watch.most_out == 2, (watch.most_out, watch.samples)


# The release staged while the member serves (prepare), and only switched while it is out (deploy).
PREPARE = """\
---
- name: Prepare | stage the release beside the docroot, as a download and an unpack would
  ansible.builtin.copy:
    dest: "{{ fleet_docroot }}/../staged-{{ fleet_version }}.html"
    content: "server={{ inventory_hostname }} version={{ fleet_version }}\\n"
    mode: '0644'
"""
SWITCH = """\
---
- name: Deploy | switch to the staged release
  ansible.builtin.copy:
    src: "{{ fleet_docroot }}/../staged-{{ fleet_version }}.html"
    dest: "{{ fleet_docroot }}/index.html"
    remote_src: true
    mode: '0644'
"""


def test_slots_with_every_release_prepared_before_the_first_member_goes_out(tmp_path):
    prepare = tmp_path / 'prepare.yml'
    prepare.write_text(PREPARE, encoding='utf-8')
    options = FleetOptions(groups={'web': 4}, deploy_tasks=SWITCH, host_vars={f'web{n}': {'l7_vip_deploy_prepare_tasks': str(prepare)} for n in range(1, 5)})
    with Fleet(tmp_path, options) as fleet, OutCount(fleet) as watch:
        rollout = roll_out(fleet, tmp_path, extra_vars={'rolling_deploy_max_out': 2, 'rolling_deploy_prepare': 'group'})
        rollout.report('slots, max_out 2 of 4, prepared as a group')
        assert rollout.run.returncode == 0, rollout.run.stderr[-3000:]
        assert_no_failure(rollout)
        assert_new_version_everywhere(fleet, rollout)
        staged = [e for e in rollout.run.output if e['task'].startswith('Prepare | stage') and e['status'] == 'ok']
        outs = [e for e in rollout.run.output if e['task'] == 'Health check out of service (verified 404)']
        assert sorted(e['host'] for e in staged) == [m.name for m in fleet.members], 'each member prepared once, not again in its sequence'
        assert max(e['ended'] for e in staged) < min(e['started'] for e in outs), 'a member went out before every release was staged'
        summaries = {e['host']: e['result']['ansible_stats']['data']['l4vip_rollout'][e['host']] for e in rollout.run.output
                     if e['task'].startswith("Publish this host's summary")}
        assert all(s['prepared_at'] < s['out_at'] for s in summaries.values()), summaries
        assert watch.most_out == 2, watch.most_out
