"""The L3DSR pre-flight in a rollout over SSH: a member without the VIP on its loopback stays out, one with it comes back.

Two web hosts in their own namespaces (tests/harness/netns.py), HAProxy on the LB host as the L4, keep-alive and
new-connection clients through its VIP the whole time. The roles are told the members sit behind a DSR VIP
(``l7_vip_deploy_dsr_vip``): the test puts that address, 198.18.0.250, on ``lo`` of web1 only, and DSR's ARP settings
(arp_ignore 1, arp_announce 2 on ``all``) on both. HAProxy is a proxy, not a DSR L4, so the address carries no
traffic here: the pre-flight is about the member's own configuration, which is all it reads.
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.netns import NetnsFleet, NetnsOptions, require_netns
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

pytestmark = pytest.mark.real

DSR_VIP = '198.18.0.250'
START_AND_IN = 'Start the web server, then its health check in service (verified 200)'
TRAFFIC = {'keepalive_clients': 8, 'new_connection_rate': 10.0, 'request_interval': 0.05}
ARP_READY = ['net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2']


def member_state(fleet: NetnsFleet, name: str) -> dict[str, object]:
    """What the pre-flight reads and what the rollout may change, as the host itself sees it."""
    host = fleet.member(name)
    addresses = json.loads(fleet.run_on(host, ['ip', '-j', 'addr', 'show'], check=True).stdout)
    sysctl = fleet.run_on(host, ['sysctl', '-n', 'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce'], check=True).stdout.split()
    return {'addresses': {link['ifname']: sorted((a['local'], a['prefixlen'], a.get('label')) for a in link['addr_info']) for link in addresses},
            'arp': sysctl, 'docroot': sorted(p.name for p in host.path(host.docroot).iterdir()),
            'version': host.path(f'{host.docroot}/index.html').read_text(encoding='utf-8').split('version=')[1].strip()}


def rollout(tmp_path, fleet: NetnsFleet, version: str, **run: object) -> tuple[object, object]:
    with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic:
        traffic.wait_every_client_answered(5.0)
        result = run_collection_playbook(tmp_path, 'l4vip.rollout.rolling_deploy', fleet.write_inventory(),
                                         {'rolling_deploy_groups': ['web'], 'fleet_version': version}, timeout=180, **run)
        summary = traffic.stop()
    return result, summary


def test_a_member_without_the_dsr_vip_on_lo_stays_out_and_one_with_it_comes_back(tmp_path):
    require_netns()
    options = NetnsOptions(members=2, host_vars={f'web{n}': {'l7_vip_deploy_dsr_vip': DSR_VIP} for n in (1, 2)})
    with NetnsFleet(tmp_path, options) as fleet:
        for member in fleet.members:
            fleet.run_on(member, ['sysctl', '-q', '-w', *ARP_READY], check=True)
        fleet.run_on('web1', ['ip', 'addr', 'add', f'{DSR_VIP}/32', 'dev', 'lo', 'label', 'lo:0'], check=True)
        before = {m.name: member_state(fleet, m.name) for m in fleet.members}

        result, summary = rollout(tmp_path, fleet, '2')
        after = {m.name: member_state(fleet, m.name) for m in fleet.members}
        print(f'\nDSR pre-flight, first run (web2 without the VIP on lo): rc {result.returncode}; {summary.line()}')
        assert result.returncode != 0
        refusal = result.task(START_AND_IN, 'web2')
        assert refusal['msg'] == (f'dsr_vip: this member is not ready for direct server return of {DSR_VIP}: {DSR_VIP} is on no loopback '
                                  f'interface (add it, for example: ip addr add {DSR_VIP}/32 dev lo label lo:0). The health check stays '
                                  'out of service: nothing was renamed'), refusal
        assert refusal['dsr']['arp'] == {'eth0': {'arp_ignore': 1, 'arp_announce': 2}} and refusal['dsr']['loopback'] == [], refusal
        # web1 passed the check and is back, its lo:0 untouched; web2 is out, its health check file still disabled.
        ok = result.task(START_AND_IN, 'web1')
        assert ok['changed'] and ok['dsr'] == {'vip': DSR_VIP, 'loopback': ['lo:0'], 'also_on': [], 'missing': [],
                                               'arp': {'eth0': {'arp_ignore': 1, 'arp_announce': 2}}}, ok
        assert fleet.l4.bound() == {'web1': True, 'web2': False}
        assert after['web2']['docroot'] == ['health_check.html.disabled', 'index.html']
        # Nothing else changed: the addresses and ARP settings of both as they were; only the deploy's own version moved.
        for name in ('web1', 'web2'):
            assert {k: v for k, v in after[name].items() if k not in ('docroot', 'version')} == \
                {k: v for k, v in before[name].items() if k not in ('docroot', 'version')}, name
        assert (after['web1']['version'], after['web2']['version']) == ('2', '2')
        assert summary.failed == 0 and summary.ok > 100, summary.line()

        # The operator adds the address; the same rollout again takes web2, left out, first and brings it back.
        fleet.run_on('web2', ['ip', 'addr', 'add', f'{DSR_VIP}/32', 'dev', 'lo', 'label', 'lo:0'], check=True)
        rerun, summary = rollout(tmp_path, fleet, '3', limit='web2,localhost')
        print(f'DSR pre-flight, re-run of web2 with the VIP on lo: rc {rerun.returncode}; {summary.line()}')
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert rerun.task(START_AND_IN, 'web2')['dsr']['loopback'] == ['lo:0']
        fleet.wait_all_bound()
        back = {m.name: member_state(fleet, m.name) for m in fleet.members}
        assert (back['web2']['docroot'], back['web2']['version'], back['web1']['version']) == (['health_check.html', 'index.html'], '3', '2')
        assert summary.failed == 0, summary.line()
