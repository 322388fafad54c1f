"""The real-part harness against real nginx and HAProxy: the L4 behaviour the domain notes describe.

Addresses 127.0.0.41-49, ports 18000-18999 (one block of ten per test). Timings come from a
short profile and the timing model; measured times are printed (run with -s to see them).
"""

from __future__ import annotations

import random
import socket
import statistics
import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import FAILURE_FAST, Profile, down_window, up_window
from ansible_collections.l4vip.rollout.tests.harness.fixtures import (  # noqa: F401  pylint: disable=unused-import
    haproxy_factory,
    nginx_factory,
)
from ansible_collections.l4vip.rollout.tests.harness.real_parts import (
    HAProxy,
    HarnessError,
    KeepAliveClient,
    Nginx,
    haproxy_config,
    parse_servers_state,
    pid_alive,
    stop_all,
)

# pytest hands fixtures over as arguments named like the imported fixture functions.
# pylint: disable=redefined-outer-name

pytestmark = pytest.mark.real

PROFILE = Profile(interval=0.2, retry=1, rise=1, check_timeout=0.1)
# HAProxy's checks drift a little (each runs `inter` after the previous one ended) and we poll.
TOLERANCE = 0.25
VIP = '127.0.0.49'
CHECK_SOURCE = '127.0.0.48'
CLIENT = '127.0.0.47'
WEB1, WEB2 = '127.0.0.41', '127.0.0.42'


class Setup(t.NamedTuple):
    haproxy: HAProxy
    members: dict[str, Nginx]


def start_vip(nginx_factory, haproxy_factory, base_port: int, profile: Profile = PROFILE, **haproxy_kwargs: t.Any) -> Setup:
    """Two nginx members behind one HAProxy frontend, both seen up."""
    web1 = nginx_factory('web1', WEB1, base_port + 1)
    web2 = nginx_factory('web2', WEB2, base_port + 2)
    members = [(web.name, web.address, web.port) for web in (web1, web2)]
    haproxy = haproxy_factory(profile, (VIP, base_port), members, **haproxy_kwargs)
    for web in (web1, web2):
        haproxy.wait_member_state(web.name, 'up', timeout=2.0)
    return Setup(haproxy, {web.name: web for web in (web1, web2)})


def served_by_new_connections(address: str, port: int, count: int) -> list[str | None]:
    served = []
    for index in range(count):
        with KeepAliveClient(address, port) as client:
            reply = client.get('/')
            assert reply.status == 200, f'request {index}: {reply}'
            served.append(reply.served_by)
    return served


def client_served_by(member: str, address: str, port: int, tries: int = 4) -> KeepAliveClient:
    """A keep-alive connection through the VIP that landed on ``member``."""
    for index in range(tries):
        client = KeepAliveClient(address, port)
        if client.get('/').served_by == member:
            return client
        client.close()
    raise AssertionError(f'{index + 1} connections, none served by {member}')


def test_config_takes_every_timing_from_the_profile(tmp_path):
    profile = Profile(interval=0.25, retry=2, rise=3, check_timeout=0.5, idle_timeout=120, reset_on_port_fail=True,
                      health_check_path='/hc.html')
    text = haproxy_config(tmp_path / 's', profile, (VIP, 18000), [('a', WEB1, 18001)], check_source=CHECK_SOURCE)
    assert 'default-server inter 250ms fall 3 rise 3 on-marked-down shutdown-sessions source 127.0.0.48 usesrc clientip' in text
    assert 'timeout check 250ms' in text  # effective_check_timeout: never longer than the interval
    assert 'timeout client 120000ms' in text and 'timeout server 120000ms' in text
    assert 'option httpchk GET /hc.html' in text and 'retries 0' in text
    l4_text = haproxy_config(tmp_path / 's', Profile(health_check='l4'), (VIP, 18000), [('a', WEB1, 18001)])
    assert 'httpchk' not in l4_text and 'shutdown-sessions' not in l4_text and 'source' not in l4_text
    assert 'inter 10000ms fall 2 rise 1' in l4_text
    HAProxy(tmp_path / 'cfg', profile, (VIP, 18000), [('a', WEB1, 18001)], check_source=CHECK_SOURCE).check_config()


def test_config_logs_to_a_socket_only_when_asked(tmp_path):
    assert '    log ' not in haproxy_config(tmp_path / 's', PROFILE, (VIP, 18000), [('a', WEB1, 18001)])
    text = haproxy_config(tmp_path / 's', PROFILE, (VIP, 18000), [('a', WEB1, 18001)], log_socket=tmp_path / 'log.sock')
    global_section, defaults = text.split('defaults', maxsplit=1)
    assert f'    log {tmp_path / "log.sock"} local0\n' in global_section and '    log global\n' in defaults
    HAProxy(tmp_path / 'cfg', PROFILE, (VIP, 18000), [('a', WEB1, 18001)], log_socket=tmp_path / 'log.sock').check_config()


