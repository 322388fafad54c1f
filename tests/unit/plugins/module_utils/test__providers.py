from __future__ import annotations

import datetime
import importlib

import pytest
import yaml

from ansible_collections.l4vip.rollout.plugins.doc_fragments.provider import ModuleDocFragment
from ansible_collections.l4vip.rollout.plugins.module_utils import _l4_steps, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Capability, Observation
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile
from ansible_collections.l4vip.rollout.tests.unit.fakes import FakeClock


def test_provider_fragment_matches_argument_spec():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    spec = {k: v for k, v in _providers.provider_argument_spec().items() if k != 'profile'}
    assert set(documented) == set(spec)
    for key, option in spec.items():
        assert documented[key]['type'] == option['type'], key
        assert documented[key].get('default') == option.get('default'), key
        assert documented[key].get('choices') == option.get('choices'), key
        assert documented[key].get('elements') == option.get('elements'), key
    assert spec['headers']['no_log'] is True


@pytest.mark.parametrize(
    ('value', 'candidates', 'expected'),
    [
        ('down', ['down'], True),
        ('DOWN', ['down'], True),
        (False, [False], True),
        ('false', [False], True),
        (0, [False], True),  # 0 == False in Python, as in JSON-minded APIs
        ('up', ['down', 'offline'], False),
        (None, ['down'], False),
    ],
)
def test_matches(value, candidates, expected):
    assert _providers.matches(value, candidates) is expected


class ScriptedProvider(_providers.Provider):
    """Answers a fixed sequence of observations, advancing a fake clock per question."""

    def __init__(self, clock, answers, seconds_per_answer=0.0):
        self.clock, self.answers, self.seconds = clock, list(answers), seconds_per_answer

    def observe(self):
        self.clock.advance(self.seconds)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_wait_returns_when_the_binding_changes():
    clock = FakeClock()
    provider = ScriptedProvider(clock, [Observation(True, 'up'), Observation(None, 'suspect'), Observation(False, 'down')])
    report, polls, elapsed = _l4_steps.follow(provider, ['web1'], False, timeout=5, poll_interval=0.1, clock=clock)
    assert report['web1']['reached'] and polls == 3 and report['web1']['observed'] == 'down'
    assert elapsed == pytest.approx(0.2)
    assert clock.slept == [0.1, 0.1]


def test_wait_gives_up_at_the_timeout_and_says_what_it_saw():
    clock = FakeClock()
    provider = ScriptedProvider(clock, [Observation(True, 'RUNNING')])
    report, _polls, elapsed = _l4_steps.follow(provider, ['web1'], False, timeout=1.0, poll_interval=0.3, clock=clock)
    assert not report['web1']['reached'] and report['web1']['observed'] == 'RUNNING'
    assert elapsed == pytest.approx(1.0)
    assert clock.slept == pytest.approx([0.3, 0.3, 0.3, 0.1], abs=1e-6)  # the last sleep never overshoots


def test_http_provider_classifies_with_jmespath(monkeypatch):
    answers = iter([{'items': [{'name': 'web1', 'state': 'UP'}]}, {'items': [{'name': 'web1', 'state': 'user-down'}]},
                    {'items': [{'name': 'web1', 'state': 'checking'}]}])
    monkeypatch.setattr(_providers, 'fetch_json', lambda url, settings, method='GET', body=None: next(answers))
    provider = _providers.HttpProvider('https://l4/x', "items[?name=='web1'] | [0].state", ['down', 'user-down'], ['up'],
                                       _providers.HttpSettings())
    assert [provider.observe().bound for _round in range(3)] == [True, False, None]


def test_http_provider_rejects_a_bad_query():
    with pytest.raises(_providers.ProviderError, match=r"query: not a valid JMESPath expression: 'items\[\?'"):
        _providers.HttpProvider('https://l4/x', 'items[?', [], [], _providers.HttpSettings())


def test_http_admin_state_read_and_write(monkeypatch):
    sent = []
    monkeypatch.setattr(_providers, 'fetch_json',
                        lambda url, settings, method='GET', body=None: sent.append((method, url, body)) or {'session': 'user-disabled'})
    provider = _providers.HttpProvider('https://l4/m', 'session', [], [], _providers.HttpSettings(),
                                       {'disabled': ['user-disabled'], 'enabled': ['monitor-enabled']}, {'method': 'PATCH', 'body': {'session': 'x'}})
    assert provider.admin_state() == 'disabled'
    provider.set_admin('disabled')
    assert sent[-1] == ('PATCH', 'https://l4/m', {'session': 'x'})


def test_fetch_json_separates_unreachable_from_bad_answers():
    with pytest.raises(_providers.L4Unreachable, match='cannot reach the L4 at http://127.0.0.1:9/'):
        _providers.fetch_json('http://127.0.0.1:9/', _providers.HttpSettings(timeout=1))


def combined(seconds, status, source='127.0.0.2'):
    when = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc).strftime('%d/%b/%Y:%H:%M:%S %z')
    return f'{source} - - [{when}] "GET /health_check.html HTTP/1.1" {status} 3 "-" "-"\n'


