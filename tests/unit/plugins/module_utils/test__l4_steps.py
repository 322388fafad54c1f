"""The L4 steps for a batch: one wait follows every member, each keeps its own time; guard, claims and drain inputs."""

from __future__ import annotations

import importlib
import ipaddress
import typing as t

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.l4vip.rollout.plugins.module_utils import _guard, _l4_steps, _providers, _session_drain, _sockets
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Capability, Observation
from ansible_collections.l4vip.rollout.tests.unit.fakes import FakeClock

MEMBERS = ['web1', 'web2', 'web3']


class PoolScript(_providers.Provider):
    """A pool provider whose members leave the binding list at the poll given for each; records what it was asked."""

    name = 'scripted'
    capabilities = frozenset(Capability)

    def __init__(self, clock: FakeClock, down_at_poll: dict[str, int]) -> None:
        self.clock, self.down_at_poll = clock, down_at_poll
        self.asked: list[list[str]] = []

    def observe_members(self, members: t.Sequence[str]) -> dict[str, Observation]:
        poll = len(self.asked)
        self.asked.append(list(members))
        return {m: Observation(poll < self.down_at_poll.get(m, 10**6), f'{m} poll {poll}') for m in members}


def params(**values: t.Any) -> dict[str, t.Any]:
    """Options as a module or action plugin would see them after validation."""
    result = ArgumentSpecValidator(_l4_steps.member_wait_spec()).validate(dict({'state': 'down'}, **values))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def test_one_wait_follows_the_batch_and_keeps_each_members_own_time():
    clock = FakeClock()
    provider = PoolScript(clock, {'web1': 0, 'web2': 2, 'web3': 5})
    report, polls, elapsed = _l4_steps.follow(provider, MEMBERS, False, timeout=10.0, poll_interval=0.5, clock=clock)
    assert polls == 6 and elapsed == pytest.approx(2.5)
    # A member that got there is not asked about again.
    assert provider.asked == [MEMBERS, ['web2', 'web3'], ['web2', 'web3'], ['web3'], ['web3'], ['web3']]
    start = clock.now - elapsed
    assert [report[m]['ended_at'] - start for m in MEMBERS] == pytest.approx([0.0, 1.0, 2.5])
    assert all(report[m]['reached'] and report[m]['bound'] is False for m in MEMBERS)


def test_a_late_member_is_named_alone_and_the_others_keep_their_result(monkeypatch):
    clock = FakeClock()
    provider = PoolScript(clock, {'web1': 1})
    monkeypatch.setattr(_providers, 'build_provider', lambda *args, **kwargs: provider)
    ctx = _l4_steps.Context(clock=clock)
    with pytest.raises(_l4_steps.StepFailed) as failed:
        _l4_steps.member_wait(params(provider='emulator', endpoint='http://127.0.0.1:1', pool='web', members=['web1', 'web2'],
                                     timeout=1.0, poll_interval=0.25, profile={'interval': 0.2}), ctx)
    message, detail = str(failed.value), failed.value.detail
    assert message.startswith('web2 was not down within 1s; the L4 last said: web2: web2 poll 4'), message
    assert detail['members']['web1']['reached'] and not detail['members']['web2']['reached']
    assert detail['ended_at'] == clock.now


def test_the_timer_waits_once_for_the_whole_batch():
    clock = FakeClock()
    result = _l4_steps.member_wait(params(members=MEMBERS, since=clock.now - 0.1, profile={'interval': 1.0}), _l4_steps.Context(clock=clock))
    assert clock.slept == pytest.approx([1.9])  # the worst case (2 s) less what had gone since `since`
    assert sorted(result['members']) == MEMBERS and all(m['reached'] for m in result['members'].values())


def test_check_mode_asks_nothing_and_reaches_nothing():
    clock = FakeClock()
    result = _l4_steps.member_wait(params(members=MEMBERS), _l4_steps.Context(check_mode=True, clock=clock))
    assert clock.slept == [] and result['waited'] is False
    assert {m['reached'] for m in result['members'].values()} == {False}


