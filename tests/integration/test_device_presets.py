"""Contract tests of each device preset against its double (tests/harness/devices.py), which answers in
the device's dialect from the embedded emulator's real state: read, admin, sessions, pool, a refused
login, and a clear error naming the option and the value for each bad option.

Addresses: the lab's VIP 127.0.0.60 and members 127.0.0.61-62, the doubles on 127.0.0.170.
"""

from __future__ import annotations

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _l4_steps, _presets, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Capability
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile
from ansible_collections.l4vip.rollout.tests.harness.devices import DEVICES, PASSWORD, DataPlaneDouble, NginxPlusDouble
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab, get, wait_for

PROFILE = parse_profile({'interval': 0.2, 'retry': 1, 'rise': 1})


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp('presets'), count=2) as running:
        running.wait_all_bound()
        yield running


@pytest.fixture()
def fresh(lab):
    """The lab with every member enabled and bound again after the test, whatever the test left."""
    yield lab
    for name in ('web1', 'web2'):
        lab.api(f'/api/vips/web/members/{name}/admin', 'PUT', {'state': 'enabled'})
    lab.wait_all_bound()


def double(preset: str, lab: Lab, **kwargs):
    return DEVICES[preset](lab.emulator.control_url, 'web', **kwargs)


def provider(device, member: str = 'web1', **more):
    params = dict({key: None for key in _providers.provider_argument_spec()}, validate_certs=True, headers={}, **device.options(member, **more))
    return _providers.build_provider(params, PROFILE)


ALL = list(_presets.PRESETS)
ADMIN = list(_presets.presets_that_can(Capability.ADMIN))
SESSIONS = list(_presets.presets_that_can(Capability.SESSIONS))
WITH_LOGIN = [name for name, cls in _presets.PRESET_CLASSES.items() if cls.credentials != 'none']


@pytest.mark.parametrize('preset', ALL)
def test_reads_each_member_and_lists_the_pool(fresh, preset):
    with double(preset, fresh) as device:
        web1 = provider(device)
        seen = web1.observe_members([device.options('web1')['member'], device.options('web2')['member']])
        assert [o.bound for o in seen.values()] == [True, True], seen
        assert web1.pool_bindings() == {device.options(n)['member']: True for n in ('web1', 'web2')}
        # The emulator's own checks take web2 down: the device says so, in its words.
        fresh.fail_health_check('web2')
        try:
            web2 = provider(device, 'web2')
            said = wait_for('web2 down as the device says it', lambda: (o := web2.observe()).bound is False and o, 3.0)
            assert said.observed and web1.pool_bindings()[device.options('web2')['member']] is False
        finally:
            fresh.pass_health_check('web2')
        wait_for('web2 bound again', lambda: web2.observe().bound is True, 3.0)


@pytest.mark.parametrize('preset', ADMIN)
def test_sets_the_admin_state_and_the_emulator_follows(fresh, preset):
    with double(preset, fresh) as device:
        web1 = provider(device)
        assert web1.admin_state() == 'enabled'
        for state in [s for s in ('drain', 'disabled') if s in web1.settable] + ['enabled']:
            web1.set_admin(state)
            assert fresh.member('web1')['admin_state'] == state
            assert provider(device).admin_state() in (state, 'disabled' if state == 'drain' else state)
            assert web1.admin_state() == state
            assert web1.observe().bound is (state == 'enabled')
        for missing in [s for s in ('drain', 'disabled') if s not in web1.settable]:
            with pytest.raises(_providers.ProviderError, match=rf"state: '{missing}' cannot be set through preset '{preset}'"):
                web1.set_admin(missing)


@pytest.mark.parametrize('preset', ADMIN)
def test_member_admin_step_through_the_preset_is_idempotent(fresh, preset):
    with double(preset, fresh) as device:
        params = dict({key: None for key in _l4_steps.member_admin_spec()}, validate_certs=True, headers={}, poll_interval=0.1,
                      state='disabled', **device.options('web1'))
        first = _l4_steps.member_admin(params, _l4_steps.Context())
        again = _l4_steps.member_admin(params, _l4_steps.Context())
        assert (first['changed'], first['previous_admin_state'], again['changed']) == (True, 'enabled', False)
        assert fresh.member('web1')['bound'] is False


@pytest.mark.parametrize('preset', SESSIONS)
def test_counts_the_sessions_a_client_holds(fresh, preset):
    with double(preset, fresh) as device:
        connection = fresh.keepalive()
        try:
            _status, served_by, _body = get(connection)
            member = device.options(served_by)['member']
            counts = provider(device).session_counts([member])
            assert counts == {member: fresh.member(served_by)['sessions']} and counts[member] >= 1
        finally:
            connection.close()
        wait_for('the session gone, as the device counts', lambda: provider(device).session_counts([member])[member] == 0, 3.0)


