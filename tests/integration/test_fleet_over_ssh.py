"""Rolling deploys of a real fleet: web hosts over SSH in their own namespaces, HAProxy on its own LB host.

The L4's runtime API is reachable from the controller (a socket on its filesystem) and from the LB
host (its own loopback), never from a web host: the roles' L4 steps must run where the L4 is, once
per batch. Live traffic (keep-alive and new-connection clients) runs through the VIP from the
controller's namespace the whole time, and HAProxy's own state is polled every 50 ms to count the
members out of the VIP at once. See tests/harness/netns.py for the topology.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import typing as t

import pytest

from ansible_collections.l4vip.rollout.tests.harness.ansible import PLAYBOOK_BIN, _playbook_env, run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.fleet import deploy_tasks
from ansible_collections.l4vip.rollout.tests.harness.netns import LB, LB_RUNTIME_PORT, NetnsFleet, NetnsOptions, require_netns
from ansible_collections.l4vip.rollout.tests.harness.real_parts import port_accepts, wait_until
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

pytestmark = pytest.mark.real

NEW = '2'
# At least 16 keep-alive clients (20 requests/s each) and new connections at 20/s.
TRAFFIC = {'keepalive_clients': 16, 'new_connection_rate': 20.0, 'request_interval': 0.05}
ROLLOUT = {'rolling_deploy_groups': ['web'], 'fleet_version': NEW}
WATCH_EVERY = 0.05


class OutWatch:
    """HAProxy's own binding list, read every 50 ms from the controller: the most members out at one moment."""

    def __init__(self, fleet: NetnsFleet) -> None:
        self.fleet = fleet
        self.most_out = 0
        self.ever_out: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OutWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_EVERY):
            out = {member for member, bound in self.fleet.l4.bound().items() if not bound}
            self.most_out = max(self.most_out, len(out))
            self.ever_out |= out
            self.samples += 1


def versions(fleet: NetnsFleet) -> dict[str, str]:
    """What each web host has in its docroot, read inside the host (its /srv is its own)."""
    return {m.name: fleet.run_on(m, ['cat', f'{m.docroot}/index.html'], check=True).stdout.split('version=')[1].strip() for m in fleet.members}


def transitions_of(fleet: NetnsFleet) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {m.name: [] for m in fleet.members}
    for transition in fleet.l4.transitions():
        seen[transition.member].append(transition.to)
    return seen


def rollout_under_traffic(tmp_path, fleet: NetnsFleet, extra: dict[str, t.Any] | None = None, all_back: bool = True,
                          **run: t.Any) -> tuple[t.Any, t.Any, OutWatch]:
    inventory = fleet.write_inventory()
    with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic, OutWatch(fleet) as watch:
        result = run_collection_playbook(tmp_path, 'l4vip.rollout.rolling_deploy', inventory, {**ROLLOUT, **(extra or {})}, timeout=240, **run)
        if all_back:
            fleet.wait_all_bound()
        summary = traffic.stop()
    return result, summary, watch


def assert_clean_rollout(fleet: NetnsFleet, result: t.Any, summary: t.Any, watch: OutWatch) -> None:
    assert result.returncode == 0, result.stderr[-4000:]
    assert summary.failed == 0 and summary.ok > 500, summary.line()
    assert watch.samples > 50 and watch.most_out == 1 and watch.ever_out == {m.name for m in fleet.members}, vars(watch)
    assert versions(fleet) == {m.name: NEW for m in fleet.members}
    assert transitions_of(fleet) == {m.name: ['down', 'up'] for m in fleet.members}


def assert_rerun_redeployed_web2_first(fleet: NetnsFleet, rerun: t.Any, summary: t.Any, watch: OutWatch) -> None:
    """A re-run after a rollout stopped with web2 out: it completed, took web2 (left out) first, one member out at a time."""
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert rerun.task('Health check out of service (verified 404)', 'web2')['previous_state'] == 'out_of_service'
    assert versions(fleet) == {m.name: NEW for m in fleet.members}
    assert watch.most_out == 1, vars(watch)
    assert summary.failed == 0, summary.line()


