"""Faults injected into a rollout while live traffic runs through the VIP (RELIABILITY.md, faults 1-5).

Each test starts a fleet (tests/harness/fleet.py: daemonized nginx on 127.0.0.11-18 behind the
embedded emulator or a real HAProxy), sends keep-alive and fresh-connection traffic through the
VIP for the whole test, runs ansible-playbook in its own session (so that the test can find every
process it left), injects one fault, and then judges from records that do not
depend on each other: every client request, the L4's event log (which members were out, and
when), each task's result (the test callback), and the processes still running.

Each test prints one ``FIGURES`` line (run with -s); RELIABILITY.md quotes them. Fault 5, the controller
killed mid-rollout, is shown on SSH-managed hosts in namespaces (tests/integration/test_fleet_over_ssh.py).
Addresses: nginx 127.0.0.11-18, the L4 127.0.0.150-153; ports 20500-20519.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import typing as t

import pytest
import yaml

from ansible_collections.l4vip.rollout.plugins.module_utils import _process, _sockets
from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic import Summary
from ansible_collections.l4vip.rollout.tests.harness.ansible import CALLBACKS, PLAYBOOK_BIN
from ansible_collections.l4vip.rollout.tests.harness.emulator_thread import is_mark
from ansible_collections.l4vip.rollout.tests.harness.fleet import EMULATOR, HAPROXY, MEMBER_PORT, Fleet, FleetOptions, deploy_tasks
from ansible_collections.l4vip.rollout.tests.harness.module_looks import between_looks, emulator_questions
from ansible_collections.l4vip.rollout.tests.harness.real_parts import port_accepts, wait_until
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

pytestmark = pytest.mark.real

ROLLING_DEPLOY = 'l4vip.rollout.rolling_deploy'
NEW_VERSION = '2'
# 8 keep-alive clients at 20 requests/s each, plus 20 fresh connections/s: ~180 requests/s.
TRAFFIC = {'keepalive_clients': 8, 'new_connection_rate': 20.0, 'request_interval': 0.05}
MIN_RATE = 100
THREE = {'web': 3}
# How long ansible-playbook's processes may take to go once it has exited or been killed.
GONE_WITHIN = 15.0
# For every keep-alive client to have had an answer (each asks every 0.05 s): a bound, not a pause.
ANSWERED_WITHIN = 5.0
SLACK = 1.5  # on top of a bound: ansible-playbook's own per-task cost on a busy machine

# The user's deploy tasks: the new version, a pause of fleet_deploy_seconds when set, and a check
# that fails while the file BROKEN is in the member's directory (the fault of test 1; removing it is the fix).
DEPLOY_TASKS = deploy_tasks("""
- name: Deploy | migrate, which fails while the member is broken
  ansible.builtin.command:
    argv: [test, '!', -e, "{{ fleet_docroot }}/../BROKEN"]
  changed_when: false
""")

# A fault only one member meets: the first to reach its migration removes the file FAULT and fails; every later one
# (and a re-run) finds it gone. On slots members go out in the order they ask, not the inventory's.
ONE_FAULT_DEPLOY = deploy_tasks("""
- name: Deploy | migrate, which fails for the first member to reach it
  ansible.builtin.command:
    argv: [sh, -c, '! rm -- "$1" 2>/dev/null', migrate, "{{ fleet_fault }}"]
  changed_when: false
