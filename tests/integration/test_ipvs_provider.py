"""The ipvs provider against a stand-in ipvsadm (tests/harness/devices.py) fed by the emulator's state:
read, drain (weight 0), disabled (removed), back as before (the remembered weight), sessions
(ActiveConn + InActConn), the pool, and a clear error naming the option and the value.

Addresses: the lab's VIP 127.0.0.60 and members 127.0.0.61-62.
"""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _ipvs, _l4_steps, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile
from ansible_collections.l4vip.rollout.tests.harness.devices import write_ipvsadm
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab, get, wait_for

PROFILE = parse_profile({'interval': 0.2, 'retry': 1, 'rise': 1})


@pytest.fixture()
def lab(tmp_path, monkeypatch):
    monkeypatch.setattr(_ipvs, 'STATE_DIR', str(tmp_path / 'ipvs-state'))
    monkeypatch.setattr(_ipvs, 'PROC_TABLE', str(tmp_path / 'no-ip_vs'))  # this host's own IPVS table, if any, stays out
    with Lab(tmp_path, count=2) as running:
        running.wait_all_bound()
        yield running


def options(lab, tmp_path, member='web1', **more):
    vip = '%s:%d' % lab.vip
    params = dict({key: None for key in _l4_steps.member_admin_spec()}, provider='ipvs', pool=vip, validate_certs=True, headers={},
                  endpoint=write_ipvsadm(tmp_path, lab.emulator.control_url, 'web'), member=lab.member(member)['address'])
    return dict(params, **more)


def test_reads_drains_removes_and_puts_back_as_before(lab, tmp_path):
    params = options(lab, tmp_path)
    web1 = _providers.build_provider(params, PROFILE)
    assert web1.observe().bound is True and web1.admin_state() == 'enabled'
    assert web1.pool_bindings() == {lab.member('web1')['address']: True, lab.member('web2')['address']: True}
    # A weight other than 1, set by hand, is what enabled must bring back.
    subprocess.run([params['endpoint'], '-e', '-t', params['pool'], '-r', params['member'], '-g', '-w', '7'], check=True, timeout=10)
    web1.set_admin('drain')
    assert (lab.member('web1')['admin_state'], web1.admin_state(), web1.observe().bound) == ('drain', 'drain', False)
    assert 'weight 0' in web1.observe().observed
    web1.set_admin('disabled')
    assert (lab.member('web1')['admin_state'], web1.admin_state()) == ('disabled', 'disabled')
    assert params['member'] not in web1.pool_bindings()
    web1.set_admin('enabled')
    assert lab.member('web1')['admin_state'] == 'enabled' and 'weight 7,' in web1.observe().observed


def test_member_admin_step_is_idempotent(lab, tmp_path):
    params = dict(options(lab, tmp_path), state='drain', poll_interval=0.1)
    first = _l4_steps.member_admin(params, _l4_steps.Context())
    again = _l4_steps.member_admin(params, _l4_steps.Context())
    assert (first['changed'], first['previous_admin_state'], again['changed']) == (True, 'enabled', False)


def test_counts_active_connections(lab, tmp_path):
    connection = lab.keepalive()
    try:
        _status, served_by, _body = get(connection)
        provider = _providers.build_provider(options(lab, tmp_path, served_by), PROFILE)
        assert provider.session_counts([provider.member]) == {provider.member: 1}
    finally:
        connection.close()
    wait_for('no connection left', lambda: provider.session_counts([provider.member])[provider.member] == 0, 3.0)


def test_a_failing_member_leaves_the_table_as_keepalived_takes_it_out(lab, tmp_path):
    web2 = _providers.build_provider(options(lab, tmp_path, 'web2'), PROFILE)
    lab.fail_health_check('web2')
    try:
        wait_for('web2 out of the table', lambda: web2.observe().bound is False, 3.0)
        assert web2.observe().observed == 'not in the virtual service'
        with pytest.raises(_providers.ProviderError, match=r"member: '127.0.0.62:\d+' is not in virtual service .* no rollout removed it"):
            web2.admin_state()
    finally:
        lab.pass_health_check('web2')


@pytest.mark.parametrize(('change', 'message'), [
    ({'pool': 'web'}, r"pool: 'web' is not a virtual service's address:port"),
    ({'member': 'web1'}, r"member: 'web1' is not a real server's address:port"),
    ({'pool': '127.0.0.60:1'}, r"pool: no TCP virtual service '127.0.0.60:1' in the IPVS table; it has 127.0.0.60:"),
    ({'endpoint': '/nonexistent/ipvsadm'}, r'cannot reach the L4 at /nonexistent/ipvsadm: /nonexistent/ipvsadm: not found on this host'),
])
def test_a_bad_option_is_named_with_its_value(lab, tmp_path, change, message):
    params = dict(options(lab, tmp_path), **change)
    with pytest.raises(_providers.ProviderError, match=message):
        _providers.build_provider(params, PROFILE).observe()
    assert [m['admin_state'] for m in lab.api('/api/vips/web')['members']] == ['enabled', 'enabled']


def test_without_ipvsadm_the_table_is_read_from_proc(tmp_path, monkeypatch):
    proc = tmp_path / 'ip_vs'
    proc.write_text('IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n'
                    '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\nTCP  0A000064:0050 wlc\n'
                    '  -> 0A00000B:0050      Route   3      2          5\n')
    monkeypatch.setattr(_ipvs, 'PROC_TABLE', str(proc))
    params = {'provider': 'ipvs', 'endpoint': str(tmp_path / 'no-ipvsadm'), 'pool': '10.0.0.100:80', 'member': '10.0.0.11:80'}
    provider = _providers.build_provider(params, PROFILE)
    assert provider.observe().observed == 'weight 3, ActiveConn 2, InActConn 5'
    assert provider.session_counts(['10.0.0.11:80']) == {'10.0.0.11:80': 7}
