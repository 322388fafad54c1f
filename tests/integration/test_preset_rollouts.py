"""A rolling deploy through each device preset that can observe, under traffic: 0 failed requests.

The fleet (tests/harness/fleet.py: nginx members behind the in-process emulator, 0.2 s check interval)
is started once; each test puts one device's double (tests/harness/devices.py) in front of the
emulator's state, points the roles at it with ``provider: http`` and the preset, and runs
``l4vip.rollout.rolling_deploy`` one member at a time while keep-alive and fresh-connection clients
use the VIP. The double answers from the emulator's real health checks, so the roles' waits follow
real transitions; the capacity guard lists the pool through the presets that can.

Addresses: nginx 127.0.0.11-12, the emulator 127.0.0.150, the doubles 127.0.0.170. Figures are
printed (run with -s).
"""

from __future__ import annotations

import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _presets
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Capability
from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.devices import DEVICES, Device
from ansible_collections.l4vip.rollout.tests.harness.fleet import Fleet, FleetOptions
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

pytestmark = pytest.mark.real

OBSERVING = list(_presets.presets_that_can(Capability.OBSERVE))
TRAFFIC = {'keepalive_clients': 4, 'new_connection_rate': 10.0, 'request_interval': 0.05}


class DeviceL4:
    """The fleet's emulator, reached by the roles through a device's API instead of the emulator's own."""

    def __init__(self, emulator: t.Any, device: Device) -> None:
        self.emulator, self.device = emulator, device

    def provider(self, group: str, member: str) -> dict[str, t.Any]:
        return self.device.options(member)

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self.emulator, name)


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    with Fleet(tmp_path_factory.mktemp('preset-fleet'), FleetOptions(groups={'web': 2}, l4_extra={'poll_interval': 0.05})) as running:
        yield running


@pytest.mark.parametrize('preset', OBSERVING)
def test_a_rolling_deploy_through_the_preset_fails_no_request(fleet, tmp_path, preset):
    emulator = fleet.l4
    with DEVICES[preset](emulator.control_url, 'web') as device:
        fleet.l4 = DeviceL4(emulator, device)
        try:
            inventory = fleet.write_inventory()
        finally:
            fleet.l4 = emulator
        with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic:
            traffic.wait_every_client_answered(5.0)
            started = time.time()
            run = run_collection_playbook(tmp_path, 'l4vip.rollout.rolling_deploy', inventory,
                                          {'fleet_version': preset, 'rolling_deploy_serial': 1}, timeout=120)
            took = time.time() - started
            traffic.wait_every_client_answered(5.0, since=time.time(), servers=['web1', 'web2'])
            summary = traffic.stop()
    print(f'{preset}: playbook {took:.1f}s rc={run.returncode}; {summary.line()}')
    assert run.returncode == 0, run.stderr[-3000:]
    assert summary.failed == 0 and summary.ok > 100, summary.line()
    assert [member.served_version() for member in fleet.members] == [f'server={m.name} version={preset}' for m in fleet.members]
    # The roles asked the device, not the emulator's own API: every wait went through the double.
    assert len(device.requests) > 4
    # One guard per batch (the others release the claims); where the preset lists the pool, it counts the device's members.
    guards = [entry['result'] for entry in run.output if entry['action'] == 'l4vip.rollout.capacity_guard' and 'bound_members' in entry['result']]
    assert len(guards) == 2, guards
    if _presets.PRESET_CLASSES[preset].can(Capability.POOL):
        names = sorted(device.options(m.name)['member'] for m in fleet.members)
        assert [(sorted(guard['bound_members']), guard['checked']) for guard in guards] == [(names, True)] * 2, guards
        assert all('leaves 1 of 2 bound member(s)' in guard['msg'] for guard in guards)
