"""The harness's Fleet with the collection's embedded real servers as members (benchmark 4's lab):
started and stopped by the argv commands the roles get, bound by the emulator, each member's
version served through the VIP, and no process left once the fleet is closed.
"""

from __future__ import annotations

import subprocess
import urllib.request

import yaml

from ansible_collections.l4vip.rollout.tests.harness.fleet import EMBEDDED, DaemonRealServer, Fleet, FleetOptions
from ansible_collections.l4vip.rollout.tests.harness.real_parts import pid_alive, wait_until


def through_vip(fleet: Fleet, path: str) -> str:
    host, port = fleet.vip()
    with urllib.request.urlopen(f'http://{host}:{port}{path}', timeout=2) as answer:  # a new connection: the L4 picks a member
        return answer.read().decode().strip()


def test_embedded_members_serve_through_the_emulator_and_leave_nothing(tmp_path):
    options = FleetOptions(members=EMBEDDED, groups={'web': 3}, l4_extra={'poll_interval': 0.1})
    with Fleet(tmp_path, options) as fleet:
        members = fleet.members
        assert [(type(m), m.address) for m in members] == [(DaemonRealServer, f'127.0.1.{n}') for n in (1, 2, 3)]
        assert fleet.l4.bound('web') == {'web1': True, 'web2': True, 'web3': True}
        expected = {f'server={m.name} version=1.{n}' for n, m in enumerate(members, 1)}
        for n, member in enumerate(members, 1):
            member.write_version(f'1.{n}')
            assert member.served_version() == f'server={member.name} version=1.{n}'
        seen: set[str] = set()
        wait_until(lambda: (seen.add(through_vip(fleet, members[0].version_path)) or seen == expected, sorted(seen)), 10.0,
                   "every member's version through the VIP")
        assert through_vip(fleet, '/health_check.html') == 'OK'

        # The inventory gives the roles these argv commands, and the poll interval asked for over the fleet's.
        web1 = yaml.safe_load(fleet.write_inventory().read_text())['all']['children']['web']['hosts']['web1']
        assert web1['l7_vip_deploy_start_command'] == members[0].start_command
        assert web1['l7_vip_deploy_stop_command'] == members[0].stop_command
        assert web1['l7_vip_deploy_l4']['poll_interval'] == 0.1

        # As a role stops and starts it: the L4 marks it down, then binds it again.
        first_pid = members[0].server_pid()
        subprocess.run(members[0].stop_command, check=True, capture_output=True, timeout=30)
        assert not pid_alive(first_pid) and members[0].server_pid() is None
        wait_until(lambda: (not (bound := fleet.l4.bound('web'))['web1'], bound), 5.0, 'web1 marked down')
        subprocess.run(members[0].start_command, check=True, capture_output=True, timeout=30)
        fleet.wait_all_bound()
        pids = [m.server_pid() for m in members]
        assert None not in pids

    assert not [pid for pid in pids if pid_alive(pid)]
    assert not [pid for m in members for pid in m.leftover_pids()]
    assert not [m.pidfile for m in members if m.pidfile.exists()]