""")


# --- ansible-playbook in its own session ---------------------------------------------------------

def environ_has(pid: int, marker: bytes) -> bool:
    try:
        return marker in pathlib.Path(f'/proc/{pid}/environ').read_bytes().split(b'\0')
    except OSError:
        return False


def command_line(pid: int) -> str:
    return ' '.join(_process.cmdline(pid) or [])


class Controller:
    """One ansible-playbook run, its processes marked by an environment variable that every process it starts
    inherits (its workers call setsid and outlive a killed parent, so neither session nor ancestry finds them);
    the nginx members it starts carry the mark too, and are the fleet's to account for."""

    def __init__(self, tmp_path: pathlib.Path, playbook: str | pathlib.Path, inventory: str | pathlib.Path,
                 extra_vars: dict[str, t.Any] | None = None, env: dict[str, str] | None = None) -> None:
        number = len(list(tmp_path.glob('controller-*.log')))
        self.log_path = tmp_path / f'controller-{number}.log'
        self.results_path = tmp_path / f'controller-{number}.json'
        home = tmp_path / 'ansible-home'
        environment = dict(os.environ, ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / 'tmp'), ANSIBLE_REMOTE_TMP=str(home / 'remote-tmp'),
                           ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), L4VIP_TEST_RESULTS=str(self.results_path), ANSIBLE_NOCOLOR='1',
                           ANSIBLE_HOST_KEY_CHECKING='0', ANSIBLE_RETRY_FILES_ENABLED='0', L4VIP_FAULTS_RUN=str(self.log_path), **(env or {}))
        self.marker = f'L4VIP_FAULTS_RUN={self.log_path}'.encode()
        command = [str(PLAYBOOK_BIN), '-i', str(inventory), str(playbook), '-e', json.dumps(extra_vars or {})]
        self.started = time.time()
        with open(self.log_path, 'wb') as log:
            # pylint: disable-next=consider-using-with  # waited for in finish()
            self.proc = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # its own process group: kill_all() reaches all of it
        self.ended: float | None = None
        self.gone_after: float | None = None  # seconds from the end until no process of the session was left

    def session_pids(self) -> list[int]:
        """Every live process of this run but the nginx members (ansible-playbook, its workers, modules, commands)."""
        pids = [int(entry) for entry in os.listdir('/proc') if entry.isdigit() and int(entry) != os.getpid()]
        # reap=False: ansible-playbook is our child, and its exit status is Popen's to collect.
        return sorted(pid for pid in pids
                      if environ_has(pid, self.marker) and _process.alive(pid, reap=False) and not command_line(pid).startswith('nginx: '))

    def finish(self, timeout: float = 120.0) -> Controller:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            raise AssertionError(f'ansible-playbook did not finish within {timeout:g}s:\n{self.log[-3000:]}') from None
        self.ended = time.time()
        self._wait_gone(self.ended)
        return self

    def _wait_gone(self, since: float) -> None:
        """Every process of the session gone, within GONE_WITHIN; else kill what is left and fail, naming it."""
        deadline = time.monotonic() + GONE_WITHIN
        # Each process left, waited for in turn within the one bound; then a new look, for any started meanwhile.
        while (left := self.session_pids()) and deadline > time.monotonic():
            for pid in left:
                if not _process.wait_gone(pid, max(0.0, deadline - time.monotonic()), reap=False):
                    break
        self.gone_after = time.time() - since
        if left:
            described = {pid: command_line(pid) for pid in left}
            self.kill_all()
            raise AssertionError(f'processes of the controller still running {GONE_WITHIN:g}s on: {described}')

    def kill_all(self) -> None:
        """SIGKILL to every process of the run, each waited for (StillRunning if one outlives it)."""
        for pid in self.session_pids():
            _process.terminate(pid, _process.KILL_TIMEOUT, signum=signal.SIGKILL, reap=False)
        if self.proc.poll() is None:  # not among them (its environment unreadable, say)
            _process.terminate(self.proc.pid, _process.KILL_TIMEOUT, signum=signal.SIGKILL, reap=False)
            self.proc.wait(5)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding='utf-8', errors='replace')

    @property
    def output(self) -> list[dict[str, t.Any]]:
        """Each task's result (the test callback writes them at the end of a run that was not killed)."""
        return json.loads(self.results_path.read_text()) if self.results_path.exists() else []

    def entries(self, host: str, prefix: str = '') -> list[dict[str, t.Any]]:
        """What ran on ``host`` (by task name prefix), less rolling_deploy's read-only preflight of every member."""
        return [e for e in self.output if e['host'] == host and e['status'] != 'skipped' and e['task'].startswith(prefix)
                and e['play'] != PREFLIGHT_PLAY]

    def failed_task(self) -> dict[str, t.Any]:
        failed = [e for e in self.output if e['status'] == 'failed' and e['task'] != 'Stop the rollout']
        assert failed, f'no task failed:\n{self.log[-3000:]}'
        return failed[0]


# --- the fleet, its traffic and what the L4 saw --------------------------------------------------

