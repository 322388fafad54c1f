"""The multi-host topology (tests/harness/netns.py) does what it promises: separate hosts over real SSH.

Web hosts in their own network and mount namespaces, reached by Ansible over SSH, cannot see the
controller's files; the LB host's runtime API answers there and nowhere else; the VIP serves every
member to the controller; and nothing is left once the block is over.
"""

from __future__ import annotations

import ipaddress
import os
import pathlib
import time
import typing as t

import pytest
import yaml

from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.netns import (
    LB_RUNTIME_PORT,
    NetnsFleet,
    NetnsOptions,
    require_netns,
)
from ansible_collections.l4vip.rollout.tests.harness.real_parts import port_accepts, wait_until
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

pytestmark = pytest.mark.real

# Asks HAProxy's runtime API at argv[1] (host:port) for `show info`, as an L4 step on the LB host would.
SHOW_INFO = """\
import socket, sys
host, port = sys.argv[1].rsplit(':', 1)
with socket.create_connection((host, int(port)), timeout=3) as sock:
    sock.sendall(b'show info\\n')
    print(b''.join(iter(lambda: sock.recv(65536), b'')).decode())
"""


# Prints the host name, its IPv4 addresses, then each of the paths given that exists there.
IDENTITY = 'hostname; ip -4 -o addr show; for path; do if [ -e "$path" ]; then echo "visible: $path"; fi; done'


def playbook(path: pathlib.Path) -> pathlib.Path:
    """Two tasks a host (each is a module run over SSH, on 2 cores): who and where it is, and the runtime API."""
    identity = {'name': 'identity', 'ansible.builtin.command': {'argv': "{{ ['sh', '-c', identity, 'sh'] + controller_paths }}"},
                'changed_when': False}

    def runtime_api(endpoint: str, **more: t.Any) -> dict[str, t.Any]:
        return {'name': 'runtime API', 'ansible.builtin.command': {'argv': ['python3', '-c', SHOW_INFO, endpoint]}, 'changed_when': False,
                **more}
    plays = [
        {'name': 'web hosts', 'hosts': 'web', 'gather_facts': False,
         'tasks': [identity, runtime_api('{{ lb_local_endpoint }}', failed_when=False)]},
        {'name': 'LB host', 'hosts': 'lb', 'gather_facts': False,
         'tasks': [identity, runtime_api('{{ fleet_l4_endpoint }}')]},
    ]
    path.write_text(yaml.safe_dump(plays, sort_keys=False), encoding='utf-8')
    return path


def test_netns_topology(tmp_path: pathlib.Path) -> None:
    require_netns()
    with NetnsFleet(tmp_path, NetnsOptions(members=3, l4_host_ssh=True)) as fleet:
        inventory = fleet.write_inventory()
        # Nothing of the controller's shows on the hosts: its tmp dir, the runtime socket, the key, the inventory.
        controller_paths = [str(tmp_path), str(fleet.l4.socket_path), str(fleet.ssh_key), str(inventory)]
        for path in controller_paths:
            assert pathlib.Path(path).exists()
        run = run_collection_playbook(tmp_path, playbook(tmp_path / 'check.yml'), inventory, timeout=60,
                                      extra_vars={'controller_paths': controller_paths, 'identity': IDENTITY,
                                                  'lb_local_endpoint': fleet.l4.local_endpoint})
        assert run.returncode == 0, run.stderr[-3000:]

        for host in fleet.hosts:
            name, *lines = run.task('identity', host.name)['stdout'].splitlines()
            assert name == host.name
            # Its own addresses (the LB also has the VIP) and loopback; no controller path visible.
            assert sorted(_inet_addresses(lines)) == sorted(['127.0.0.1', *host.addresses]), lines
            assert not [line for line in lines if line.startswith('visible:')], lines
        for member in fleet.members:
            # Not from a web host: its own loopback has no runtime API.
            assert 'ConnectionRefusedError' in run.task('runtime API', member.name)['stderr']
            # The harness's own way into a host (nsenter), for tests' assertions.
            assert fleet.run_on(member, ['test', '-e', str(fleet.l4.socket_path)]).returncode == 1
            assert fleet.run_on(member, ['cat', f'{member.docroot}/index.html'], check=True).stdout == f'server={member.name} version=1\n'
        assert 'Name: HAProxy' in run.task('runtime API', 'lb')['stdout']
        # The LB-local endpoint is the LB's loopback: the controller's 127.0.0.1 has nothing there.
        assert fleet.l4.local_endpoint == f'127.0.0.1:{LB_RUNTIME_PORT}'
        assert not port_accepts('127.0.0.1', LB_RUNTIME_PORT)[0]
        assert 'Name: HAProxy' in fleet.l4.runtime('show info')

        # HAProxy binds every member, and the VIP serves all of them to the controller's namespace.
        assert fleet.l4.bound('web') == {member.name: True for member in fleet.members}
        assert ipaddress.ip_address(fleet.vip()[0]) in ipaddress.ip_network('198.18.0.0/15')
        with TrafficThread(*fleet.vip(), keepalive_clients=3, new_connection_rate=30) as traffic:
            time.sleep(1.0)
            summary = traffic.stop()
        assert summary.failed == 0, summary.line()
        assert set(summary.by_server) == {member.name for member in fleet.members}, summary.line()
        assert not fleet.l4.transitions()  # nobody went down

        # HAProxy's own log, from the LB namespace to a unix socket on the controller's fs, says when it marks a member down and up.
        web1 = fleet.members[0]

        def transitions_are(*expected: tuple[str, str]) -> t.Callable[[], tuple[bool, t.Any]]:
            return lambda: ((seen := [(tr.member, tr.to) for tr in fleet.l4.transitions()]) == list(expected), seen)
        fleet.run_on(web1, ['mv', web1.health_check_path, f'{web1.health_check_path}.off'], check=True)
        wait_until(transitions_are(('web1', 'down')), 5, 'web1 marked down')
        assert not fleet.l4.bound()['web1']
        fleet.run_on(web1, ['mv', f'{web1.health_check_path}.off', web1.health_check_path], check=True)
        wait_until(transitions_are(('web1', 'down'), ('web1', 'up')), 5, 'web1 marked up again')
        fleet.wait_all_bound()
    print(f'build {fleet.timings["build"]:.2f}s teardown {fleet.timings["teardown"]:.2f}s; traffic {summary.line()}')

    # close() insists on it already; a test says it too: no namespace, link, process or run dir is left.
    assert fleet.leftovers() == []
    assert not [name for name in os.listdir('/run/netns') if name.startswith('l4v-')]


def _inet_addresses(lines: list[str]) -> list[str]:
    """The IPv4 addresses in `ip -4 -o addr show` lines (``2: eth0    inet 198.18.0.11/24 ...``)."""
    return [line.split()[3].split('/')[0] for line in lines if ' inet ' in line]
