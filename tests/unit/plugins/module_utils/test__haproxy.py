from __future__ import annotations

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _haproxy

# Captured from HAProxy 2.6 (Debian) with web2 put in maintenance.
SHOW_SERVERS_STATE = (
    '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change '
    'srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn '
    'srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n'
    '3 web 1 web1 127.0.0.111 2 0 1 1 0 15 3 2 6 0 0 0 - 18911 - 0 0 - - 0\n'
    '3 web 2 web2 127.0.0.112 0 1 1 1 0 15 3 0 14 0 0 0 - 18912 - 0 0 - - 0\n\n'
)


def test_parse_servers_state_reads_columns_from_the_header():
    states = _haproxy.parse_servers_state(SHOW_SERVERS_STATE)
    web1, web2 = states[('web', 'web1')], states[('web', 'web2')]
    assert (web1.op_state, web1.admin_bits, web1.check_health) == (2, 0, 2)
    assert web1.bound and web1.admin_state == 'enabled' and web1.describe() == 'RUNNING'
    assert not web2.bound and web2.admin_state == 'disabled' and web2.describe() == 'STOPPED+FMAINT'


@pytest.mark.parametrize(
    ('op_state', 'admin_bits', 'bound', 'admin_state', 'words'),
    [
        (2, 0, True, 'enabled', 'RUNNING'),
        (3, 0, False, 'enabled', 'STOPPING'),  # soft-stopping: no new connections
        (1, 0, True, 'enabled', 'STARTING'),
        (0, 0, False, 'enabled', 'STOPPED'),
        (2, 0x08, False, 'drain', 'RUNNING+FDRAIN'),
        (2, 0x10, False, 'drain', 'RUNNING+IDRAIN'),
        (2, 0x02, False, 'disabled', 'RUNNING+IMAINT'),
        (2, 0x01 | 0x08, False, 'disabled', 'RUNNING+FMAINT+FDRAIN'),  # maintenance wins over drain
    ],
)
def test_state_mapping(op_state, admin_bits, bound, admin_state, words):
    state = _haproxy.ServerState('web', 'web1', op_state, admin_bits, None)
    assert (state.bound, state.admin_state, state.describe()) == (bound, admin_state, words)


def test_garbage_answer_is_an_error():
    with pytest.raises(_haproxy.RuntimeApiError, match='unexpected answer'):
        _haproxy.parse_servers_state('Unknown command.\n')


@pytest.mark.parametrize(
    ('endpoint', 'expected'),
    [
        ('/run/haproxy/admin.sock', '/run/haproxy/admin.sock'),
        ('127.0.0.1:9999', ('127.0.0.1', 9999)),
        ('[::1]:9999', ('::1', 9999)),
    ],
)
def test_parse_endpoint(endpoint, expected):
    assert _haproxy.parse_endpoint(endpoint)[1] == expected


@pytest.mark.parametrize('endpoint', ['haproxy.sock', 'localhost', '127.0.0.1:port'])
def test_bad_endpoint_names_the_option(endpoint):
    with pytest.raises(ValueError, match=f"endpoint: expected a unix socket path or host:port, got '{endpoint}'"):
        _haproxy.parse_endpoint(endpoint)


def test_backend_states_lists_one_backend_and_names_an_unknown_server(monkeypatch):
    monkeypatch.setattr(_haproxy, 'runtime_command', lambda endpoint, command, timeout=5.0: SHOW_SERVERS_STATE)
    states = _haproxy.backend_states('/run/haproxy.sock', 'web')
    assert {name: state.bound for name, state in states.items()} == {'web1': True, 'web2': False}
    with pytest.raises(_haproxy.RuntimeApiError, match=r"no server 'web9' in backend 'web'; its servers are web1, web2"):
        _haproxy.backend_states('/run/haproxy.sock', 'web', ['web9'])
    assert _haproxy.backend_states('/run/haproxy.sock', 'web', ['web2'])['web2'].admin_state == 'disabled'