class Faulty:
    """A fleet with traffic through its (single) VIP for as long as the test runs."""

    def __init__(self, tmp_path: pathlib.Path, options: FleetOptions) -> None:
        self.tmp_path = tmp_path
        self.fleet = Fleet(tmp_path, options)
        self.traffic: TrafficThread | None = None
        self.summary: Summary | None = None
        self.runs: list[Controller] = []

    def __enter__(self) -> Faulty:
        self.fleet.__enter__()
        try:
            self.traffic = TrafficThread(*self.fleet.vip(), **TRAFFIC)
            self.traffic.start()
            self.traffic.wait_every_client_answered(ANSWERED_WITHIN)  # every keep-alive client holds a session before anything happens
        except BaseException:
            self.fleet.close()
            raise
        self.started = time.time()
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        try:
            for run in self.runs:
                if run.returncode is None:
                    run.kill_all()
            if self.traffic is not None and self.summary is None:
                self.traffic.stop()
        finally:
            self.fleet.close()

    def stop_traffic(self, servers: t.Iterable[str] = ()) -> Summary:
        """Stop the traffic once it has gone on after the last change: every keep-alive client answered once more,
        and each of ``servers`` has answered."""
        self.traffic.wait_every_client_answered(ANSWERED_WITHIN, since=time.time(), servers=servers)
        self.summary = self.traffic.stop()
        return self.summary

    def rollout(self, extra_vars: dict[str, t.Any] | None = None, playbook: str | pathlib.Path = ROLLING_DEPLOY,
                env: dict[str, str] | None = None) -> Controller:
        """Start a run (not waited for); the inventory is written anew each time."""
        inventory = self.fleet.write_inventory()
        run = Controller(self.tmp_path, playbook, inventory, {'fleet_version': NEW_VERSION, **(extra_vars or {})}, env)
        self.runs.append(run)
        return run

    # the L4's view
    def health_events(self, since: float = 0.0) -> list[dict[str, t.Any]]:
        return [e for e in self.fleet.l4.events() if e['at'] >= since and is_mark(e)]

    def out_stretches(self, since: float = 0.0) -> dict[str, list[tuple[float, float | None]]]:
        """Per member, each stretch the L4 held it down after ``since`` (its own record, emulator or HAProxy):
        (down, up), up None while still down."""
        stretches: dict[str, list[tuple[float, float | None]]] = {m.name: [] for m in self.fleet.members}
        for transition in sorted(self.fleet.l4.transitions(), key=lambda tr: tr.at):
            runs = stretches[transition.member]
            if transition.at < since:
                continue
            if transition.to == 'down':
                runs.append((transition.at, None))
            elif runs and runs[-1][1] is None:
                runs[-1] = (runs[-1][0], transition.at)
        return stretches

    def bound(self) -> dict[str, bool]:
        return self.fleet.l4.bound('web')


def most_out_at_once(stretches: dict[str, list[tuple[float, float | None]]]) -> int:
    """The largest number of members down at one moment (touching stretches do not overlap)."""
    edges = sorted([(start, 1) for runs in stretches.values() for start, _end in runs]
                   + [(end, -1) for runs in stretches.values() for _start, end in runs if end is not None])
    most = current = 0
    for _at, step in edges:
        current += step
        most = max(most, current)
    return most


def assert_no_request_failed(summary: Summary) -> None:
    failed = [r for r in summary.requests if r.outcome == 'failed']
    assert not failed, f'{len(failed)} failed requests, first ones: {failed[:5]}; {summary.line()}'
    assert summary.requests_per_second >= MIN_RATE, summary.line()


def versions(fleet: Fleet) -> dict[str, str]:
    """What each member has on disk (a stopped member cannot be asked over HTTP)."""
    return {m.name: (m.docroot / 'index.html').read_text(encoding='utf-8').split('version=')[1].strip() for m in fleet.members}


def figures(fault: str, summary: Summary, runs: list[Controller], **more: t.Any) -> None:
    """One line a person can read and RELIABILITY.md quotes."""
    extra = ' '.join(f'{key}={value}' for key, value in more.items())
    gone = ','.join(f'{run.gone_after:.2f}s' for run in runs)
    print(f'\nFIGURES {fault}: requests={len(summary.requests)} failed={summary.failed} retried={summary.retried} '
          f'rc={[run.returncode for run in runs]} {extra} controller_processes_gone_after={gone} leftover=0')


# rolling_deploy reads every member's health check before it plans (it changes nothing).
PREFLIGHT_PLAY = 'Check every member and find those an earlier run left out of the VIP'


# --- 1. the user's deploy tasks fail on one host ---------------------------------------------------

def web2_fails_its_migration(lab: Faulty) -> tuple[Controller, str, pathlib.Path]:
    """web2's migration broken (the file BROKEN), one rollout run: it fails at web2's migration and stops there. The run,
    its stop message, and the file whose removal is the fix."""
    broken = lab.fleet.member('web2').workdir / 'BROKEN'
    broken.write_text('the migration of web2 fails\n', encoding='utf-8')
    first = lab.rollout().finish()
    assert first.returncode != 0, first.log[-3000:]
    failed = first.failed_task()
    assert (failed['host'], failed['task']) == ('web2', 'Deploy | migrate, which fails while the member is broken')
    return first, first.entries('web2', 'Stop the rollout')[0]['result']['msg'], broken


