"""Rollouts of one VIP that must not overlap, whoever started them, and members that stop answering.

The SSH topology of tests/harness/netns.py: three web hosts, HAProxy on its LB host, and a second
controller (``ctl2``) with its own network, hostname, pid namespace, home and Ansible directories - as
a second AWX job in its own container, or a second operator's laptop, is. Live traffic runs through
the VIP the whole time and HAProxy's own state is polled every 50 ms.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.netns import (CONTROLLER_ADDRESS, LB, LB_RUNTIME_PORT, SECOND_CONTROLLER, NetnsFleet,
                                                                   NetnsOptions, require_netns)
from ansible_collections.l4vip.rollout.tests.harness.real_parts import wait_until
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread
from ansible_collections.l4vip.rollout.tests.integration.test_fleet_over_ssh import (
    NEW, ROLLOUT, TRAFFIC, OutWatch, assert_rerun_redeployed_web2_first, transitions_of, versions)

pytestmark = pytest.mark.real

# The claims on the LB host: the default directory of its login user (root; its /root is the host's own).
LB_CLAIMS = '/root/.ansible/l4vip.rollout/claims/web.claims.json'


def on_lb_host(**more: t.Any) -> dict[str, dict[str, t.Any]]:
    """Every web host's L4 steps on the LB host, and ``more`` role variables."""
    return {f'web{n}': {'l7_vip_deploy_l4_host': LB, **{f'l7_vip_deploy_{k}': v for k, v in more.items()}} for n in range(1, 4)}


def stop_message(run: t.Any) -> str:
    stops = [entry['result']['msg'] for entry in run.output if entry['task'] == 'Stop the rollout']
    assert len(stops) == 1, (stops, run.stderr[-3000:])
    return stops[0]


def lb_claims(fleet: NetnsFleet) -> dict[str, t.Any]:
    return json.loads(fleet.lb.path(LB_CLAIMS).read_text())


@pytest.mark.parametrize('provider', ['haproxy', 'timer'])
def test_two_controllers_rolling_one_vip_at_once_never_overlap(tmp_path, provider):
    """Both roll the whole group, min 2 of 3 bound: one goes through, the other is refused at its first member."""
    require_netns()
    l4_extra = {'endpoint': f'127.0.0.1:{LB_RUNTIME_PORT}'} if provider == 'haproxy' else {'provider': 'timer'}
    options = NetnsOptions(members=3, l4_host_ssh=True, second_controller=True, l4_extra=l4_extra, host_vars=on_lb_host(min_bound_members=2))
    with NetnsFleet(tmp_path, options) as fleet:
        inventory = fleet.write_inventory()
        runs: dict[str, t.Any] = {}

        def from_this_controller() -> None:
            runs['here'] = run_collection_playbook(tmp_path / 'here', 'l4vip.rollout.rolling_deploy', inventory, ROLLOUT, timeout=180,
                                                   home=tmp_path / 'here' / 'ansible-home')

        (tmp_path / 'here').mkdir()
        with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic, OutWatch(fleet) as watch:
            other = fleet.second_controller_playbook(tmp_path / 'ctl2', 'l4vip.rollout.rolling_deploy', ROLLOUT)
            here = threading.Thread(target=from_this_controller)
            here.start()
            runs['ctl2'] = other.result(timeout=180)
            here.join(timeout=200)
            fleet.wait_all_bound()
            summary = traffic.stop()
        ok = {name: run.returncode == 0 for name, run in runs.items()}
        assert sorted(ok.values()) == [False, True], {name: run.stderr[-3000:] for name, run in runs.items()}
        went, refused = (next(name for name, good in ok.items() if good is wanted) for wanted in (True, False))
        holder = SECOND_CONTROLLER if went == 'ctl2' else socket.gethostname()
        message = stop_message(runs[refused])
        assert 'claimed by another rollout: ' in message and f'(held by {holder} pid ' in message, message
        assert message.endswith('Nothing was changed.'), message
        # One member out at a time, each down and up once: no member was worked on by both.
        assert watch.samples > 50 and watch.most_out == 1, vars(watch)
        assert transitions_of(fleet) == {m.name: ['down', 'up'] for m in fleet.members}
        assert versions(fleet) == {m.name: NEW for m in fleet.members}
        assert summary.failed == 0 and summary.ok > 300, summary.line()
        assert lb_claims(fleet)['claims'] == {}
        print(f'\ntwo controllers, {provider}: {went} went, {refused} refused; {summary.line()}; most out at once {watch.most_out}')