# The L4 steps on the LB host over SSH here; on the controller in the tests below.
@pytest.mark.parametrize('l4_host', [LB])
def test_l7_rolling_deploy_over_ssh_fails_no_request(tmp_path, l4_host):
    """The L7 role with the haproxy provider; the L4 steps on the LB host over SSH (or on the controller)."""
    require_netns()
    options = NetnsOptions(members=3)
    if l4_host == LB:
        # The LB host's own loopback: an endpoint the controller cannot reach, so every L4 step must run there.
        options = NetnsOptions(members=3, l4_host_ssh=True, l4_extra={'endpoint': f'127.0.0.1:{LB_RUNTIME_PORT}'},
                               host_vars={f'web{n}': {'l7_vip_deploy_l4_host': LB} for n in range(1, 4)})
    with NetnsFleet(tmp_path, options) as fleet:
        # The rollout's own probe of the VIP, from the controller, as a user would gate a release on it.
        host, port = fleet.vip()
        probe = {'urls': [f'http://{host}:{port}/'], 'dir': str(tmp_path / 'probe')}
        result, summary, watch = rollout_under_traffic(tmp_path, fleet, {'rolling_deploy_probe': probe})
        assert_clean_rollout(fleet, result, summary, watch)
        seen = json.loads((tmp_path / 'probe' / 'probe.json').read_text())
        assert seen['failed'] == 0 and seen['ok'] > 0, seen
        assert result.task('Probe | the most failed requests the VIP may have during the rollout - 0')['msg'].startswith('the probe saw 0 failed')
        if l4_host == LB:
            assert not port_accepts('127.0.0.1', LB_RUNTIME_PORT)[0]
        # One wait for the batch, answered for its member, each member its own transition time.
        for member in fleet.members:
            wait = result.task('Wait until the L4 has marked the batch down, at most 0.6 s', member.name)
            assert wait['members'][member.name]['reached'] and wait['polls'] >= 1, wait
        print(f'\nL7 over SSH, L4 steps on {l4_host}: {summary.line()}; most out at once {watch.most_out} ({watch.samples} samples)')


def test_l4_rolling_deploy_with_admin_disable_over_ssh_fails_no_request(tmp_path):
    require_netns()
    options = NetnsOptions(members=3, profile={'health_check': 'l4'}, l4_extra={'admin_disable': True})
    with NetnsFleet(tmp_path, options) as fleet:
        result, summary, watch = rollout_under_traffic(tmp_path, fleet)
        assert_clean_rollout(fleet, result, summary, watch)
        print(f'\nL4 role, admin_disable, over SSH: {summary.line()}; most out at once {watch.most_out}')


