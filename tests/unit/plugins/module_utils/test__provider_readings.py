"""The providers' readings of an L4's answer, from answers the L4s really give.

HAProxy's answers were captured from HAProxy 2.6 (Debian) through its runtime API: backend ``web`` with web1
holding two open keep-alive sessions out of the three it ever had, web2 set ``maint`` and web3 set ``drain``.
The emulator's answers are its own: the member and VIP views its control API serves.
"""

from __future__ import annotations

import random

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _haproxy, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import parse_config
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.datapath import Vip
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.health import Member

SHOW_SERVERS_STATE = (
    '1\n'
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check'
    '_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvreco'
    'rd srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n'
    '3 web 1 web1 127.0.0.11 2 0 1 1 0 15 3 2 6 0 0 0 - 18401 - 0 0 - - 0\n'
    '3 web 2 web2 127.0.0.12 0 1 1 1 0 15 3 0 14 0 0 0 - 18402 - 0 0 - - 0\n'
    '3 web 3 web3 127.0.0.13 2 8 1 1 0 15 3 2 6 0 0 0 - 18403 - 0 0 - - 0\n'
    '\n'
)
SHOW_STAT = (
    '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdo'
    'wn,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,h'
    'rsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,c'
    'omp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,c'
    'heck_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,interc'
    'epted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_co'
    'nn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl'
    '_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn'
    '_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2'
    '_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,'
    'h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n'
    'vip_in,FRONTEND,,,2,6,9984,7,276,1108,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,7,0,7,,,,,,,,,,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,tcp,,7'
    ',7,7,,0,0,0,,,,,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n'
    'web,web1,0,0,2,2,,3,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,0,0,,1,3,1,,3,,2,3,,3,L7OK,200,0,,,,,,,,,,,0,0,,,,,0,,,0,0,0,0,,,,Layer7 check pa'
    'ssed,,1,2,2,,,,127.0.0.11:18401,,tcp,,,,,,,,0,3,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'web,web2,0,0,0,2,,2,138,554,,0,,0,0,0,0,MAINT,1,1,0,0,1,0,0,,1,3,2,,2,,2,2,,2,,,,,,,,,,,,,,0,0,,,,,0,,,0,0,0,2,,,,,,,,,,,,127.0.0.'
    '12:18402,,tcp,,,,,,,,0,2,0,,,0,,0,0,0,2,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'web,web3,0,0,0,2,,2,138,554,,0,,0,0,0,0,DRAIN,1,1,0,0,0,0,0,,1,3,3,,2,,2,2,,2,L7OK,200,0,,,,,,,,,,,0,0,,,,,0,,,0,0,0,2,,,,Layer7 c'
    'heck passed,,1,2,2,,,,127.0.0.13:18403,,tcp,,,,,,,,0,2,0,,,0,,0,0,0,2,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'web,BACKEND,0,0,2,6,999,7,276,1108,0,0,,0,0,0,0,UP,1,1,0,,0,0,0,,1,3,0,,7,,1,7,,7,,,,,,,,,,,,,,0,0,0,0,0,0,0,,,0,0,0,2,,,,,,,,,,,,'
    ',,tcp,roundrobin,,,,,,,0,7,0,,,,,0,0,0,2,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,7,7,1757,245,0,0,\n'
    '\n'
)
ANSWERS = {'show servers state web': SHOW_SERVERS_STATE, 'show stat': SHOW_STAT}


@pytest.fixture
def haproxy(monkeypatch):
    """A HAProxyProvider whose runtime API answers with the captured text; what it was asked is recorded."""
    asked = []

    def runtime_command(endpoint, command, timeout=5.0):
        asked.append(command)
        return ANSWERS[command]
    monkeypatch.setattr(_haproxy, 'runtime_command', runtime_command)
    provider = _providers.HAProxyProvider('/run/haproxy/admin.sock', 'web', 'web1')
    provider.asked = asked
    return provider


def test_haproxy_maint_and_drain_are_not_bound(haproxy):
    seen = haproxy.observe_members(['web1', 'web2', 'web3'])
    assert {name: (o.bound, o.admin_state, o.observed) for name, o in seen.items()} == {
        'web1': (True, 'enabled', 'RUNNING'),
        'web2': (False, 'disabled', 'STOPPED+FMAINT'),  # maint: HAProxy also stops checking it
        'web3': (False, 'drain', 'RUNNING+FDRAIN'),  # drain: still checked and running, but no new connections
    }
    assert haproxy.pool_bindings() == {'web1': True, 'web2': False, 'web3': False}
    assert haproxy.with_member('web3').admin_state() == 'drain'
    assert set(haproxy.asked) == {'show servers state web'}


def test_haproxy_sessions_are_the_current_ones_not_the_total(haproxy):
    # web1 had three sessions and holds two; web2 and web3 had two each, closed since.
    assert haproxy.session_counts(['web1', 'web2', 'web3']) == {'web1': 2, 'web2': 0, 'web3': 0}
    assert haproxy.asked == ['show stat']


# (health, admin state) -> whether the L4 gives the member new connections.
EMULATOR_MEMBERS = {
    'web1': ('up', 'enabled', True),
    'web2': ('suspect', 'enabled', True),  # one failed check: still bound
    'web3': ('up', 'drain', False),
    'web4': ('up', 'disabled', False),
    'web5': ('down', 'enabled', False),
}


@pytest.fixture
def emulator(monkeypatch):
    """An EmulatorProvider answered by the emulator's own views of a VIP whose members are as EMULATOR_MEMBERS says."""
    config = parse_config({'vips': [{'name': 'web', 'listen': '127.0.0.10:8080', 'members': [
        {'name': name, 'address': f'127.0.0.{10 + index}:8080'} for index, name in enumerate(EMULATOR_MEMBERS, 1)]}]})
    members = [Member('web', member, 0.0) for member in config.vips[0].members]
    for member in members:
        member.health, member.admin, _bound = EMULATOR_MEMBERS[member.name]
    vip = Vip(config.vips[0], members, random.Random(1))
    views = {'http://127.0.0.1:9/api/vips/web': vip.as_dict()}
    views.update({f'http://127.0.0.1:9/api/vips/web/members/{m.name}': m.as_dict() for m in members})
    monkeypatch.setattr(_providers, 'fetch_json', lambda url, settings, method='GET', body=None: views[url])
    return _providers.EmulatorProvider('http://127.0.0.1:9', 'web', 'web1', _providers.HttpSettings())


def test_emulator_bound_is_the_binding_not_the_health(emulator):
    expected = {name: bound for name, (_health, _admin, bound) in EMULATOR_MEMBERS.items()}
    assert {name: emulator.with_member(name).observe().bound for name in EMULATOR_MEMBERS} == expected
    assert {name: o.bound for name, o in emulator.observe_members(list(EMULATOR_MEMBERS)).items()} == expected
    assert emulator.pool_bindings() == expected
    assert emulator.with_member('web3').admin_state() == 'drain'