def test_a_provider_that_follows_one_member_refuses_a_batch():
    with pytest.raises(_l4_steps.StepFailed, match=r"members: provider 'http' follows one member per task"):
        _l4_steps.member_wait(params(provider='http', endpoint='https://l4/x', query='state', members=['web1', 'web2']),
                              _l4_steps.Context(clock=FakeClock()))


def test_steps_refuse_a_provider_without_the_capability_naming_the_alternatives(tmp_path):
    validated = ArgumentSpecValidator(_l4_steps.member_admin_spec()).validate({'state': 'disabled', 'provider': 'timer', 'member': 'web1'})
    with pytest.raises(_l4_steps.StepFailed) as refused:
        _l4_steps.member_admin(validated.validated_parameters, _l4_steps.Context())
    assert str(refused.value) == "provider: 'timer' cannot set an admin state; use one of emulator, haproxy, http, ipvs, aws_elbv2"
    validated = ArgumentSpecValidator(_l4_steps.member_admin_spec()).validate(
        {'state': 'disabled', 'provider': 'http', 'endpoint': 'https://l4/x', 'admin_request': {}, 'members': ['web1', 'web2']})
    with pytest.raises(_l4_steps.StepFailed) as refused:
        _l4_steps.member_admin(validated.validated_parameters, _l4_steps.Context())
    assert str(refused.value) == "members: provider 'http' follows one member per task; give member instead, or use one of emulator, haproxy, ipvs, aws_elbv2"


def drain_params(**values: t.Any) -> dict[str, t.Any]:
    validated = ArgumentSpecValidator(_session_drain.session_drain_spec()).validate(values)
    assert not validated.error_messages, validated.error_messages
    return validated.validated_parameters


def test_drain_without_a_port_needs_a_provider_that_counts_the_l4s_sessions():
    with pytest.raises(_l4_steps.StepFailed, match=r"port: needed to count the server's connections, as provider 'timer' cannot"):
        _session_drain.session_drain(drain_params(), _l4_steps.Context())


def test_a_failed_stop_command_is_fine_once_the_port_is_closed_and_named_when_it_still_listens(monkeypatch):
    ran = []
    ctx = _l4_steps.Context(clock=FakeClock(), run_command=lambda argv: ran.append(argv) or (1, '', 'nginx: no pid'))
    monkeypatch.setattr(_session_drain, '_listening', lambda port, address: True)
    with pytest.raises(_l4_steps.StepFailed, match=r"stop_command \['nginx', '-s', 'quit'\] exited 1 and port 8080 still listens 10s later: nginx: no pid"):
        _session_drain.session_drain(drain_params(port=8080, stop_command=['nginx', '-s', 'quit'], timeout=0), ctx)
    assert ran == [['nginx', '-s', 'quit']]
    monkeypatch.setattr(_session_drain, '_listening', lambda port, address: False)
    monkeypatch.setattr(_session_drain._sockets, 'read_sockets', lambda local_port: [])  # the service port's lines alone
    result = _session_drain.session_drain(drain_params(port=8080, stop_command=['nginx', '-s', 'quit'], timeout=0), ctx)
    assert result['drained'] and result['changed'] and result['stopped']['rc'] == 1


@pytest.mark.parametrize(('values', 'message'), [
    ({'at_timeout': 'force'}, r"at_timeout: 'force' needs port and force_command .* got force_command None with port 8080"),
    ({'force_command': ['nginx', '-s', 'stop']}, r"force_command: runs only with at_timeout 'force', got at_timeout 'fail'"),
])
def test_a_forced_drain_without_what_it_needs_is_refused_before_anything_runs(values, message):
    ran = []
    ctx = _l4_steps.Context(clock=FakeClock(), run_command=lambda argv: ran.append(argv) or (0, '', ''))
    with pytest.raises(_l4_steps.StepFailed, match=message):
        _session_drain.session_drain(drain_params(port=8080, stop_command=['nginx', '-s', 'quit'], **values), ctx)
    assert ran == []


