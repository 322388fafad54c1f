"""The L4 steps for a batch: one wait follows every member, each keeps its own time; guard, claims and drain inputs."""

from __future__ import annotations

import ipaddress
import typing as t

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.l4vip.rollout.plugins.module_utils import _l4_steps, _providers, _sockets
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Observation
from ansible_collections.l4vip.rollout.tests.unit.fakes import FakeClock

MEMBERS = ['web1', 'web2', 'web3']


class PoolScript(_providers.Provider):
    """A pool provider whose members leave the binding list at the poll given for each; records what it was asked."""

    name = 'scripted'
    batches = True

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
    message, details = str(failed.value), failed.value.details
    assert message.startswith('web2 was not down within 1s; the L4 last said: web2: web2 poll 4'), message
    assert details['members']['web1']['reached'] and not details['members']['web2']['reached']
    assert details['ended_at'] == clock.now


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


def guard(tmp_path, **values: t.Any) -> dict[str, t.Any]:
    validated = ArgumentSpecValidator(_l4_steps.capacity_guard_spec()).validate(
        dict({'pool': 'web', 'pool_members': MEMBERS, 'min_bound': 2, 'claims': True}, **values))
    assert not validated.error_messages, validated.error_messages
    return _l4_steps.capacity_guard(validated.validated_parameters, _l4_steps.Context(claims_dir=str(tmp_path / 'claims')))


def test_without_an_l4_to_list_the_pool_the_inventory_and_the_claims_decide(tmp_path):
    first = guard(tmp_path, members=['web1'])
    assert first['checked'] and first['changed'] and first['claimed'] == ['web1'] and first['remaining'] == ['web2', 'web3']
    # A second rollout of the same pool, before anything is down: web1's claim counts as out.
    with pytest.raises(_l4_steps.StepFailed, match='claimed by another rollout: web1') as refused:
        guard(tmp_path, members=['web2'])
    assert refused.value.details['remaining'] == ['web3']
    # The first rollout's re-run claims nothing new; its release frees web1 for the other.
    assert guard(tmp_path, members=['web1'])['changed'] is False
    assert guard(tmp_path, members=['web1'], release=True)['released'] == ['web1']
    assert guard(tmp_path, members=['web2'])['claimed'] == ['web2']


def test_without_pool_members_a_timer_guard_warns_and_does_not_judge(tmp_path):
    validated = ArgumentSpecValidator(_l4_steps.capacity_guard_spec()).validate({'member': 'web1', 'claims': True})
    ctx = _l4_steps.Context(claims_dir=str(tmp_path / 'claims'))
    result = _l4_steps.capacity_guard(validated.validated_parameters, ctx)
    assert result['checked'] is False and 'cannot list the pool' in ctx.warnings[0]
    assert not (tmp_path / 'claims').exists()


def drain_params(**values: t.Any) -> dict[str, t.Any]:
    validated = ArgumentSpecValidator(_l4_steps.session_drain_spec()).validate(values)
    assert not validated.error_messages, validated.error_messages
    return validated.validated_parameters


def test_drain_without_a_port_needs_a_provider_that_counts_the_l4s_sessions():
    with pytest.raises(_l4_steps.StepFailed, match=r"port: needed to count the server's sessions, as provider 'timer' cannot"):
        _l4_steps.session_drain(drain_params(), _l4_steps.Context())


def test_a_failed_stop_command_is_fine_once_the_port_is_closed_and_named_when_it_still_listens(monkeypatch):
    ran = []
    ctx = _l4_steps.Context(clock=FakeClock(), run_command=lambda argv: ran.append(argv) or (1, '', 'nginx: no pid'))
    monkeypatch.setattr(_l4_steps, '_listening', lambda port, address: True)
    with pytest.raises(_l4_steps.StepFailed, match=r"stop_command \['nginx', '-s', 'quit'\] exited 1 and port 8080 still listens 10s later: nginx: no pid"):
        _l4_steps.session_drain(drain_params(port=8080, stop_command=['nginx', '-s', 'quit'], timeout=0), ctx)
    assert ran == [['nginx', '-s', 'quit']]
    monkeypatch.setattr(_l4_steps, '_listening', lambda port, address: False)
    monkeypatch.setattr(_l4_steps._sockets, 'read_sockets', lambda: [])
    result = _l4_steps.session_drain(drain_params(port=8080, stop_command=['nginx', '-s', 'quit'], timeout=0), ctx)
    assert result['drained'] and result['changed'] and result['stopped']['rc'] == 1


@pytest.mark.parametrize(('values', 'message'), [
    ({'at_timeout': 'force'}, r"at_timeout: 'force' needs port and force_command .* got force_command None with port 8080"),
    ({'force_command': ['nginx', '-s', 'stop']}, r"force_command: runs only with at_timeout 'force', got at_timeout 'fail'"),
])
def test_a_forced_drain_without_what_it_needs_is_refused_before_anything_runs(values, message):
    ran = []
    ctx = _l4_steps.Context(clock=FakeClock(), run_command=lambda argv: ran.append(argv) or (0, '', ''))
    with pytest.raises(_l4_steps.StepFailed, match=message):
        _l4_steps.session_drain(drain_params(port=8080, stop_command=['nginx', '-s', 'quit'], **values), ctx)
    assert ran == []


def test_at_the_deadline_force_runs_the_hard_stop_and_returns_exactly_what_it_cut(monkeypatch):
    held = _sockets.Socket(ipaddress.ip_address('10.0.0.11'), 8080, ipaddress.ip_address('198.51.100.9'), 40022, 'ESTABLISHED', 1, 'ipv4')
    ran: list[list[str]] = []
    ctx = _l4_steps.Context(clock=FakeClock(), run_command=lambda argv: ran.append(argv) or (0, '', ''))
    # The held session stays through the graceful stop and the timeout; the hard stop closes it.
    monkeypatch.setattr(_l4_steps._sockets, 'read_sockets', lambda: [] if ['nginx', '-s', 'stop'] in ran else [held])
    result = _l4_steps.session_drain(drain_params(port=8080, stop_command=['nginx', '-s', 'quit'], timeout=2, at_timeout='force',
                                                  force_command=['nginx', '-s', 'stop'], poll_interval=0.5), ctx)
    assert ran == [['nginx', '-s', 'quit'], ['nginx', '-s', 'stop']]
    assert result['forced'] and result['drained'] and result['changed'] and result['sessions'] == []
    assert result['cut_sessions'] == [{'peer': '198.51.100.9:40022', 'local': '10.0.0.11:8080', 'state': 'ESTABLISHED', 'open_for': 2.0}]
    assert '198.51.100.9:40022' in ctx.warnings[0]