def test_parse_servers_state_reads_columns_from_the_header():
    text = '1\n# be_id be_name srv_id srv_name srv_op_state srv_admin_state\n3 vip 1 a 2 0\n3 vip 2 b 0 1\n\n'
    assert parse_servers_state(text) == {
        'a': {'be_id': '3', 'be_name': 'vip', 'srv_id': '1', 'srv_name': 'a', 'srv_op_state': '2', 'srv_admin_state': '0'},
        'b': {'be_id': '3', 'be_name': 'vip', 'srv_id': '2', 'srv_name': 'b', 'srv_op_state': '0', 'srv_admin_state': '1'},
    }
    with pytest.raises(HarnessError, match='no header'):
        parse_servers_state("Can't find backend.\n")


def test_two_members_come_up_and_serve(nginx_factory, haproxy_factory):
    setup = start_vip(nginx_factory, haproxy_factory, 18010)
    states = setup.haproxy.server_states()
    assert {name: (row['srv_op_state'], row['srv_admin_state']) for name, row in states.items()} == {'web1': ('2', '0'), 'web2': ('2', '0')}
    assert sorted(served_by_new_connections(VIP, 18010, 4)) == ['web1', 'web1', 'web2', 'web2']  # roundrobin
    web1 = setup.members['web1']
    web1.write_version('2')
    with KeepAliveClient(WEB1, web1.port) as client:
        assert client.get('/') == (200, 'web1', 'server=web1 version=2\n')
        assert client.get('/health_check.html').status == 200
        web1.disable_health_check()
        assert client.get('/health_check.html').status == 404
        assert client.get('/').status == 200  # only the health check fails; the site still serves
    assert 'GET /health_check.html HTTP/1.1" 404' in web1.access_log_path.read_text(encoding='utf-8')


def test_mark_down_and_up_stay_within_the_timing_model(nginx_factory, haproxy_factory):
    setup = start_vip(nginx_factory, haproxy_factory, 18020)
    web1 = setup.members['web1']
    down, up = down_window(PROFILE, FAILURE_FAST), up_window(PROFILE)
    downs, ups = [], []
    rng = random.Random(20260)
    for trial in range(5):
        # Start each change at a random phase of HAProxy's check cycle, or every trial sees the same one.
        time.sleep(rng.uniform(0, PROFILE.interval))
        web1.disable_health_check()
        downs.append(setup.haproxy.wait_member_state('web1', 'down', timeout=down.high + 1))
        assert setup.haproxy.member_state('web2') == 'up', f'trial {trial}'
        time.sleep(rng.uniform(0, PROFILE.interval))
        web1.enable_health_check()
        ups.append(setup.haproxy.wait_member_state('web1', 'up', timeout=up.high + 1))
    print(f'\nHAProxy mark-down s: {[round(value, 3) for value in downs]} (model {down.low}..{down.high}], '
          f'up s: {[round(value, 3) for value in ups]} (model {up.low}..{up.high}], '
          f'spread down {max(downs) - min(downs):.3f} up {max(ups) - min(ups):.3f}, mean down {statistics.mean(downs):.3f}')
    assert all(value in down.widened(TOLERANCE) for value in downs), downs
    assert all(value in up.widened(TOLERANCE) for value in ups), ups


def test_keepalive_session_outlives_the_mark_down_without_reset(nginx_factory, haproxy_factory):
    setup = start_vip(nginx_factory, haproxy_factory, 18030)
    with KeepAliveClient(VIP, 18030) as client:
        member = client.get('/').served_by
        other = 'web2' if member == 'web1' else 'web1'
        setup.members[member].disable_health_check()
        setup.haproxy.wait_member_state(member, 'down', timeout=down_window(PROFILE).high + 1)
        # The trap: the L4's session table still sends this connection to the member that is out.
        for index in range(3):
            assert client.get('/') == (200, member, f'server={member} version=1\n'), f'request {index} after the mark-down'
    assert served_by_new_connections(VIP, 18030, 3) == [other] * 3


def test_reset_on_port_fail_closes_the_session_at_the_mark_down(nginx_factory, haproxy_factory):
    profile = Profile(interval=0.2, retry=1, rise=1, check_timeout=0.1, reset_on_port_fail=True)
    setup = start_vip(nginx_factory, haproxy_factory, 18040, profile=profile)
    with KeepAliveClient(VIP, 18040) as client:
        member = client.get('/').served_by
        setup.members[member].disable_health_check()
        down_after = setup.haproxy.wait_member_state(member, 'down', timeout=down_window(profile).high + 1)
        how, closed_after = client.wait_closed(timeout=0.5)
    print(f'\nreset_on_port_fail: member down after {down_after:.3f}s, client connection closed by {how} {closed_after:.3f}s later')
    assert closed_after < 0.1