def test_failed_deploy_leaves_the_host_out_stops_the_rollout_and_a_rerun_finishes(tmp_path):
    options = FleetOptions(groups=THREE, deploy_tasks=DEPLOY_TASKS)
    with Faulty(tmp_path, options) as lab:
        fleet = lab.fleet
        web1, web2, web3 = fleet.members
        first, stop, broken = web2_fails_its_migration(lab)
        assert stop.startswith("l7_vip_deploy stopped on web2 at 'Deploy | migrate, which fails while the member is broken'"), stop
        assert stop.endswith('The member is left out of the VIP (health check out of service).'), stop
        # web2 stays out: health check renamed away (404), server not started again, the L4 holds it down.
        assert not web2.health_check_path.exists() and (web2.docroot / 'health_check.html.disabled').exists()
        assert not port_accepts(web2.address, web2.port)[0]
        assert not first.entries('web2', 'Start the web server') and not first.entries('web2', 'Wait until the L4 has bound')
        assert lab.bound() == {'web1': True, 'web2': False, 'web3': True}
        # The rollout stopped: web3 was never touched.
        assert not first.entries('web3'), [e['task'] for e in first.entries('web3')]
        assert versions(fleet) == {'web1': NEW_VERSION, 'web2': NEW_VERSION, 'web3': '1'}
        stretches = lab.out_stretches(lab.started)
        assert [end is not None for _start, end in stretches['web1']] == [True], stretches
        assert [end is None for _start, end in stretches['web2']] == [True], stretches
        assert stretches['web3'] == [], stretches
        assert stretches['web1'][0][1] < stretches['web2'][0][0]

        figures('fault 1 (deploy tasks fail on web2), first run', lab.traffic.snapshot(), [first], first_run=f'{first.ended - first.started:.1f}s')
        assert_no_request_failed(lab.traffic.snapshot())

        # The fix, then the same command again: it finishes the job.
        broken.unlink()
        second = lab.rollout().finish()
        assert second.returncode == 0, second.log[-4000:]
        assert versions(fleet) == {'web1': NEW_VERSION, 'web2': NEW_VERSION, 'web3': NEW_VERSION}
        fleet.wait_all_bound(2.0)
        assert web2.health_check_path.exists() and web2.served_version() == f'server=web2 version={NEW_VERSION}'
        whole = lab.out_stretches(lab.started)
        assert all(end is not None for runs in whole.values() for _start, end in runs), whole
        assert len(whole['web3']) == 1, whole
        summary = lab.stop_traffic(servers=('web1', 'web2', 'web3'))
        assert_no_request_failed(summary)
        served_after = {r.server for r in summary.requests if r.start > second.ended and r.outcome != 'failed'}
        assert served_after == {'web1', 'web2', 'web3'}, served_after
        figures('fault 1 (deploy tasks fail on web2, then fixed and re-run)', summary, [first, second],
                first_run=f'{first.ended - first.started:.1f}s', rerun=f'{second.ended - second.started:.1f}s',
                web2_out_for=f'{whole["web2"][0][1] - whole["web2"][0][0]:.1f}s', most_out_at_once=most_out_at_once(whole))
        # Never more than the batch (1) out of the VIP, the re-run included.
        assert most_out_at_once(whole) == 1, whole