def test_at_the_deadline_force_runs_the_hard_stop_and_returns_exactly_what_it_cut(monkeypatch):
    held = _sockets.Socket(ipaddress.ip_address('10.0.0.11'), 8080, ipaddress.ip_address('198.51.100.9'), 40022, 'ESTABLISHED', 1, 'ipv4')
    ran: list[list[str]] = []
    ctx = _l4_steps.Context(clock=FakeClock(), run_command=lambda argv: ran.append(argv) or (0, '', ''))
    # The held session stays through the graceful stop and the timeout; the hard stop closes it.
    monkeypatch.setattr(_session_drain._sockets, 'read_sockets', lambda local_port: [] if ['nginx', '-s', 'stop'] in ran else [held])
    result = _session_drain.session_drain(drain_params(port=8080, stop_command=['nginx', '-s', 'quit'], timeout=2, at_timeout='force',
                                                       force_command=['nginx', '-s', 'stop'], poll_interval=0.5), ctx)
    assert ran == [['nginx', '-s', 'quit'], ['nginx', '-s', 'stop']]
    assert result['forced'] and result['drained'] and result['changed'] and result['sessions'] == []
    assert result['cut_sessions'] == [{'peer': '198.51.100.9:40022', 'local': '10.0.0.11:8080', 'state': 'ESTABLISHED', 'open_for': 2.0}]
    assert '198.51.100.9:40022' in ctx.warnings[0]


# --- every key a step returns is documented in its module's RETURN, and every documented key is returned -----------

# What Ansible itself adds or every module may return: not in RETURN.
COMMON_KEYS = {'changed', 'failed', 'diff', 'warnings', 'invocation'}


class Fake(_providers.Provider):
    """A provider that can do everything, for the steps' results: every member bound, enabled, no sessions."""

    name = 'scripted'
    capabilities = frozenset(Capability)

    def __init__(self, state: str = 'enabled', reachable: bool = True) -> None:
        self.state, self.reachable = state, reachable

    def observe(self) -> Observation:
        if not self.reachable:
            raise _providers.L4Unreachable('http://l4', 'refused')
        return Observation(True, 'up', self.state, 1_700_000_000.0)

    def with_member(self, member: str) -> Fake:
        return self

    def admin_state(self) -> str:
        return self.state

    def set_admin(self, state: str) -> None:
        self.state = state

    def session_counts(self, members: t.Sequence[str]) -> dict[str, int]:
        return dict.fromkeys(members, 0)

    def pool_bindings(self) -> dict[str, bool]:
        return dict.fromkeys(MEMBERS, True)


L4 = {'provider': 'emulator', 'endpoint': 'http://l4', 'pool': 'web', 'member': 'web1'}


def run_step(step, spec, values, check_mode=False, diff=False, **ctx_values) -> dict[str, t.Any]:
    """The step's result, or on StepFailed the detail a failed task returns (with its msg)."""
    validated = ArgumentSpecValidator(spec()).validate(values)
    assert not validated.error_messages, validated.error_messages
    try:
        return step(validated.validated_parameters, _l4_steps.Context(check_mode=check_mode, diff=diff, clock=FakeClock(), **ctx_values))
    except _l4_steps.StepFailed as error:
        return dict(error.detail, failed=True, msg=str(error))


def member_wait_results(tmp_path, monkeypatch):
    monkeypatch.setattr(_providers, 'build_provider', lambda *args, **kwargs: Fake())
    wait, spec = _guard.member_wait, _guard.member_wait_spec
    yield run_step(wait, spec, dict(L4, state='up'))
    yield run_step(wait, spec, dict(L4, state='up', members=MEMBERS))
    yield run_step(wait, spec, dict(L4, state='up', release_claims=True, claims_dir=str(tmp_path / 'claims')))
    yield run_step(wait, spec, dict(L4, state='up'), check_mode=True)
    yield run_step(wait, spec, {'state': 'down', 'since': 0.0})
    monkeypatch.setattr(_providers, 'build_provider', lambda *args, **kwargs: Fake(reachable=False))
    yield run_step(wait, spec, dict(L4, state='down', fallback='timer'))


def member_admin_results(tmp_path, monkeypatch):
    monkeypatch.setattr(_providers, 'build_provider', lambda *args, **kwargs: Fake())
    yield run_step(_l4_steps.member_admin, _l4_steps.member_admin_spec, dict(L4, state='disabled'), diff=True)
    yield run_step(_l4_steps.member_admin, _l4_steps.member_admin_spec, dict(L4, state='enabled', members=MEMBERS))


