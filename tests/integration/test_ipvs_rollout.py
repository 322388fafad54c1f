"""A rolling deploy through the ipvs provider under traffic: 0 failed requests.

The fleet (tests/harness/fleet.py: two nginx members behind the in-process emulator, 0.2 s check interval) is
reached by the roles only through a stand-in ``ipvsadm`` (tests/harness/devices.py) that prints the emulator's VIP as
keepalived keeps an IPVS table: a member whose checks fail leaves the table, and comes back when they pass. So the
roles' waits follow real health-check transitions read from ``ipvsadm -Ln``, and the capacity guard counts the
table's real servers. Keep-alive and fresh-connection clients use the VIP throughout.

Addresses: nginx 127.0.0.11-12, the emulator 127.0.0.150. Figures are printed (run with -s).
"""

from __future__ import annotations

import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.devices import write_ipvsadm
from ansible_collections.l4vip.rollout.tests.harness.fleet import Fleet, FleetOptions
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

pytestmark = pytest.mark.real

TRAFFIC = {'keepalive_clients': 4, 'new_connection_rate': 10.0, 'request_interval': 0.05}


class IpvsL4:
    """The fleet's emulator, reached by the roles through ipvsadm: pool and members as address:port."""

    def __init__(self, emulator: t.Any, ipvsadm: str) -> None:
        self.emulator, self.ipvsadm = emulator, ipvsadm
        self.vip_view = emulator.api('/api/vips/web')

    def address_of(self, member: str) -> str:
        return next(m['address'] for m in self.vip_view['members'] if m['name'] == member)

    def provider(self, group: str, member: str) -> dict[str, t.Any]:
        return {'provider': 'ipvs', 'endpoint': self.ipvsadm, 'pool': self.vip_view['listen'], 'member': self.address_of(member)}

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self.emulator, name)


def test_a_rolling_deploy_through_ipvs_fails_no_request(tmp_path):
    with Fleet(tmp_path / 'fleet', FleetOptions(groups={'web': 2}, l4_extra={'poll_interval': 0.05})) as fleet:
        emulator = fleet.l4
        ipvs = IpvsL4(emulator, write_ipvsadm(tmp_path, emulator.control_url, 'web'))
        fleet.l4 = ipvs
        try:
            inventory = fleet.write_inventory()
        finally:
            fleet.l4 = emulator
        with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic:
            traffic.wait_every_client_answered(5.0)
            started = time.time()
            run = run_collection_playbook(tmp_path, 'l4vip.rollout.rolling_deploy', inventory, {'fleet_version': 'ipvs', 'rolling_deploy_serial': 1},
                                          timeout=120)
            took = time.time() - started
            traffic.wait_every_client_answered(5.0, since=time.time(), servers=['web1', 'web2'])
            summary = traffic.stop()
        print(f'\nipvs: playbook {took:.1f}s rc={run.returncode}; {summary.line()}')
        assert run.returncode == 0, run.stderr[-3000:]
        assert summary.failed == 0 and summary.ok > 100, summary.line()
        assert [member.served_version() for member in fleet.members] == [f'server={m.name} version=ipvs' for m in fleet.members]
        # Each member's waits read the table through ipvsadm: out of it once its checks failed, back in it after.
        members = {m.name: ipvs.address_of(m.name) for m in fleet.members}
        for name, address in members.items():
            down = run.task('Wait until the L4 has marked the batch down, at most 0.6 s', name)
            up = run.task('Wait until the L4 has bound the batch again, at most 0.4 s', name)
            assert down['members'][address]['observed'] == 'not in the virtual service', down
            assert up['members'][address]['observed'].startswith('weight 1,'), up
        # The capacity guard listed the virtual service's real servers, both bound, once per batch.
        guards = [entry['result'] for entry in run.output if entry['action'] == 'l4vip.rollout.capacity_guard' and 'bound_members' in entry['result']]
        assert [(sorted(guard['bound_members']), guard['checked']) for guard in guards] == [(sorted(members.values()), True)] * 2, guards