def test_an_l4_checked_deploy_failure_leaves_the_web_server_stopped_and_a_rerun_finishes(tmp_path):
    """The L4 role, plain (no admin state, no firewall): web2's deploy fails after its stop; the rescue, an include of
    the stop, runs it again (nothing left to stop) so that it stays out, and the failed summary is published; the fix
    and a re-run take web2 first and complete. The plain sequence's own window (stop -> mark-down) may fail requests:
    not judged here."""
    options = FleetOptions(groups=THREE, deploy_tasks=DEPLOY_TASKS, profile={'health_check': 'l4'})
    with Faulty(tmp_path, options) as lab:
        fleet = lab.fleet
        web2 = fleet.member('web2')
        first, stop, broken = web2_fails_its_migration(lab)
        assert stop.startswith("l4_vip_deploy stopped on web2 at 'Deploy | migrate, which fails while the member is broken'"), stop
        drains = [e for e in first.entries('web2', 'Stop the web server') if e['status'] == 'ok']
        assert len(drains) == 2 and all(d['result']['drained'] for d in drains), drains  # the sequence's, then the rescue's
        summary = first.entries('web2', "Publish this host's summary, failed")[0]['result']['ansible_stats']['data']['l4vip_rollout']['web2']
        assert (summary['result'], summary['cut_sessions'], summary['up_at']) == ('failed', [], None), summary
        assert summary['out_at'] < summary['down_at'], summary
        assert not port_accepts(web2.address, web2.port)[0]
        assert lab.bound() == {'web1': True, 'web2': False, 'web3': True}
        assert not first.entries('web3'), [e['task'] for e in first.entries('web3')]

        broken.unlink()
        second = lab.rollout().finish()
        assert second.returncode == 0, second.log[-4000:]
        plan = next(e for e in second.output if e['task'] == 'Cut each VIP group into batches by rolling_deploy_serial')
        assert plan['result']['ansible_facts']['rolling_deploy_plan']['hosts'][0] == 'web2'
        assert versions(fleet) == dict.fromkeys(('web1', 'web2', 'web3'), NEW_VERSION)
        fleet.wait_all_bound(2.0)
        whole = lab.out_stretches(lab.started)
        assert most_out_at_once(whole) == 1, whole
        summary = lab.stop_traffic(servers=('web1', 'web2', 'web3'))
        figures('L4-checked, plain: deploy tasks fail on web2, then fixed and re-run', summary, [first, second])


@pytest.mark.parametrize('l4', [EMULATOR, HAPROXY])
def test_slots_after_a_failure_start_no_new_member_finish_those_out_and_a_rerun_completes(tmp_path, l4):
    """Six members, at most two out; the deploy of the first member to reach its migration fails, whichever it is. The
    member out with it finishes, none starts after it, the failed one stays out; a re-run takes it first and completes,
    never more than two out by the L4's own record of its transitions."""
    six = [f'web{n}' for n in range(1, 7)]
    with Faulty(tmp_path, FleetOptions(groups={'web': 6}, deploy_tasks=ONE_FAULT_DEPLOY, l4=l4)) as lab:
        fleet = lab.fleet
        fault = tmp_path / 'FAULT'
        fault.write_text('the first migration fails\n', encoding='utf-8')
        slots = {'rolling_deploy_max_out': 2, 'fleet_fault': str(fault)}
        first = lab.rollout(slots).finish()
        assert first.returncode != 0, first.log[-3000:]
        failed = first.failed_task()
        culprit = failed['host']
        assert failed['task'] == 'Deploy | migrate, which fails for the first member to reach it' and not fault.exists(), failed
        guard = 'Capacity guard | enough members stay bound while this batch is out'
        went = [m for m in six if first.entries(m, guard) and first.entries(m, guard)[0]['status'] == 'ok']
        refused = [m for m in six if first.entries(m, guard) and first.entries(m, guard)[0]['status'] == 'failed']
        # Every member asked for a slot: those that got one before the failure went, the others were refused.
        assert culprit in went and refused and sorted(went + refused) == six, (went, refused)
        # The failure counts for the guard once the rescue has marked the failed member's claim left out.
        recorded = first.entries(culprit, "Keep the member's claim, marked left out for the next rollout")[0]['ended']
        assert all(first.entries(m, guard)[0]['ended'] <= recorded for m in went), (went, refused)
        for member in refused:
            assert f'no member goes out after a failure in this rollout: {culprit}' in first.entries(member, guard)[0]['result']['msg']
        done = [m for m in went if m != culprit]
        assert versions(fleet) == {m: NEW_VERSION if m in went else '1' for m in six}
        assert lab.bound() == {m: m != culprit for m in six}
        stretches = lab.out_stretches(lab.started)
        assert all([end is not None for _start, end in stretches[m]] == [True] for m in done), stretches
        assert [end is None for _start, end in stretches[culprit]] == [True], stretches
        assert all(stretches[m] == [] for m in six if m not in went), stretches
        assert most_out_at_once(stretches) <= 2, stretches

        second = lab.rollout(slots).finish()
        assert second.returncode == 0, second.log[-4000:]
        plan = next(e for e in second.output if e['task'] == 'Cut each VIP group into batches by rolling_deploy_serial')
        assert plan['result']['ansible_facts']['rolling_deploy_plan']['hosts'][0] == culprit
        assert versions(fleet) == dict.fromkeys(six, NEW_VERSION)
        fleet.wait_all_bound(2.0)
        whole = lab.out_stretches(lab.started)
        summary = lab.stop_traffic(servers=six)
        assert_no_request_failed(summary)
        figures(f'slots on {l4}, the first migration fails, then a re-run', summary, [first, second], failed=culprit,
                went_first_run=','.join(went), refused=','.join(refused), most_out_at_once=most_out_at_once(whole))
        assert most_out_at_once(whole) <= 2, whole


