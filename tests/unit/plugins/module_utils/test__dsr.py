"""The L3DSR pre-flight: the VIP on a loopback interface and on no other, arp_ignore >= 1 and arp_announce 2 where the
kernel looks (the larger of all's and the interface's); each missing piece named; a health check that would go back in
service without them stays out, nothing renamed.

The addresses come from canned ``ip -j addr show`` answers (iproute2's own layout) and the ARP settings from a copy of
/proc/sys/net/ipv4/conf in tmp_path; one test reads this machine's real ``ip -j addr show``.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _dsr
from ansible_collections.l4vip.rollout.plugins.module_utils import _health_check as hc
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError
from ansible_collections.l4vip.rollout.tests.harness import environment

VIP = '198.18.0.250'


def link(name, flags, link_type='ether', addresses=(), **more):
    return dict({'ifname': name, 'flags': flags, 'link_type': link_type,
                 'addr_info': [{'family': 'inet6' if ':' in a else 'inet', 'local': a.split('/')[0], 'prefixlen': int(a.split('/')[1]),
                                'label': label} for a, label in addresses]}, **more)


LO = link('lo', ['LOOPBACK', 'UP', 'LOWER_UP'], 'loopback', [('127.0.0.1/8', 'lo')])
LO_VIP = link('lo', ['LOOPBACK', 'UP', 'LOWER_UP'], 'loopback', [('127.0.0.1/8', 'lo'), (f'{VIP}/32', 'lo:0')])
ETH0 = link('eth0', ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], addresses=[('198.18.0.11/24', 'eth0')])


def interfaces(*links):
    return _dsr.parse_interfaces(json.dumps(list(links)))


@pytest.fixture
def conf(tmp_path):
    """A /proc/sys/net/ipv4/conf of all, lo and eth0, every value 0 (a fresh kernel's); ``conf(name, key, value)`` sets one."""
    root = tmp_path / 'conf'
    for name in ('all', 'default', 'lo', 'eth0', 'eth1', 'docker0'):
        (root / name).mkdir(parents=True)
        for key in ('arp_ignore', 'arp_announce'):
            (root / name / key).write_text('0\n', encoding='ascii')

    def set_value(name, key, value):
        (root / name / key).write_text(f'{value}\n', encoding='ascii')
    set_value.root = str(root)
    return set_value


def ready(conf):
    conf('all', 'arp_ignore', 1)
    conf('all', 'arp_announce', 2)


def test_a_member_ready_for_dsr_passes_and_says_what_it_saw(conf):
    ready(conf)
    seen = _dsr.check(VIP, interfaces=interfaces(LO_VIP, ETH0), conf_dir=conf.root)
    assert seen == {'vip': VIP, 'loopback': ['lo:0'], 'also_on': [], 'arp': {'eth0': {'arp_ignore': 1, 'arp_announce': 2}}, 'missing': []}


def test_without_the_vip_on_loopback_it_is_refused_naming_what_is_missing(conf):
    ready(conf)
    with pytest.raises(_dsr.DsrError) as error:
        _dsr.check(VIP, interfaces=interfaces(LO, ETH0), conf_dir=conf.root)
    assert str(error.value) == (f'dsr_vip: this member is not ready for direct server return of {VIP}: {VIP} is on no loopback interface '
                                f'(add it, for example: ip addr add {VIP}/32 dev lo label lo:0)')
    assert error.value.detail['dsr']['loopback'] == [] and len(error.value.detail['dsr']['missing']) == 1


@pytest.mark.parametrize(('values', 'missing'), [
    ({}, ["arp_ignore is 0 on eth0 (the larger of all's 0 and eth0's 0): set net.ipv4.conf.all.arp_ignore (or .eth0.) to 1",
          "arp_announce is 0 on eth0 (the larger of all's 0 and eth0's 0): set net.ipv4.conf.all.arp_announce (or .eth0.) to 2"]),
    # The kernel takes the larger of all's and the interface's: either place is enough.
    ({('eth0', 'arp_ignore'): 1, ('all', 'arp_announce'): 2}, []),
    ({('all', 'arp_ignore'): 2, ('eth0', 'arp_announce'): 2}, []),
    ({('all', 'arp_ignore'): 1, ('all', 'arp_announce'): 1},
     ["arp_announce is 1 on eth0 (the larger of all's 1 and eth0's 0): set net.ipv4.conf.all.arp_announce (or .eth0.) to 2"]),
    # Set on another interface than the one facing the L4: still missing where it counts.
    ({('lo', 'arp_ignore'): 1, ('lo', 'arp_announce'): 2},
     ["arp_ignore is 0 on eth0 (the larger of all's 0 and eth0's 0): set net.ipv4.conf.all.arp_ignore (or .eth0.) to 1",
      "arp_announce is 0 on eth0 (the larger of all's 0 and eth0's 0): set net.ipv4.conf.all.arp_announce (or .eth0.) to 2"]),
])
def test_arp_settings_count_as_the_kernel_counts_them(conf, values, missing):
    for (name, key), value in values.items():
        conf(name, key, value)
    try:
        seen = _dsr.check(VIP, interfaces=interfaces(LO_VIP, ETH0), conf_dir=conf.root)
    except _dsr.DsrError as error:
        seen = error.detail['dsr']
        assert all(piece in str(error) for piece in missing)
    assert seen['missing'] == missing


def test_the_vip_on_the_interface_facing_the_l4_is_refused(conf):
    ready(conf)
    eth0 = link('eth0', ['BROADCAST', 'UP'], addresses=[('198.18.0.11/24', 'eth0'), (f'{VIP}/32', 'eth0')])
    with pytest.raises(_dsr.DsrError, match=f"{VIP} is also on eth0, where the member would answer for it") as error:
        _dsr.check(VIP, interfaces=interfaces(LO_VIP, eth0), conf_dir=conf.root)
    assert error.value.detail['dsr']['also_on'] == ['eth0']


def test_only_interfaces_that_could_answer_arp_are_checked_unless_one_is_named(conf):
    ready(conf)
    conf('all', 'arp_ignore', 0)
    conf('eth0', 'arp_ignore', 1)
    down = link('eth1', ['BROADCAST'])  # down
    noarp = link('tun0', ['POINTOPOINT', 'NOARP', 'UP'], 'none')
    port = link('veth1', ['BROADCAST', 'UP'], master='docker0')  # its bridge answers for it
    docker0 = link('docker0', ['BROADCAST', 'UP'], addresses=[('198.18.1.1/24', 'docker0')])
    every = interfaces(LO_VIP, ETH0, down, noarp, port, docker0)
    with pytest.raises(_dsr.DsrError) as error:
        _dsr.check(VIP, interfaces=every, conf_dir=conf.root)
    assert sorted(error.value.detail['dsr']['arp']) == ['docker0', 'eth0']
    assert 'arp_ignore is 0 on docker0' in str(error.value)
    # Named: the interface towards the L4 alone.
    assert _dsr.check(VIP, 'eth0', interfaces=every, conf_dir=conf.root)['arp'] == {'eth0': {'arp_ignore': 1, 'arp_announce': 2}}


def test_an_ipv6_vip_needs_only_the_loopback(conf):
    lo = link('lo', ['LOOPBACK', 'UP'], 'loopback', [('::1/128', 'lo'), ('2001:db8::10/128', 'lo')])
    assert _dsr.check('2001:db8::10', interfaces=interfaces(lo, ETH0), conf_dir=conf.root)['arp'] == {}
    with pytest.raises(_dsr.DsrError, match='2001:db8::11 is on no loopback interface'):
        _dsr.check('2001:db8::11', interfaces=interfaces(lo, ETH0), conf_dir=conf.root)


@pytest.mark.parametrize(('vip', 'interface', 'message'), [
    ('10.0.0.100/32', None, "dsr_vip: expected the VIP as an IP address, such as 10.0.0.100, got '10.0.0.100/32'"),
    ('web.example.com', None, "dsr_vip: expected the VIP as an IP address, such as 10.0.0.100, got 'web.example.com'"),
    (VIP, 'eth9', "dsr_interface: expected an interface of this member (lo, eth0), got 'eth9'"),
])
def test_a_bad_option_names_the_option_and_the_value(conf, vip, interface, message):
    with pytest.raises(OptionError) as error:
        _dsr.check(vip, interface, interfaces=interfaces(LO_VIP, ETH0), conf_dir=conf.root)
    assert str(error.value) == message


def test_what_cannot_be_read_is_said(conf, tmp_path):
    with pytest.raises(_dsr.DsrError, match=r'nonexistent-ip: not found on this member'):
        _dsr.read_interfaces(['nonexistent-ip', '-j', 'addr', 'show'])
    with pytest.raises(_dsr.DsrError, match=r'did not answer the JSON it should'):
        _dsr.parse_interfaces('1: lo: <LOOPBACK,UP> mtu 65536')
    with pytest.raises(_dsr.DsrError, match=r'cannot read .*/all/arp_ignore'):
        _dsr.check(VIP, interfaces=interfaces(LO_VIP, ETH0), conf_dir=str(tmp_path / 'nowhere'))


def test_this_machines_own_addresses_parse():
    if shutil.which('ip') is None:
        environment.missing('reading real addresses needs ip (iproute2)')
    found = _dsr.read_interfaces()
    assert any(interface.loopback and any(a[0] == '127.0.0.1' for a in interface.addresses) for interface in found), found


# --- the health_check module's dsr_vip -----------------------------------------------------------

@pytest.fixture
def member(tmp_path, conf, monkeypatch):
    """A docroot with the health check out of service, and a member whose addresses the test gives."""
    docroot = tmp_path / 'html'
    docroot.mkdir()
    (docroot / 'health_check.html.disabled').write_text('OK\n', encoding='utf-8')
    monkeypatch.setattr(_dsr, 'CONF_DIR', conf.root)
    links = [LO, ETH0]
    monkeypatch.setattr(_dsr, 'read_interfaces', lambda argv=None: interfaces(*links))
    return docroot, links


def params(docroot, **more):
    return dict({'path': str(docroot / 'health_check.html'), 'state': 'in_service', 'dsr_vip': VIP}, **more)


def test_health_check_stays_out_when_the_member_is_not_ready_nothing_renamed(member, conf):
    docroot, _links = member
    ready(conf)
    before = sorted(os.listdir(docroot))
    with pytest.raises(hc.ERRORS) as error:
        hc.run(params(docroot))
    assert str(error.value).endswith('lo label lo:0). The health check stays out of service: nothing was renamed')
    assert f'{VIP} is on no loopback interface' in str(error.value)
    assert error.value.detail['dsr']['loopback'] == []
    assert sorted(os.listdir(docroot)) == before == ['health_check.html.disabled']


def test_health_check_goes_in_service_when_the_member_is_ready(member, conf):
    docroot, links = member
    ready(conf)
    links[0] = LO_VIP
    result = hc.run(params(docroot))
    assert (result['changed'], result['state'], result['dsr']['loopback']) == (True, 'in_service', ['lo:0'])
    assert os.path.exists(docroot / 'health_check.html')


def test_check_mode_refuses_alike(member, conf):
    docroot, _links = member
    with pytest.raises(hc.ERRORS, match='arp_ignore is 0 on eth0'):
        hc.run(params(docroot), check_mode=True)


def test_out_of_service_is_never_refused_and_query_reports(member, conf):
    docroot, _links = member
    (docroot / 'health_check.html.disabled').rename(docroot / 'health_check.html')
    query = hc.run(params(docroot, state='query'))
    assert query['state'] == 'in_service' and len(query['dsr']['missing']) == 3, query
    out = hc.run(params(docroot, state='out_of_service'))
    assert (out['changed'], out['state'], 'dsr' in out) == (True, 'out_of_service', False)


@pytest.mark.parametrize(('more', 'message'), [
    ({'dsr_vip': 'lo:0'}, "dsr_vip: expected the VIP as an IP address, such as 10.0.0.100, got 'lo:0'"),
    ({'dsr_vip': None, 'dsr_interface': 'eth0'}, "dsr_interface: expected only with dsr_vip, the VIP whose ARP it is about, got 'eth0'"),
])
def test_health_check_refuses_bad_dsr_options_before_anything(member, more, message):
    docroot, _links = member
    with pytest.raises(OptionError) as error:
        hc.run(params(docroot, state='out_of_service', **more))
    assert str(error.value) == message
    assert os.listdir(docroot) == ['health_check.html.disabled']