def test_a_killed_controller_leaves_one_batch_out_and_a_rerun_completes(tmp_path):
    """kill -9 of ansible-playbook while the second batch (web2) is out; then the same rollout again."""
    require_netns()
    home = tmp_path / 'controller-home'
    with NetnsFleet(tmp_path, NetnsOptions(members=3)) as fleet:
        inventory = fleet.write_inventory()
        env = dict(_playbook_env(tmp_path, tmp_path / 'killed.json'), ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / 'tmp'))
        with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic, OutWatch(fleet) as watch:
            with open(tmp_path / 'killed.log', 'wb') as log:
                killed = subprocess.Popen(  # pylint: disable=consider-using-with  # killed below, waited for
                    [str(PLAYBOOK_BIN), '-i', str(inventory), 'l4vip.rollout.rolling_deploy', '-e', json.dumps(dict(ROLLOUT, fleet_deploy_seconds=3))],
                    env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                wait_until(lambda: (killed.poll() is not None or not fleet.l4.bound()['web2'], killed.poll()), 120, 'web2 out of the VIP')
                assert killed.poll() is None, (tmp_path / 'killed.log').read_text()[-3000:]
            finally:
                os.kill(killed.pid, signal.SIGKILL)
                killed.wait(10)
            # Whatever the orphaned workers had in flight lands within their own bounds; then one batch is out.
            wait_until(lambda: (not {m for m, b in fleet.l4.bound().items() if not b} - {'web2'}, fleet.l4.bound()), 10, 'only web2 out')
            out_after_kill = sorted(m for m, bound in fleet.l4.bound().items() if not bound)
            rerun = run_collection_playbook(tmp_path, 'l4vip.rollout.rolling_deploy', inventory, ROLLOUT, timeout=240, home=home)
            fleet.wait_all_bound()
            summary = traffic.stop()
        assert out_after_kill == ['web2']
        assert_rerun_redeployed_web2_first(fleet, rerun, summary, watch)
        print(f'\nkilled controller and re-run over SSH: {summary.line()}; most out at once {watch.most_out}')


# The deploy breaks where the host has /srv/BROKEN (the operator's mistake, fixed before the re-run).
BREAKABLE_DEPLOY = deploy_tasks("""
- name: Deploy | fail where the host is broken
  ansible.builtin.command:
    argv: [test, '!', -e, /srv/BROKEN]
  changed_when: false
""")


def test_an_l4_checked_rollout_stopped_half_way_is_continued_left_out_member_first(tmp_path):
    """The L4 role (admin_disable) fails on web2 and leaves it out - disabled on HAProxy, nginx stopped; the next run
    finds it from its claim, on the LB host, and redeploys it before any other member goes out."""
    require_netns()
    options = NetnsOptions(members=3, profile={'health_check': 'l4'}, l4_host_ssh=True, deploy_tasks=BREAKABLE_DEPLOY,
                           l4_extra={'admin_disable': True, 'endpoint': f'127.0.0.1:{LB_RUNTIME_PORT}'},
                           host_vars={f'web{n}': {'l4_vip_deploy_l4_host': LB} for n in range(1, 4)})
    with NetnsFleet(tmp_path, options) as fleet:
        fleet.run_on('web2', ['touch', '/srv/BROKEN'], check=True)
        failed, summary, watch = rollout_under_traffic(tmp_path, fleet, all_back=False, home=tmp_path / 'first-home')
        assert failed.returncode != 0 and 'l4_vip_deploy stopped on web2' in failed.stderr, failed.stderr[-3000:]
        assert fleet.l4.bound() == {'web1': True, 'web2': False, 'web3': True}
        assert not fleet.host('web2').nginx_pids(), 'the failed member stays out, its web server stopped'
        assert summary.failed == 0 and watch.most_out == 1, (summary.line(), vars(watch))

        fleet.run_on('web2', ['rm', '/srv/BROKEN'], check=True)
        # Another controller's home: only the claims on the LB host can tell it about web2.
        rerun, summary, watch = rollout_under_traffic(tmp_path, fleet, home=tmp_path / 'second-home')
        assert rerun.returncode == 0, rerun.stderr[-4000:]
        assert rerun.task('Cut each VIP group into batches by rolling_deploy_serial', 'localhost')['ansible_facts']['rolling_deploy_plan']['hosts'] \
            == ['web2', 'web1', 'web3']
        assert [rerun.task('Note whether an earlier rollout left the member out (its claim left behind)', m)['ansible_facts']['l4_vip_deploy_left_out']
                for m in ('web1', 'web2', 'web3')] == [False, True, False]
        assert versions(fleet) == {m.name: NEW for m in fleet.members}
        assert summary.failed == 0 and watch.most_out == 1, (summary.line(), vars(watch))
        print(f'\nL4-checked rollout stopped on web2, continued web2 first: {summary.line()}; most out at once {watch.most_out}')


def test_slots_over_ssh_keep_at_most_max_out_members_out_and_fail_no_request(tmp_path):
    """Four web hosts, at most two out at once as HAProxy counts, the L4 steps on the LB host; forks above max_out."""
    require_netns()
    options = NetnsOptions(members=4, l4_host_ssh=True, l4_extra={'endpoint': f'127.0.0.1:{LB_RUNTIME_PORT}'},
                           host_vars={f'web{n}': {'l7_vip_deploy_l4_host': LB} for n in range(1, 5)})
    with NetnsFleet(tmp_path, options) as fleet:
        result, summary, watch = rollout_under_traffic(tmp_path, fleet, {'rolling_deploy_max_out': 2}, more_env={'ANSIBLE_FORKS': '3'})
        assert result.returncode == 0, result.stderr[-4000:]
        assert summary.failed == 0 and summary.ok > 500, summary.line()
        assert watch.samples > 50 and watch.most_out == 2 and watch.ever_out == {m.name for m in fleet.members}, vars(watch)
        assert versions(fleet) == {m.name: NEW for m in fleet.members}
        assert transitions_of(fleet) == {m.name: ['down', 'up'] for m in fleet.members}
        print(f'\nslots over SSH, max_out 2 of 4: {summary.line()}; most out at once {watch.most_out}')


def test_slots_over_ssh_after_a_failure_start_no_new_member_and_a_rerun_completes(tmp_path):
    """Four web hosts on slots, the L4 steps and the claims on the LB host; web1's deploy fails. None goes out after it,
    web1 stays out; the fix and a re-run from another controller's home (only the LB host's claims tell it about web1)
    take web1 first and complete. One slot and two forks: whichever member goes first, another is waiting for the slot
    or starts after web1 failed, so the refusal is seen in every order (with two slots the others may all have gone
    before web1's deploy fails)."""
    require_netns()
    options = NetnsOptions(members=4, l4_host_ssh=True, deploy_tasks=BREAKABLE_DEPLOY, l4_extra={'endpoint': f'127.0.0.1:{LB_RUNTIME_PORT}'},
                           host_vars={f'web{n}': {'l7_vip_deploy_l4_host': LB} for n in range(1, 5)})
    slots = {'rolling_deploy_max_out': 1}
    guard = 'Capacity guard | enough members stay bound while this batch is out'
    with NetnsFleet(tmp_path, options) as fleet:
        fleet.run_on('web1', ['touch', '/srv/BROKEN'], check=True)
        first, summary, watch = rollout_under_traffic(tmp_path, fleet, slots, all_back=False, home=tmp_path / 'first-home',
                                                      more_env={'ANSIBLE_FORKS': '2'})
        assert first.returncode != 0 and 'l7_vip_deploy stopped on web1' in first.stderr, first.stderr[-3000:]
        guards = {e['host']: e for e in first.output if e['task'] == guard}
        went = sorted(m for m, e in guards.items() if e['status'] == 'ok')
        refused = sorted(m for m, e in guards.items() if e['status'] == 'failed')
        # The failure counts for the guard once the rescue has marked web1's claim left out.
        mark = "Keep the member's claim, marked left out for the next rollout"
        recorded = next(e['ended'] for e in first.output if e['host'] == 'web1' and e['task'] == mark)
        assert 'web1' in went and refused and all(guards[m]['ended'] <= recorded for m in went), (went, refused)
        assert all('no member goes out after a failure in this rollout: web1' in guards[m]['result']['msg'] for m in refused), \
            {m: guards[m]['result'].get('msg') for m in refused}
        assert versions(fleet) == {m.name: NEW if m.name in went else '1' for m in fleet.members}  # web1's new version written, its check failing
        assert fleet.l4.bound() == {m.name: m.name != 'web1' for m in fleet.members}
        assert summary.failed == 0 and watch.most_out == 1, (summary.line(), vars(watch))

        fleet.run_on('web1', ['rm', '/srv/BROKEN'], check=True)
        rerun, summary, watch = rollout_under_traffic(tmp_path, fleet, slots, home=tmp_path / 'second-home', more_env={'ANSIBLE_FORKS': '2'})
        assert rerun.returncode == 0, rerun.stderr[-4000:]
        assert rerun.task('Cut each VIP group into batches by rolling_deploy_serial', 'localhost')['ansible_facts']['rolling_deploy_plan']['hosts'][0] \
            == 'web1'
        assert versions(fleet) == {m.name: NEW for m in fleet.members}
        assert summary.failed == 0 and watch.most_out == 1, (summary.line(), vars(watch))
        print(f'\nslots over SSH, web1 failed, then re-run: went {went}, refused {refused}; re-run {summary.line()}; '
              f'most out at once {watch.most_out}')