# --- 2. a session never drains ---------------------------------------------------------------

BIG = 256 * 1024 * 1024  # sparse: far more than every buffer between nginx and a client that does not read


class SlowDownload:
    """A client of the VIP that asks for a large file and reads it one small piece at a time."""

    def __init__(self, vip: tuple[str, int], want: str, attempts: int = 30) -> None:
        self.sock: socket.socket | None = None
        self.received = 0
        for _attempt in range(attempts):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(3)
            sock.connect(vip)
            sock.sendall(f'GET /big.bin HTTP/1.1\r\nHost: {vip[0]}\r\n\r\n'.encode())
            head = b''
            while b'\r\n\r\n' not in head and len(head) < 8192:
                head += sock.recv(1024)
            self.received += len(head.partition(b'\r\n\r\n')[2])
            if f'X-Served-By: {want}'.encode() in head:
                self.sock, self.head = sock, head
                return
            sock.close()
        raise AssertionError(f'no connection through the VIP landed on {want} in {attempts} attempts')

    @property
    def local(self) -> str:
        host, port = self.sock.getsockname()
        return f'{host}:{port}'

    def read_some(self, size: int = 65536) -> int:
        """Read up to ``size`` more bytes; how many came (the response is still flowing when > 0)."""
        got = 0
        while got < size:
            chunk = self.sock.recv(min(16384, size - got))
            if not chunk:
                break
            got += len(chunk)
        self.received += got
        return got

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def test_a_session_that_never_drains_stops_the_rollout_with_capacity_intact(tmp_path):
    drain_timeout = 2
    options = FleetOptions(groups=THREE, host_vars={name: {'l7_vip_deploy_drain_timeout': drain_timeout} for name in ('web1', 'web2', 'web3')})
    with Faulty(tmp_path, options) as lab:
        fleet = lab.fleet
        web1 = fleet.members[0]
        for member in fleet.members:
            with open(member.docroot / 'big.bin', 'wb') as handle:
                handle.truncate(BIG)
        slow = SlowDownload(fleet.vip(), 'web1')
        try:
            assert slow.read_some() > 0
            # What the kernel shows on web1 before the rollout: the L4's connections to it (the slow one among them).
            held = [s.peer for s in _sockets.client_sessions(_sockets.read_sockets(), MEMBER_PORT, web1.address)]
            assert held, 'no session on web1'
            run = lab.rollout().finish()
            assert run.returncode != 0, run.log[-3000:]
            failed = run.failed_task()
            assert (failed['host'], failed['task'].split(', at most')[0]) == (
                'web1', "Stop the web server (its FINs end the L4's sessions) and wait until no client connection is left on it"), failed['task']
            message = failed['result']['msg']
            # It gave up at its timeout, naming the peer(s) left: at least the slow download's.
            assert f'remain on port {MEMBER_PORT} after {drain_timeout}s' in message, message
            # Exactly one left, the slow download's (the keep-alive clients' sessions ended with the stop's FINs)...
            named = [s['peer'] for s in failed['result']['sessions']]
            assert len(named) == 1 and named[0] in held and named[0] in message, (held, named, message)
            # ...and the L4 still pins the slow client to web1.
            pinned = [row['client'] for row in fleet.l4.api('/api/sessions?vip=web&member=web1')]
            assert slow.local in pinned, (slow.local, pinned)
            gave_up = failed['ended'] - failed['started']
            assert drain_timeout <= gave_up <= drain_timeout + SLACK, gave_up
            # The rollout stopped at web1, which stays out (404); the others are untouched: capacity intact.
            assert not run.entries('web2') and not run.entries('web3')
            assert not web1.health_check_path.exists()
            assert lab.bound() == {'web1': False, 'web2': True, 'web3': True}
            stretches = lab.out_stretches(lab.started)
            assert len(stretches['web1']) == 1 and stretches['web1'][0][1] is None, stretches
            assert stretches['web2'] == stretches['web3'] == [], stretches
            assert versions(fleet) == {'web1': '1', 'web2': '1', 'web3': '1'}
            # The role did not cut the client's session: its download still flows (nginx's graceful quit finishes it).
            assert slow.read_some() > 0
        finally:
            slow.close()
        # Once the client goes, the old nginx finishes its last response and exits.
        wait_until(lambda: (not web1.pids(), web1.pids()), 10.0, 'web1 nginx gone after the slow client closed')
        summary = lab.stop_traffic()
        assert_no_request_failed(summary)
        figures('fault 2 (a download that never drains on web1)', summary, [run], drain_timeout=f'{drain_timeout}s',
                gave_up_after=f'{gave_up:.2f}s', peers_named=len(named), slow_client_bytes=slow.received)


