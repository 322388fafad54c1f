from __future__ import annotations

import os

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError
from ansible_collections.l4vip.rollout.plugins.plugin_utils._probe import DEFAULTS, probe_options


def test_defaults_are_gentle_and_filled():
    options = probe_options({'urls': ['https://www.example.com/']})
    assert {key: options[key] for key in DEFAULTS if key != 'dir'} == {key: value for key, value in DEFAULTS.items() if key != 'dir'}
    assert options['dir'] == os.path.abspath('rollout-report')
    assert options['arguments'] == ['--url=https://www.example.com/', '--keepalive', '2', '--interval', '0.5', '--rate', '2.0',
                                    '--timeout', '2.0', '--source', 'probe', '--records', 'failed']


def test_tls_and_host_header_reach_the_arguments():
    options = probe_options({'urls': 'https://10.0.0.5/', 'host_header': 'www.example.com', 'ca_path': '/etc/ca.pem',
                             'keepalive_clients': '4', 'max_failed': 3})
    assert options['urls'] == ['https://10.0.0.5/'] and options['keepalive_clients'] == 4 and options['max_failed'] == 3
    assert options['arguments'][:5] == ['--url=https://10.0.0.5/', '--host-header', 'www.example.com', '--ca-path', '/etc/ca.pem']
    assert '--insecure' in probe_options({'urls': ['https://10.0.0.5/'], 'validate_certs': 'no'})['arguments']


@pytest.mark.parametrize(('raw', 'says'), [
    ({}, "urls: expected one or more http:// or https:// URLs of the VIP, got None"),
    ({'urls': []}, 'urls: expected one or more'),
    ({'urls': ['ftp://vip/']}, "urls: expected http:// or https:// URLs with a host, and a port from 1 to 65535 if any, got 'ftp://vip/'"),
    ({'urls': ['http://vip/', 'http://vip:99999/']}, "urls: expected http:// or https:// URLs with a host, and a port from 1 to 65535 if any, "
                                                     "got 'http://vip:99999/'"),
    ({'urls': ['http://vip/'], 'timeout': 0}, 'timeout: expected a positive number, got 0'),
    ({'urls': ['http://vip/'], 'timeout': 'nan'}, "timeout: expected a positive number, got 'nan'"),
    ({'urls': ['http://vip/'], 'max_failed': -1}, 'max_failed: expected a non-negative number, got -1'),
    ({'urls': ['http://vip/'], 'max_failed': 1.5}, 'max_failed: expected a whole number, got 1.5'),
    ({'urls': ['http://vip/'], 'keepalive_clients': True}, 'keepalive_clients: expected a whole number, got True'),
    ({'urls': ['http://vip/'], 'keepalive_clients': 0, 'new_connection_rate': 0}, 'keepalive_clients and new_connection_rate: expected one of them above 0'),
    ({'urls': ['http://vip/'], 'validate_certs': 'maybe'}, "validate_certs: expected true or false, got 'maybe'"),
    ({'urls': ['https://vip/'], 'validate_certs': False, 'ca_path': '/ca.pem'},
     "ca_path: expected none while validate_certs is false (pick one), got '/ca.pem'"),
    ({'urls': ['http://vip/'], 'rate': 5}, "rate: unknown option; the options are urls, host_header"),
    (['http://vip/'], "<options>: expected a dictionary with at least urls, got ['http://vip/']"),
])
def test_a_wrong_option_is_named_with_its_value(raw, says):
    with pytest.raises(OptionError) as raised:
        probe_options(raw)
    assert says in str(raised.value)
    assert str(raised.value).startswith(f'{raised.value.option}: ')  # the one option error type: it names the option