def test_access_log_provider_counts_retry_plus_one_failures(tmp_path):
    log = tmp_path / 'access.log'
    since = 1_800_000_000.0
    profile = parse_profile({'retry': 2})
    provider = _providers.build_provider({'provider': 'access_log', 'endpoint': str(log), 'sources': ['127.0.0.2']}, profile, since)
    log.write_text(combined(since - 10, 404))
    assert provider.observe().bound is None  # nothing since `since`
    lines = [combined(since + 1, 200), combined(since + 2, 404), combined(since + 3, 404), combined(since + 3, 404, source='10.1.1.1')]
    log.write_text(''.join(lines))
    observation = provider.observe()
    assert observation.bound is None and '2 failing answer(s) in a row' in observation.observed  # Suspect: 2 of 3
    log.write_text(''.join(lines) + combined(since + 4, 404))
    assert provider.observe().bound is False
    log.write_text(''.join(lines) + combined(since + 4, 404) + combined(since + 5, 200))
    assert provider.observe().bound is True  # rise 1


def test_access_log_provider_missing_file_is_unreachable(tmp_path):
    provider = _providers.build_provider({'provider': 'access_log', 'endpoint': str(tmp_path / 'nope.log')}, parse_profile({}), 0.0)
    with pytest.raises(_providers.L4Unreachable, match='nope.log'):
        provider.observe()


# --- the protocol: what each provider declares it can do ---------------------------------------

OBSERVE, ADMIN, SESSIONS, POOL, BATCHES = Capability.OBSERVE, Capability.ADMIN, Capability.SESSIONS, Capability.POOL, Capability.BATCHES
CLAIMS = Capability.CLAIMS


def test_each_provider_declares_its_capabilities():
    declared = {name: cls.capabilities for name, cls in _providers.PROVIDER_CLASSES.items()}
    assert declared == {
        'timer': {BATCHES},  # observes nothing: one wait, the timing model's worst case, for the whole batch
        'emulator': {OBSERVE, ADMIN, SESSIONS, POOL, BATCHES, CLAIMS},
        'haproxy': {OBSERVE, ADMIN, SESSIONS, POOL, BATCHES},
        'http': {OBSERVE, ADMIN},
        'access_log': {OBSERVE},
        'ipvs': {OBSERVE, ADMIN, SESSIONS, POOL, BATCHES},
        'aws_elbv2': {OBSERVE, ADMIN, POOL, BATCHES},  # ELBv2 has no per-target connection count
    }
    assert _providers.PROVIDERS == ('timer', 'emulator', 'haproxy', 'http', 'access_log', 'ipvs', 'aws_elbv2')
    assert all(cls.name == name for name, cls in _providers.PROVIDER_CLASSES.items())


# The method that backs each capability: a provider overrides it exactly when it declares the capability.
BACKED_BY = {OBSERVE: 'observe', ADMIN: 'set_admin', SESSIONS: 'session_counts', POOL: 'pool_bindings'}


@pytest.mark.parametrize('name', _providers.PROVIDERS)
def test_a_provider_implements_what_it_declares_and_nothing_else(name):
    cls = _providers.PROVIDER_CLASSES[name]
    for capability, method in BACKED_BY.items():
        overridden = getattr(cls, method) is not getattr(_providers.Provider, method)
        assert overridden is cls.can(capability), (name, capability)
    batches = getattr(cls, 'with_member') is not getattr(_providers.Provider, 'with_member')
    assert batches is cls.can(BATCHES), name


def test_the_lists_of_who_can_do_what_come_from_the_classes():
    assert _providers.providers_that_can(OBSERVE) == ('emulator', 'haproxy', 'http', 'access_log', 'ipvs', 'aws_elbv2')
    assert _providers.providers_that_can(ADMIN) == ('emulator', 'haproxy', 'http', 'ipvs', 'aws_elbv2')
    assert _providers.providers_that_can(SESSIONS) == ('emulator', 'haproxy', 'ipvs')
    assert _providers.providers_that_can(POOL) == ('emulator', 'haproxy', 'ipvs', 'aws_elbv2')
    assert _providers.providers_that_can(ADMIN, BATCHES) == ('emulator', 'haproxy', 'ipvs', 'aws_elbv2')
    assert _providers.providers_that_can(BATCHES) == ('timer', 'emulator', 'haproxy', 'ipvs', 'aws_elbv2')


def test_the_timer_provider_refuses_what_it_cannot_do_naming_the_option_the_value_and_the_alternatives():
    provider = _providers.build_provider({'provider': 'timer'}, parse_profile({}))
    assert isinstance(provider, _providers.TimerProvider) and not provider.can(OBSERVE)
    refusals = [
        (provider.observe, (), "provider: 'timer' cannot observe the L4; use one of emulator, haproxy, http, access_log, ipvs, aws_elbv2"),
        (provider.admin_state, (), "provider: 'timer' cannot set an admin state; use one of emulator, haproxy, http, ipvs, aws_elbv2"),
        (provider.set_admin, ('disabled',), "provider: 'timer' cannot set an admin state; use one of emulator, haproxy, http, ipvs, aws_elbv2"),
        (provider.session_counts, (['web1'],), "provider: 'timer' cannot count the L4's sessions; use one of emulator, haproxy, ipvs"),
        (provider.pool_bindings, (), "provider: 'timer' cannot list the pool; use one of emulator, haproxy, ipvs, aws_elbv2"),
    ]
    for method, args, message in refusals:
        with pytest.raises(_providers.ProviderError) as refused:
            method(*args)
        assert str(refused.value) == message