# --- 3. a server never comes back -----------------------------------------------------------

def test_a_server_that_never_comes_back_stops_the_rollout_and_no_other_host_goes_out(tmp_path):
    # web1's start command starts nothing, and nothing verifies its health check over HTTP:
    # only the L4's checks can tell that it is not back.
    options = FleetOptions(groups=THREE, host_vars={'web1': {'l7_vip_deploy_start_command': ['/bin/true'], 'l7_vip_deploy_health_check_verify': False}})
    with Faulty(tmp_path, options) as lab:
        fleet = lab.fleet
        web1 = fleet.members[0]
        run = lab.rollout().finish()
        assert run.returncode != 0, run.log[-3000:]
        failed = run.failed_task()
        # The batch's wait (once, for web1's batch) gave up; web1's own check of it failed the host.
        assert (failed['host'], failed['task']) == ('web1', 'Wait until the L4 has bound the member again'), failed['task']
        wait, = run.entries('web1', 'Wait until the L4 has bound the batch again, at most ')
        bound = float(wait['task'].split(', at most ')[1].removesuffix(' s'))
        message = failed['result']['msg']
        assert message.startswith(f'web1 was not up within {bound:g}s; the L4 last said: '), message
        assert wait['result']['bound'] is False, wait['result']
        gave_up = wait['ended'] - wait['started']
        assert bound <= gave_up <= bound + SLACK, (bound, gave_up)
        # The rescue took the health check out again; web1 stays out, and no other host was taken out.
        assert not web1.health_check_path.exists()
        assert not run.entries('web2') and not run.entries('web3')
        assert lab.bound() == {'web1': False, 'web2': True, 'web3': True}
        stretches = lab.out_stretches(lab.started)
        assert len(stretches['web1']) == 1 and stretches['web1'][0][1] is None, stretches
        assert stretches['web2'] == stretches['web3'] == [], stretches
        summary = lab.stop_traffic()
        assert_no_request_failed(summary)
        assert not summary.served_by('web1', run.ended), 'web1 answered after the rollout stopped'
        figures('fault 3 (web1 never comes back)', summary, [run], up_bound=f'{bound:g}s', gave_up_after=f'{gave_up:.2f}s',
                l4_last_said=repr(wait['result']['observed']))


# --- 4. the L4's API vanishes mid-wait ---------------------------------------------------------

# A slower profile, so that the wait is surely under way when the API goes: down 4-6 s after the 404. The module's
# first question comes 2-3 s after it (ansible-playbook's start and the module's, on a busy 2-core machine), and the
# test waits for that question before it takes the API away.
SLOW_PROFILE = {'interval': 2.0, 'retry': 2, 'rise': 1, 'check_timeout': 0.5}
DOWN_BOUND = 6.0  # (retry + 1) * interval


