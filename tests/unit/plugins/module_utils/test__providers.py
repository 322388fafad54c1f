from __future__ import annotations

import datetime

import pytest
import yaml

from ansible_collections.l4vip.rollout.plugins.doc_fragments.provider import ModuleDocFragment
from ansible_collections.l4vip.rollout.plugins.module_utils import _l4_steps, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Observation
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


def test_timer_provider_cannot_observe_or_write():
    provider = _providers.build_provider({'provider': 'timer'}, parse_profile({}))
    with pytest.raises(_providers.ProviderError, match='cannot observe'):
        provider.observe()
    with pytest.raises(_providers.ProviderError, match='use one of emulator, haproxy, http'):
        provider.set_admin('disabled')


def test_http_provider_can_write_without_a_query(monkeypatch):
    sent = []
    monkeypatch.setattr(_providers, 'fetch_json', lambda url, settings, method='GET', body=None: sent.append((method, url, body)))
    provider = _providers.HttpProvider('https://l4/m', None, [], [], _providers.HttpSettings(), None, {'method': 'PUT', 'body': {'x': 1}})
    assert provider.admin_state() is None  # cannot read, so member_admin reports a change every time
    provider.set_admin('drain')
    assert sent == [('PUT', 'https://l4/m', {'x': 1})]
    with pytest.raises(_providers.ProviderError, match='query: needed'):
        provider.observe()