@pytest.mark.parametrize('capability', list(Capability))
def test_every_refusal_lists_exactly_the_providers_that_can(capability):
    for name, cls in _providers.PROVIDER_CLASSES.items():
        if not cls.can(capability):
            message = str(cls.refusal(capability))
            assert message == f"provider: {name!r} cannot {capability.value}; use one of {', '.join(_providers.providers_that_can(capability))}"


def test_required_options_come_from_the_classes():
    assert _providers.PROVIDER_REQUIRED_IF == [
        ('provider', 'emulator', ['endpoint', 'pool']),
        ('provider', 'emulator', ['member', 'members'], True),
        ('provider', 'haproxy', ['endpoint', 'pool']),
        ('provider', 'haproxy', ['member', 'members'], True),
        ('provider', 'http', ['endpoint']),  # query or preset: checked where the answer is read
        ('provider', 'access_log', ['endpoint']),
        ('provider', 'ipvs', ['pool']),
        ('provider', 'ipvs', ['member', 'members'], True),
        ('provider', 'aws_elbv2', ['pool']),
        ('provider', 'aws_elbv2', ['member', 'members'], True),
    ]


def _v(names):
    return ', '.join(f'V({name})' for name in names)


def test_the_docs_list_the_providers_the_classes_declare():
    """The lists of providers the docs give for a capability are the ones the classes declare."""
    options = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    said = ' '.join(options['provider']['description'])
    sessions, pool = _providers.providers_that_can(SESSIONS), _providers.providers_that_can(POOL)
    assert f"Only {', '.join(f'V({n})' for n in sessions[:-1])} and V({sessions[-1]}) can count the L4's sessions" in said
    assert f"{', '.join(f'V({n})' for n in pool[:-1])} and V({pool[-1]}) can list the pool" in said
    admin = _providers.providers_that_can(ADMIN)
    assert f"{', '.join(f'V({n})' for n in admin[:-1])} and V({admin[-1]}) can set an admin state" in said
    assert options['provider']['choices'] == list(_providers.PROVIDERS)
    modules = {name: yaml.safe_load(importlib.import_module(f'ansible_collections.l4vip.rollout.plugins.modules.{name}').DOCUMENTATION)
               for name in ('capacity_guard', 'session_drain')}
    assert f'the providers that can list a pool ({_v(_providers.providers_that_can(POOL))})' in ' '.join(modules['capacity_guard']['description'])
    cannot_list = [name for name in _providers.PROVIDERS if name not in _providers.providers_that_can(POOL)]
    assert f"cannot list the pool ({', '.join(f'V({n})' for n in cannot_list[:-1])}, V({cannot_list[-1]}))" in ' '.join(
        ' '.join(modules['capacity_guard']['options']['pool_members']['description']).split())
    assert f'where its provider can hold them ({_v(_providers.providers_that_can(CLAIMS))})' in ' '.join(
        ' '.join(modules['capacity_guard']['options']['claims']['description']).split())
    assert f"count a member's sessions ({_v(_providers.providers_that_can(SESSIONS))})" in ' '.join(
        ' '.join(modules['session_drain']['description']).split())


def test_the_emulators_pool_is_a_vip(monkeypatch):
    monkeypatch.setattr(_providers, 'fetch_json', lambda url, settings, method='GET', body=None: {'members': [{'name': 'web1'}]})
    provider = _providers.build_provider({'provider': 'emulator', 'endpoint': 'http://127.0.0.1:8099/', 'pool': 'shop', 'member': 'web1'},
                                         parse_profile({}))
    assert provider.vip == 'shop' and provider.url == 'http://127.0.0.1:8099/api/vips/shop/members/web1'
    with pytest.raises(_providers.ProviderError, match=r"the emulator has no member 'web9' in VIP 'shop'; its members are web1"):
        provider.observe_members(['web1', 'web9'])


def test_http_provider_can_write_without_a_query(monkeypatch):
    sent = []
    monkeypatch.setattr(_providers, 'fetch_json', lambda url, settings, method='GET', body=None: sent.append((method, url, body)))
    provider = _providers.HttpProvider('https://l4/m', None, [], [], _providers.HttpSettings(), None, {'method': 'PUT', 'body': {'x': 1}})
    assert provider.admin_state() is None  # cannot read, so member_admin reports a change every time
    provider.set_admin('drain')
    assert sent == [('PUT', 'https://l4/m', {'x': 1})]
    with pytest.raises(_providers.ProviderError, match='query: needed'):
        provider.observe()