def test_nginx_quit_closes_idle_keepalive_connections(nginx_factory, haproxy_factory):
    setup = start_vip(nginx_factory, haproxy_factory, 18050)
    web1 = setup.members['web1']
    with KeepAliveClient(WEB1, web1.port) as direct, client_served_by('web1', VIP, 18050) as via_vip:
        assert direct.get('/').served_by == 'web1'
        web1.quit(timeout=2.0)
        assert not web1.is_running
        # nginx FINs its idle connections; the L4 passes the FIN on to the client.
        assert direct.wait_closed(timeout=0.5)[0] == 'eof'
        assert via_vip.wait_closed(timeout=0.5)[0] == 'eof'


def test_l4_check_marks_a_stopped_member_down_and_a_started_one_up(nginx_factory, haproxy_factory):
    profile = Profile(interval=0.2, retry=1, rise=1, check_timeout=0.1, health_check='l4')
    setup = start_vip(nginx_factory, haproxy_factory, 18060, profile=profile)
    web1 = setup.members['web1']
    web1.disable_health_check()  # an L4 check does not care about the file
    web1.quit(timeout=2.0)
    down = setup.haproxy.wait_member_state('web1', 'down', timeout=down_window(profile).high + 1)
    web1.start()
    up = setup.haproxy.wait_member_state('web1', 'up', timeout=up_window(profile).high + 1)
    print(f'\nL4 check: down {down:.3f}s after the stop, up {up:.3f}s after the start')
    assert down in down_window(profile).widened(TOLERANCE)
    assert up in up_window(profile).widened(TOLERANCE)


def test_checks_come_from_the_check_source_and_traffic_from_the_client(nginx_factory, haproxy_factory):
    setup = start_vip(nginx_factory, haproxy_factory, 18070, check_source=CHECK_SOURCE)
    sock = socket.create_connection((VIP, 18070), timeout=2.0, source_address=(CLIENT, 0))
    with sock:
        sock.sendall(b'GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n')
        answer = b''.join(iter(lambda: sock.recv(65536), b''))
    assert answer.startswith(b'HTTP/1.1 200')
    lines = [line for web in setup.members.values() for line in web.access_log_path.read_text(encoding='utf-8').splitlines()]
    assert {line.split()[0] for line in lines if 'GET /health_check.html' in line} == {CHECK_SOURCE}
    assert {line.split()[0] for line in lines if '"GET / ' in line} == {CLIENT}


def test_the_harness_reading_of_bound_is_where_haproxy_sends_new_connections(nginx_factory, haproxy_factory):
    """bound_state, the tests' own reading of HAProxy and the judge of the collection's, against HAProxy's routing:
    a server in drain or maint gets no new connection, and reads as down; back to ready, it gets its share and reads up."""
    setup = start_vip(nginx_factory, haproxy_factory, 18100)
    for state, bound in (('drain', False), ('maint', False), ('ready', True)):
        assert setup.haproxy.runtime(f'set server vip/web1 state {state}').strip() == '', state
        assert setup.haproxy.member_state('web1') == ('up' if bound else 'down'), state
        served = served_by_new_connections(VIP, 18100, 4)
        assert sorted(served) == (['web1', 'web1', 'web2', 'web2'] if bound else ['web2'] * 4), (state, served)


def test_a_failed_start_says_why_and_leaves_nothing_running(tmp_path):
    with socket.create_server((WEB1, 18081)):
        nginx = Nginx('busy', WEB1, 18081, tmp_path / 'busy')
        with pytest.raises(HarnessError, match='Address already in use'):
            nginx.start(timeout=2.0)
    assert not nginx.is_running and nginx.leftover_pids() == []


def test_no_process_outlives_stop_all(tmp_path):
    web = Nginx('web1', WEB1, 18091, tmp_path / 'web1')
    haproxy = HAProxy(tmp_path / 'haproxy', PROFILE, (VIP, 18090), [('web1', WEB1, 18091)])
    try:
        web.start()
        haproxy.start()
        pids = [*web.pids(), *haproxy.pids()]
        assert len(pids) >= 3 and all(pid_alive(pid) for pid in pids)  # nginx master + worker, haproxy
    finally:
        stop_all([web, haproxy])
    assert [pid for pid in pids if pid_alive(pid)] == []