def capacity_guard_results(tmp_path, monkeypatch):
    monkeypatch.setattr(_providers, 'build_provider', lambda *args, **kwargs: Fake())
    claims = {'claims_dir': str(tmp_path / 'claims')}
    elsewhere = dict(OTHER_OWNER, machine='another controller')
    guard, spec = _guard.capacity_guard, _guard.capacity_guard_spec
    yield run_step(guard, spec, dict(L4, min_bound=2, **claims))
    yield run_step(guard, spec, dict(L4, min_bound=2, members=['web2'], **claims))  # refused: web1 is claimed
    yield run_step(guard, spec, dict(L4, min_bound=1, owner=elsewhere, **claims))  # refused: web1 is another's
    yield run_step(guard, spec, dict(L4, min_bound=1, rollout_failed="web2 failed at 'Deploy'", **claims))  # refused after a failure
    yield run_step(guard, spec, dict(L4, leave_out=True, reason='test', **claims))
    yield run_step(guard, spec, dict(L4, list_claims=True, **claims))
    yield run_step(guard, spec, dict(L4, release=True, **claims))
    yield run_step(guard, spec, {'member': 'web1'})  # not checked
    yield run_step(guard, spec, dict(L4, min_bound=1), check_mode=True)


# Another rollout, on a machine where its process may be running: it never proves gone.
OTHER_OWNER = {'controller': 'ctl2', 'pid': 4242, 'start_ticks': 1, 'machine': 'elsewhere', 'started': 1_700_000_000.0, 'job': '17'}


def session_drain_results(tmp_path, monkeypatch):
    monkeypatch.setattr(_providers, 'build_provider', lambda *args, **kwargs: Fake())
    monkeypatch.setattr(_session_drain._sockets, 'read_sockets', lambda local_port: [])  # the service port's lines alone
    quiet = {'run_command': lambda argv: (0, '', '')}
    yield run_step(_session_drain.session_drain, _session_drain.session_drain_spec, {'port': 8080, 'stop_command': ['stop']}, **quiet)
    yield run_step(_session_drain.session_drain, _session_drain.session_drain_spec, dict(L4, members=MEMBERS))
    yield run_step(_session_drain.session_drain, _session_drain.session_drain_spec, {'port': 8080}, check_mode=True)


RESULTS = {'member_wait': member_wait_results, 'member_admin': member_admin_results, 'capacity_guard': capacity_guard_results,
           'session_drain': session_drain_results}


@pytest.mark.parametrize('name', sorted(RESULTS))
def test_every_returned_key_is_documented_and_every_documented_key_returned(tmp_path, monkeypatch, name):
    documented = yaml.safe_load(importlib.import_module(f'ansible_collections.l4vip.rollout.plugins.modules.{name}').RETURN)
    for key, entry in documented.items():
        assert {'description', 'returned', 'type', 'sample'} <= set(entry), f'{name} RETURN {key}: {sorted(entry)}'
    results = list(RESULTS[name](tmp_path, monkeypatch))
    returned = set().union(*results) - COMMON_KEYS
    assert returned - set(documented) == set(), f'{name} returns undocumented keys'
    assert set(documented) - returned == set(), f'{name} documents keys no call returned'
    for key, entry in documented.items():
        if 'contains' not in entry:
            continue
        for result in results:
            if isinstance(result.get(key), dict):
                # A dict of members holds one dict per member; any other holds the keys itself.
                values = list(result[key].values()) if key == 'members' else [result[key]]
                for value in values:
                    assert set(value) == set(entry['contains']), (name, key, sorted(value))


def test_transition_time_prefers_the_l4s_own_time():
    t0 = 1_700_000_000.0
    assert _l4_steps.transition_time({'ended_at': t0 + 2, 'l4_since': t0 + 1.4}, t0) == t0 + 1.4
    # An L4 time before the start is an older transition (e.g. an admin change left health alone).
    assert _l4_steps.transition_time({'ended_at': t0 + 2, 'l4_since': t0 - 50}, t0) == t0 + 2
    assert _l4_steps.transition_time({'ended_at': str(t0 + 2), 'l4_since': None}, t0) == t0 + 2
    assert _l4_steps.transition_time({}, t0) is None and _l4_steps.transition_time(None, t0) is None
