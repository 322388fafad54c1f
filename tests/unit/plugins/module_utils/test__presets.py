"""What each device preset declares it can do, and that its methods back exactly that."""

from __future__ import annotations

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _presets, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Capability

OBSERVE, ADMIN, SESSIONS, POOL, BATCHES = Capability.OBSERVE, Capability.ADMIN, Capability.SESSIONS, Capability.POOL, Capability.BATCHES


def test_each_preset_declares_its_capabilities():
    declared = {name: cls.capabilities for name, cls in _presets.PRESET_CLASSES.items()}
    full = {OBSERVE, ADMIN, SESSIONS, POOL, BATCHES}
    assert declared == {
        'f5_bigip': full, 'netscaler': full, 'haproxy_dataplane': full, 'nginx_plus': full, 'a10': full,
        'alteon': {OBSERVE, SESSIONS, POOL, BATCHES},  # its admin state needs a configuration apply: not offered
        'kemp': {OBSERVE, ADMIN, POOL, BATCHES},  # showvs has no connection count
        'envoy': {OBSERVE, SESSIONS, POOL, BATCHES},  # the admin interface sets nothing
    }
    assert all(cls.name == 'http' and cls.preset == name for name, cls in _presets.PRESET_CLASSES.items())


# The method a preset overrides exactly when it declares the capability.
BACKED_BY = {ADMIN: 'write_admin', SESSIONS: 'sessions_of'}


@pytest.mark.parametrize('name', _presets.PRESETS)
def test_a_preset_implements_what_it_declares_and_nothing_else(name):
    cls = _presets.PRESET_CLASSES[name]
    for capability, method in BACKED_BY.items():
        assert (getattr(cls, method) is not getattr(_presets.Preset, method)) is cls.can(capability), (name, capability)
    assert getattr(cls, 'entries') is not getattr(_presets.Preset, 'entries') and getattr(cls, 'read') is not getattr(_presets.Preset, 'read')


def test_a_refusal_names_the_preset_and_who_can():
    refused = _presets.PRESET_CLASSES['envoy'].refusal(ADMIN)
    assert str(refused) == ("preset: 'envoy' cannot set an admin state; use one of f5_bigip, netscaler, haproxy_dataplane, nginx_plus, a10, "
                            f"kemp, or a provider that can ({', '.join(_providers.providers_that_can(ADMIN))})")
    assert _presets.presets_that_can(SESSIONS) == ('f5_bigip', 'netscaler', 'haproxy_dataplane', 'nginx_plus', 'a10', 'alteon', 'envoy')


def test_the_preset_choices_are_the_presets():
    assert _providers.provider_argument_spec()['preset']['choices'] == list(_presets.PRESETS)
    assert _providers.provider_argument_spec()['password']['no_log'] is True


def test_a_preset_applies_only_with_provider_http():
    assert _providers.provider_class_for({'provider': 'http', 'preset': 'kemp'}) is _presets.Kemp
    assert _providers.provider_class_for({'provider': 'timer', 'preset': 'kemp'}) is _providers.TimerProvider


@pytest.mark.parametrize(('answer', 'bound'), [
    ({'state': 'up', 'session': 'monitor-enabled'}, True),
    ({'state': 'up', 'session': 'user-disabled'}, False),  # disabled: persistent connections only
    ({'state': 'user-down', 'session': 'user-disabled'}, False),  # forced offline
    ({'state': 'down', 'session': 'monitor-enabled'}, False),
    ({'state': 'checking', 'session': 'monitor-enabled'}, None),
])
def test_big_ip_reads_state_and_session_together(answer, bound):
    provider = _presets.BigIp('https://bigip', 'web', 'web1:80', _providers.HttpSettings(), 'u', 'p')
    assert provider.read(answer).bound is bound


def test_netscaler_accepts_either_reading_after_a_drain():
    provider = _presets.NetScaler('https://adc', 'web', 'web1:80', _providers.HttpSettings(), 'u', 'p')
    finished = {'state': 'DISABLED', 'svrstate': 'OUT OF SERVICE'}
    assert provider.admin_of(finished) == ('disabled', 'drain')
    assert provider.admin_of({'state': 'DISABLED', 'svrstate': 'GOING OUT OF SERVICE'}) == ('drain',)