@pytest.mark.parametrize('preset', WITH_LOGIN)
def test_a_wrong_password_is_refused_and_never_shown(fresh, preset):
    with double(preset, fresh) as device:
        wrong = provider(device, password='not-' + PASSWORD)
        with pytest.raises(_providers.ProviderError, match='refused') as refused:
            wrong.observe()
        assert PASSWORD not in str(refused.value)


def test_a_lapsed_token_logs_in_again(fresh):
    with double('f5_bigip', fresh) as device:
        web1 = provider(device)
        assert web1.observe().bound is True
        device.tokens.clear()  # the device forgot it (lifetime over, or the device restarted)
        assert web1.observe().bound is True
        assert [path for method, path in device.requests if method == 'POST'] == ['/mgmt/shared/authn/login'] * 2


@pytest.mark.parametrize('version', ['v2', 'v3'])
def test_data_plane_api_both_versions(fresh, version):
    with DataPlaneDouble(fresh.emulator.control_url, 'web', version=version) as device:
        web1 = provider(device)
        web1.set_admin('drain')
        assert fresh.member('web1')['admin_state'] == 'drain' and web1.session_counts(['web1']) == {'web1': 0}
        assert any(path.startswith(f'/{version}/services/haproxy/runtime/') for _method, path in device.requests)


def test_nginx_plus_stream_upstreams_have_no_drain(fresh):
    with NginxPlusDouble(fresh.emulator.control_url, 'web', stream=True) as device:
        web1 = provider(device)
        with pytest.raises(_providers.ProviderError, match=r"state: 'drain' cannot be set through preset 'nginx_plus'"):
            web1.set_admin('drain')
        web1.set_admin('disabled')
        assert fresh.member('web1')['admin_state'] == 'disabled'


def test_envoy_observes_only(fresh):
    with double('envoy', fresh) as device:
        with pytest.raises(_l4_steps.StepFailed, match=r"preset: 'envoy' cannot set an admin state; use one of f5_bigip"):
            _l4_steps.member_admin(dict({key: None for key in _l4_steps.member_admin_spec()}, state='disabled', **device.options('web1')),
                                   _l4_steps.Context())


BAD_OPTIONS = [
    ('f5_bigip', {'endpoint': 'bigip.example.com'}, r"endpoint: 'bigip.example.com' is not a base URL for preset 'f5_bigip'"),
    ('f5_bigip', {'pool': None}, r"pool: needed with preset 'f5_bigip'"),
    ('f5_bigip', {'member': 'web1'}, r"member: 'web1' is not a pool member's name for preset 'f5_bigip'"),
    ('f5_bigip', {'password': None}, r"password: needed with preset 'f5_bigip'"),
    ('f5_bigip', {'query': 'state'}, r"query: not used with preset 'f5_bigip'"),
    ('f5_bigip', {'preset': 'bigip'}, r"preset: 'bigip' is not a preset; use one of f5_bigip, netscaler"),
    ('netscaler', {'member': 'web1'}, r"member: 'web1' is not a service group member"),
    ('haproxy_dataplane', {'endpoint': 'http://127.0.0.1:5555/v1'}, r"endpoint: 'http://127.0.0.1:5555/v1' does not end with the API version"),
    ('nginx_plus', {'endpoint': 'http://127.0.0.1:8080/'}, r"endpoint: 'http://127.0.0.1:8080' does not end with /api/<version>"),
    ('a10', {'member': 'web1+80'}, r"member: 'web1\+80' is not a service group member"),
    ('kemp', {'pool': 'web'}, r"pool: 'web' is not a virtual service's address:port for preset 'kemp'"),
    ('envoy', {'username': 'admin'}, r"username, password: preset 'envoy' has no login"),
    ('alteon', {'member': 'web9'}, r"member: the Alteon \(REST\) has no member 'web9' in pool 'web'; its members are web1, web2"),
]


@pytest.mark.parametrize(('preset', 'change', 'message'), BAD_OPTIONS, ids=[f'{p}-{next(iter(c))}' for p, c, _m in BAD_OPTIONS])
def test_a_bad_option_is_named_with_its_value(fresh, preset, change, message):
    with double(preset, fresh) as device:
        params = dict({key: None for key in _providers.provider_argument_spec()}, validate_certs=True, headers={},
                      **dict(device.options('web1'), **change))
        with pytest.raises(_providers.ProviderError, match=message):
            _providers.build_provider(params, PROFILE).observe()
        assert [m['admin_state'] for m in fresh.api('/api/vips/web')['members']] == ['enabled', 'enabled']