@pytest.mark.parametrize(('l4', 'fallback'), [(EMULATOR, 'fail'), (EMULATOR, 'timer'), (HAPROXY, 'fail'), (HAPROXY, 'timer')])
def test_the_l4_api_vanishing_mid_wait_is_a_clear_error_or_the_timer_wait(tmp_path, l4, fallback):
    with Faulty(tmp_path, FleetOptions(groups=THREE, l4=l4, profile=SLOW_PROFILE)) as lab:
        fleet = lab.fleet
        web1 = fleet.members[0]
        provider = fleet.l4.provider('web', 'web1')
        endpoint = provider['endpoint']
        playbook = tmp_path / 'wait.yml'
        playbook.write_text(yaml.safe_dump([{'name': 'wait', 'hosts': 'localhost', 'gather_facts': False, 'tasks': [
            {'name': 'Wait until the L4 has marked web1 down', 'l4vip.rollout.member_wait': dict(
                provider, state='down', since='{{ fleet_since }}', timeout=10, poll_interval=0.05, profile=fleet.profile, fallback=fallback),
             # As a module even on the controller: for HAProxy the test sees the module's process under way (below).
             'vars': {'l4vip_rollout_in_process': False}},
        ]}]), encoding='utf-8')
        inventory = tmp_path / 'localhost.yml'
        inventory.write_text(yaml.safe_dump({'all': {'hosts': {'localhost': {
            'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}), encoding='utf-8')
        # The role's first step, done by the test: web1 fails its checks from now on.
        since = time.time()
        web1.health_check_path.rename(web1.docroot / 'health_check.html.disabled')
        asked = emulator_questions(fleet.l4.thread) if l4 == EMULATOR else None  # nothing but the module asks it meanwhile
        before = asked() if asked is not None else 0
        # Unpipelined, so that the module's own process runs its AnsiballZ file (between_looks finds it by that).
        run = Controller(tmp_path, playbook, inventory, {'fleet_since': since}, env={'ANSIBLE_PIPELINING': '0'})
        lab.runs.append(run)

        # The wait is under way once the module has asked the L4: the emulator counts the questions to its API; HAProxy's
        # count of accepted connections (real_parts.connections_counter) takes in the traffic through its frontend too,
        # so there the module's own process is seen asleep between two questions (tests/harness/module_looks.py).
        def under_way() -> tuple[bool, dict[str, t.Any]]:
            if asked is not None:
                done, seen = (now := asked()) > before, {'questions': now - before}
            else:
                done, seen = between_looks('member_wait', tmp_path)
            return done, {'module': seen, 'playbook returncode': run.proc.poll()}
        wait_until(under_way, 10.0, f"member_wait's first question to {l4}", poll=0.01)
        gone_at = time.time()
        if l4 == EMULATOR:
            fleet.l4.close_control_api()
            assert not fleet.l4.control_api_accepts()
        else:
            pathlib.Path(endpoint).unlink()
        run.finish(30)
        wait = run.output[0]
        result = wait['result']
        if l4 == EMULATOR:
            fleet.l4.reopen_control_api()  # for the event log only
            # The L4 itself went on: it marks web1 down within the timing model's window, after the API had gone.
            wait_until(lambda: (bool(seen := [e['at'] for e in lab.health_events(since) if e['member'] == 'web1' and e['to'] == 'down']), seen),
                       max(0.1, since + DOWN_BOUND + 1.0 - time.time()), 'web1 marked down')
            down_at = [e['at'] for e in lab.health_events(since) if e['member'] == 'web1' and e['to'] == 'down']
            assert gone_at < down_at[0] <= since + DOWN_BOUND + 0.1, 'the API did not vanish before the L4 marked web1 down: no wait was cut'
        if fallback == 'fail':
            assert run.returncode != 0 and wait['status'] == 'failed', run.log[-3000:]
            assert result['msg'].startswith(f'cannot reach the L4 at {endpoint}'), result['msg']
            assert result['endpoint'].startswith(endpoint), result['endpoint']
            gave_up = result['ended_at'] - gone_at
            assert 0 <= gave_up <= SLACK, gave_up
            assert result['ended_at'] - since < DOWN_BOUND, 'it should fail at once, not after the timer wait'
        else:
            assert run.returncode == 0 and wait['status'] == 'ok', run.log[-3000:]
            assert result['fallback_used'] is True and result['bound'] is None
            assert result['observed'].startswith('unknown: cannot reach the L4 at'), result['observed']
            assert any(f'falling back to the timer: waiting {DOWN_BOUND:g}s' in w for w in result.get('warnings', [])), result.get('warnings')
            assert '[WARNING]' in run.log and 'cannot reach the L4' in run.log
            gave_up = result['ended_at'] - since
            assert DOWN_BOUND <= gave_up <= DOWN_BOUND + SLACK, gave_up
            if l4 == EMULATOR:
                assert down_at[0] <= result['ended_at'], 'the timer wait ended before the L4 marked web1 down'
        summary = lab.stop_traffic()
        # The data path never depended on the API: nothing failed, and web1 (404, not stopped) kept its sessions.
        assert_no_request_failed(summary)
        figures(f'fault 4 ({l4} API gone mid-wait, fallback {fallback})', summary, [run],
                ended_after_api_gone=f'{result["ended_at"] - gone_at:.2f}s', ended_after_404=f'{result["ended_at"] - since:.2f}s',
                msg=repr(result['msg'] if fallback == 'fail' else result['observed'])[:90])