def test_a_killed_controllers_claim_blocks_the_other_until_its_lease_lapses(tmp_path):
    """ctl2 dies with web2 out; this controller is refused, naming ctl2, then takes over once the lease lapsed, web2 first."""
    require_netns()
    lease = 15.0  # longer than one batch here (about 6 s with the 3 s deploy), short enough to wait out
    options = NetnsOptions(members=3, l4_host_ssh=True, second_controller=True, l4_extra={'endpoint': f'127.0.0.1:{LB_RUNTIME_PORT}'},
                           host_vars=on_lb_host(claim_lease=lease))
    with NetnsFleet(tmp_path, options) as fleet:
        inventory = fleet.write_inventory()
        with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic, OutWatch(fleet) as watch:
            doomed = fleet.second_controller_playbook(tmp_path / 'ctl2', 'l4vip.rollout.rolling_deploy', dict(ROLLOUT, fleet_deploy_seconds=3))
            wait_until(lambda: (doomed.process.poll() is not None or not fleet.l4.bound()['web2'], fleet.l4.bound()), 120, 'web2 out of the VIP')
            assert doomed.process.poll() is None, doomed.log_path.read_text()[-3000:]
            doomed.kill()
            # Its orphaned workers land what they had in flight; web2 stays out, claimed by ctl2.
            wait_until(lambda: (not {m for m, b in fleet.l4.bound().items() if not b} - {'web2'}, fleet.l4.bound()), 15, 'only web2 out')
            held = lb_claims(fleet)
            assert list(held['claims']) == ['web2']

            (tmp_path / 'blocked').mkdir()
            blocked = run_collection_playbook(tmp_path / 'blocked', 'l4vip.rollout.rolling_deploy', inventory, ROLLOUT, timeout=120,
                                              home=tmp_path / 'home')
            message = stop_message(blocked)
            assert blocked.returncode != 0 and f'claimed by another rollout: web2 (held by {SECOND_CONTROLLER} pid ' in message, message
            assert 'lease until' in message and message.endswith('Nothing was changed.'), message

            (owner,) = held['owners'].values()
            wait_until(lambda: (time.time() > owner['renewed'] + owner['lease'], owner), lease + 5, "ctl2's lease lapsed")
            (tmp_path / 'rerun').mkdir()
            rerun = run_collection_playbook(tmp_path / 'rerun', 'l4vip.rollout.rolling_deploy', inventory, ROLLOUT, timeout=180,
                                            home=tmp_path / 'home')
            fleet.wait_all_bound()
            summary = traffic.stop()
        assert_rerun_redeployed_web2_first(fleet, rerun, summary, watch)
        guard = rerun.task('Capacity guard | enough members stay bound while this batch is out', 'web2')
        assert guard['taken_over'] == ['web2'] and any(f'lease of its owner ({SECOND_CONTROLLER} pid ' in w for w in guard['warnings']), guard
        assert [entry['host'] for entry in rerun.output if entry['task'] == 'Where the rollout is'][:1] == ['web2']
        assert lb_claims(fleet)['claims'] == {}
        print(f'\nkilled controller, lease {lease:g}s: {summary.line()}; most out at once {watch.most_out}')


def test_a_member_cut_off_fails_within_its_limit_stays_out_and_a_rerun_completes(tmp_path):
    """web2's SSH dropped once its health check is out: the stop cannot run; the run fails within the step's limit."""
    require_netns()
    member_timeout, drain_timeout = 4, 3
    # A 1 s interval: the L4 takes a second or two to mark web2 down, time enough to cut it off before its stop.
    options = NetnsOptions(members=3, profile={'interval': 1.0}, drain_timeout=drain_timeout,
                           host_vars={f'web{n}': {'l7_vip_deploy_member_timeout': member_timeout} for n in range(1, 4)})
    home = tmp_path / 'home'
    cut = ['INPUT', '-p', 'tcp', '--dport', '22', '-s', CONTROLLER_ADDRESS, '-j', 'DROP']
    with NetnsFleet(tmp_path, options) as fleet:
        inventory = fleet.write_inventory()
        web2 = fleet.member('web2')
        runs: dict[str, t.Any] = {}

        def rollout() -> None:
            (tmp_path / 'cut').mkdir()
            runs['cut'] = run_collection_playbook(tmp_path / 'cut', 'l4vip.rollout.rolling_deploy', inventory, ROLLOUT, timeout=120, home=home)
            runs['ended'] = time.monotonic()

        with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic, OutWatch(fleet) as watch:
            thread = threading.Thread(target=rollout)
            thread.start()
            wait_until(lambda: (not thread.is_alive() or fleet.run_on(web2, ['test', '-e', web2.health_check_path]).returncode != 0, 'waiting'),
                       90, "web2's health check out of service", poll=0.02)
            fleet.run_on(web2, ['iptables', '-w', '-I', *cut], check=True)
            cut_at = time.monotonic()
            thread.join(timeout=90)
            took = runs['ended'] - cut_at
            fleet.run_on(web2, ['iptables', '-w', '-D', *cut], check=True)
            assert runs['cut'].returncode != 0, runs['cut'].stderr[-3000:]
            out_after_cut = sorted(m for m, bound in fleet.l4.bound().items() if not bound)
            claims_left = json.loads((home / 'l4vip.rollout' / 'claims' / 'web.claims.json').read_text())['claims']
            (tmp_path / 'rerun').mkdir()
            rerun = run_collection_playbook(tmp_path / 'rerun', 'l4vip.rollout.rolling_deploy', inventory, ROLLOUT, timeout=180, home=home)
            fleet.wait_all_bound()
            summary = traffic.stop()
        message = stop_message(runs['cut'])
        assert message.startswith('l7_vip_deploy stopped on web2 at ') and 'The member is left out of the VIP' in message, message
        # The stop's limit is its drain limit plus the member's; the rest is the L4's mark-down, which the cut did not wait for.
        limit = drain_timeout + member_timeout
        assert took < limit + 2 * 1.0 + 5, f'the run ended {took:.1f}s after the cut; the stop step is limited to {limit}s'
        assert out_after_cut == ['web2'] and claims_left['web2']['left_out'].startswith("l7_vip_deploy failed at 'Stop the web server")
        assert_rerun_redeployed_web2_first(fleet, rerun, summary, watch)
        print(f'\nmember cut off: the run ended {took:.1f}s after the cut (stop limited to {limit}s); re-run {summary.line()}')
