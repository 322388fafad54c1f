from __future__ import annotations

import math

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _health_check, _sockets, _timing
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError, seconds
from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import _arguments as realserver_args
from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic import Traffic


@pytest.mark.parametrize('value', [0.5, 3, 1e-3])
def test_a_positive_finite_number_of_seconds_passes(value):
    assert seconds('timeout', value) == float(value)


@pytest.mark.parametrize('value', [0, -1, math.nan, math.inf, -math.inf, True, '2', None])
def test_anything_else_is_refused_naming_the_option_and_the_value(value):
    with pytest.raises(OptionError) as raised:
        seconds('timeout', value)
    assert str(raised.value) == f'timeout: expected a number of seconds greater than 0, got {value!r}'
    assert raised.value.detail == {'option': 'timeout', 'value': value}


def test_zero_when_allowed():
    assert seconds('timeout', 0, allow_zero=True) == 0.0
    with pytest.raises(OptionError, match='timeout: expected a number of seconds, 0 or more, got -0.1'):
        seconds('timeout', -0.1, allow_zero=True)


def test_one_error_type_everywhere():
    assert _sockets.OptionError is _health_check.OptionError is OptionError
    assert issubclass(_timing.ProfileError, OptionError)
    with pytest.raises(_timing.ProfileError, match=r"^profile.interval: expected a number of seconds greater than 0, got nan$"):
        _timing.parse_profile({'interval': math.nan})


def test_the_tools_refuse_nan_too(capsys):
    with pytest.raises(SystemExit):
        realserver_args(['--name', 'web1', '--listen', '127.0.0.1:8080', '--docroot', '/tmp', '--stop-timeout', 'nan'])
    assert '--stop-timeout: expected a number of seconds greater than 0, got nan' in capsys.readouterr().err
    with pytest.raises(OptionError, match='^timeout: '):
        Traffic('127.0.0.1', 8080, timeout=math.nan)
    with pytest.raises(OptionError, match='^new_connection_rate: '):
        Traffic('127.0.0.1', 8080, new_connection_rate=math.nan)
