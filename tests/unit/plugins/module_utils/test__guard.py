"""The capacity guard with claims: owners, leases, take-overs, release, and the stores that keep them atomically."""

from __future__ import annotations

import concurrent.futures
import copy
import multiprocessing
import subprocess
import threading
import time
import typing as t

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.l4vip.rollout.plugins.module_utils import _claims, _guard, _l4_steps, _providers
from ansible_collections.l4vip.rollout.tests.unit.fakes import FakeClock

MEMBERS = ['web1', 'web2', 'web3']
NOW = 1_700_000_000.0


@pytest.fixture(name='live_owner')
def fixture_live_owner():
    """Another rollout on this machine: a real process, so that its end can be proved."""
    process = subprocess.Popen(['sleep', '60'])  # pylint: disable=consider-using-with  # killed and waited for below
    try:
        yield process, _claims.Owner.of_process(process.pid, job='17')
    finally:
        process.kill()
        process.wait(5)


def me() -> _claims.Owner:
    return _claims.Owner.of_process(__import__('os').getpid())


def elsewhere(pid: int = 4242) -> _claims.Owner:
    """A rollout on another controller: its process cannot be looked at from here."""
    return _claims.Owner('ctl2', pid, 1, 'another machine', NOW - 100, '')


def guard(tmp_path, owner: _claims.Owner, clock: FakeClock | None = None, check_mode: bool = False, controller_only: bool = False,
          **values: t.Any) -> tuple[dict[str, t.Any], list[str]]:
    """The guard's result (or the failed task's, with its msg) and its warnings; claims in tmp_path/claims, counted from the inventory."""
    validated = ArgumentSpecValidator(_guard.capacity_guard_spec()).validate(
        dict({'pool': 'web', 'pool_members': MEMBERS, 'min_bound': 1, 'claims': True, 'owner': owner.as_dict()}, **values))
    assert not validated.error_messages, validated.error_messages
    ctx = _l4_steps.Context(check_mode=check_mode, clock=clock or FakeClock(NOW),
                            claims=_l4_steps.ClaimsPlace(str(tmp_path / 'claims'), 'controller', controller_only=controller_only))
    try:
        return _guard.capacity_guard(validated.validated_parameters, ctx), ctx.warnings
    except _l4_steps.StepFailed as error:
        return dict(error.detail, failed=True, msg=str(error)), ctx.warnings


def test_a_claimed_member_counts_as_out_and_its_owner_is_named(tmp_path, live_owner):
    _running, other = live_owner
    first, _warnings = guard(tmp_path, other, member='web1')
    assert first['claimed'] == ['web1'] and first['changed'] and first['claims_kept'] == f"directory {tmp_path / 'claims'} on controller"
    # min_bound 2 of 3: web1 out for the other rollout leaves only web3 if web2 goes too.
    refused, _warnings = guard(tmp_path, me(), member='web2', min_bound=2)
    assert refused['failed'] and refused['remaining'] == ['web3'] and refused['claimed_by_others'] == ['web1']
    assert f'claimed by another rollout: web1 (held by {other.describe()}' in refused['msg'], refused['msg']
    assert ', AWX job 17, started ' in refused['msg']


def test_a_member_another_live_rollout_holds_is_refused_and_nothing_is_written(tmp_path, live_owner):
    _running, other = live_owner
    guard(tmp_path, other, member='web1')
    state = (tmp_path / 'claims' / 'web.claims.json').read_text()
    refused, _warnings = guard(tmp_path, me(), member='web1')
    assert refused['failed'] and refused['blocked_by'] == [other.as_dict()]
    assert refused['msg'].startswith(f'capacity guard: claimed by another rollout: web1 (held by {other.describe()}'), refused['msg']
    assert (tmp_path / 'claims' / 'web.claims.json').read_text() == state


def test_a_claim_whose_owner_is_gone_from_this_machine_is_taken_over_with_a_warning(tmp_path, live_owner):
    process, other = live_owner
    guard(tmp_path, other, member='web1')
    process.kill()
    process.wait(5)
    taken, warnings = guard(tmp_path, me(), member='web1')
    assert taken['claimed'] == ['web1'] and taken['taken_over'] == ['web1']
    assert warnings == [f'took over the claim of web1: its owner ({other.describe()}) is gone']


def test_a_claim_from_another_machine_holds_until_its_lease_lapses(tmp_path):
    clock = FakeClock(NOW)
    guard(tmp_path, elsewhere(), clock, member='web1', claim_lease=60)
    clock.advance(59)
    assert guard(tmp_path, me(), clock, member='web1')[0]['failed']
    # Each guard of the owner renews its lease.
    guard(tmp_path, elsewhere(), clock, member='web1', claim_lease=60)
    clock.advance(59)
    assert guard(tmp_path, me(), clock, member='web1')[0]['failed']
    clock.advance(2)
    taken, warnings = guard(tmp_path, me(), clock, member='web1')
    assert taken['taken_over'] == ['web1'] and 'lapsed at 2023-11-14 22:15:19 UTC' in warnings[0], warnings


def test_gone_owners_named_by_the_controller_free_their_claims(tmp_path):
    guard(tmp_path, elsewhere(), member='web1')
    taken, _warnings = guard(tmp_path, me(), member='web1', gone_owners=[elsewhere().key])
    assert taken['taken_over'] == ['web1']


def test_a_member_left_out_after_a_failure_counts_as_out_and_any_rollout_may_take_it(tmp_path):
    guard(tmp_path, elsewhere(), member='web1')
    marked, _warnings = guard(tmp_path, elsewhere(), member='web1', leave_out=True, reason="failed at 'Start the web server'")
    assert marked['left_out'] == ['web1'] and marked['changed']
    # Still out for the count...
    assert guard(tmp_path, me(), member='web2', min_bound=2)[0]['claimed_by_others'] == ['web1']
    # ...and taken over at once by the next rollout that redeploys it.
    taken, warnings = guard(tmp_path, me(), member='web1')
    assert taken['taken_over'] == ['web1'] and warnings[0].endswith("left it out: failed at 'Start the web server'")


def test_list_claims_names_what_earlier_rollouts_left_behind_and_changes_nothing(tmp_path, live_owner):
    _running, other = live_owner
    guard(tmp_path, other, member='web1')
    assert guard(tmp_path, elsewhere(), members=['web2', 'web3'], pool_members=MEMBERS + ['web4'])[0]['claimed'] == ['web2', 'web3']
    guard(tmp_path, elsewhere(), member='web2', leave_out=True, reason='failed at deploy')
    before = sorted((tmp_path / 'claims').iterdir())[0].read_text()
    listed, _warnings = guard(tmp_path, me(), list_claims=True, clock=FakeClock(NOW + 10))
    # web1: a live rollout works on it; web2: left out; web3: held by another machine's rollout, lease running.
    assert listed['left_behind'] == ['web2'] and sorted(listed['claims']) == MEMBERS and not listed['changed']
    assert listed['claims']['web2']['left_out'] == 'failed at deploy' and listed['claims']['web1']['lapsed'] == ''
    lapsed, _warnings = guard(tmp_path, me(), list_claims=True, clock=FakeClock(NOW + 4000))
    assert lapsed['left_behind'] == MEMBERS, 'every lease of 3600 s has run out, unrenewed'
    assert sorted((tmp_path / 'claims').iterdir())[0].read_text() == before


class ReleasingClock(FakeClock):
    """A clock on which, after ``after`` sleeps, a member's claim is released - another member of the rollout bound again."""

    def __init__(self, release: t.Callable[[], t.Any], after: int) -> None:
        super().__init__(NOW)
        self.release, self.after = release, after

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if len(self.slept) == self.after:
            self.release()


def test_a_slot_is_waited_for_until_a_member_of_the_rollout_is_back(tmp_path):
    owner = me()
    assert guard(tmp_path, owner, member='web1', max_out=1)[0]['claimed'] == ['web1']
    clock = ReleasingClock(lambda: guard(tmp_path, owner, member='web1', release=True), after=3)
    taken, _warnings = guard(tmp_path, owner, member='web2', max_out=1, poll_interval=0.5, clock=clock)
    assert taken['claimed'] == ['web2'] and taken['out'] == [] and clock.slept == [0.5, 0.5, 0.5] and taken['slot_wait'] == 1.5


def test_a_member_waiting_for_a_slot_asks_the_l4_only_once_the_claims_leave_one_free(tmp_path, monkeypatch):
    """Waiting members read the claims alone while the rollout's claims fill max_out: the L4's API is not polled by each."""
    asked = []

    class CountsAsks(_providers.EmulatorProvider):
        def pool_bindings(self):
            asked.append(self.settings)
            return dict.fromkeys(MEMBERS, True)

    monkeypatch.setitem(_providers.PROVIDER_CLASSES, 'emulator', CountsAsks)
    l4 = {'provider': 'emulator', 'endpoint': 'http://l4', 'pool_members': None, 'claims_dir': str(tmp_path / 'claims')}
    owner = me()
    assert guard(tmp_path, owner, member='web1', max_out=1, **l4)[0]['claimed'] == ['web1'] and len(asked) == 1
    clock = ReleasingClock(lambda: guard(tmp_path, owner, member='web1', release=True, **l4), after=3)
    taken, _warnings = guard(tmp_path, owner, member='web2', max_out=1, poll_interval=0.5, clock=clock, **l4)
    assert taken['claimed'] == ['web2'] and clock.slept == [0.5, 0.5, 0.5]
    # Its first look and the one after web1's release; not the two polls while web1's claim filled the one slot.
    assert len(asked) == 3, asked


def test_no_slot_within_the_timeout_fails_naming_what_is_out(tmp_path):
    owner = me()
    guard(tmp_path, owner, members=['web1'], max_out=2, pool_members=MEMBERS + ['web4'])
    guard(tmp_path, elsewhere(), members=['web3'], pool_members=MEMBERS + ['web4'])
    clock = FakeClock(NOW)
    full, _warnings = guard(tmp_path, owner, member='web2', max_out=2, slot_timeout=2, poll_interval=0.5, clock=clock,
                            pool_members=MEMBERS + ['web4'])
    assert full['failed'] and full['msg'] == "capacity guard: no slot in pool 'web' within 2 s: out web1, web3, max_out 2, leaving web2"
    assert sum(clock.slept) == 2 and 'web2' not in guard(tmp_path, owner, list_claims=True)[0]['claims']


def test_a_member_waiting_for_a_slot_goes_no_further_once_the_rollout_left_one_out(tmp_path):
    owner = me()
    guard(tmp_path, owner, member='web1', max_out=1)
    clock = ReleasingClock(lambda: guard(tmp_path, owner, member='web1', leave_out=True, reason="failed at 'Deploy'"), after=2)
    refused, _warnings = guard(tmp_path, owner, member='web2', max_out=1, poll_interval=0.5, clock=clock)
    assert refused['failed'] and len(clock.slept) == 2
    assert refused['msg'] == "capacity guard: no member goes out after a failure in this rollout: web1 was left out (failed at 'Deploy')"
    assert refused['after_failure'] == "web1 was left out (failed at 'Deploy')"  # the rescue does not take it for a failure of its own


def test_after_a_failure_in_the_rollout_no_member_goes_out(tmp_path):
    refused, _warnings = guard(tmp_path, me(), member='web3', max_out=2, rollout_failed="web2 failed at 'Start the web server'")
    assert refused['failed'] and refused['msg'].endswith("after a failure in this rollout: web2 failed at 'Start the web server'")
    assert refused['after_failure'] == "web2 failed at 'Start the web server'"
    assert guard(tmp_path, me(), list_claims=True)[0]['claims'] == {}


def test_release_frees_only_the_rollouts_own_claims_unless_forced(tmp_path):
    guard(tmp_path, elsewhere(), member='web1')
    guard(tmp_path, me(), member='web2')
    kept, warnings = guard(tmp_path, me(), members=['web1', 'web2'], release=True)
    assert kept['released'] == ['web2'] and 'another rollout (ctl2) holds it' in warnings[0]
    forced, _warnings = guard(tmp_path, me(), members=['web1'], release=True, force=True)
    assert forced['released'] == ['web1'] and forced['changed']
    assert guard(tmp_path, me(), members=['web1'], release=True)[0]['changed'] is False


def test_a_rerun_of_the_same_rollout_renews_its_claims_without_a_change(tmp_path):
    owner = me()
    assert guard(tmp_path, owner, members=['web1', 'web2'])[0]['claimed'] == ['web1', 'web2']
    again, _warnings = guard(tmp_path, owner, members=['web1', 'web2'])
    assert again['changed'] is False and again['claimed'] == [] and again['allowed']


def test_check_mode_judges_with_the_claims_and_writes_nothing(tmp_path):
    predicted, _warnings = guard(tmp_path, me(), check_mode=True, member='web1')
    assert predicted['claimed'] == ['web1'] and not (tmp_path / 'claims').exists()
    guard(tmp_path, elsewhere(), member='web1')
    before = sorted((tmp_path / 'claims').iterdir())
    assert guard(tmp_path, me(), check_mode=True, member='web1')[0]['failed']
    released, _warnings = guard(tmp_path, me(), check_mode=True, member='web1', release=True, force=True)
    assert released['released'] == ['web1'] and sorted((tmp_path / 'claims').iterdir()) == before


def test_claims_kept_on_the_controller_alone_are_said_once_per_rollout(tmp_path):
    owner = me()
    _result, warnings = guard(tmp_path, owner, controller_only=True, member='web1')
    assert len(warnings) == 1 and 'only this controller' in warnings[0] and 'another AWX job' in warnings[0]
    guard(tmp_path, owner, member='web1', release=True)
    assert guard(tmp_path, owner, controller_only=True, member='web2')[1] == []


def test_claims_the_l4_holds_are_seen_by_every_controller_and_need_no_warning(tmp_path, monkeypatch):
    kept = {'version': 0, 'claims': {}}

    def write(pool, version, claims):
        kept.update(version=version + 1, claims=claims)
        return True

    class HoldsClaims(_providers.EmulatorProvider):
        def pool_bindings(self):
            return dict.fromkeys(MEMBERS, True)

        def claims_store(self):
            return _claims.CompareAndSetStore('the L4 (a test double)', lambda pool: (kept['version'], kept['claims']), write)

    monkeypatch.setitem(_providers.PROVIDER_CLASSES, 'emulator', HoldsClaims)
    result, warnings = guard(tmp_path, me(), controller_only=True, member='web1', provider='emulator', endpoint='http://l4')
    assert result['claims_kept'] == 'the L4 (a test double)' and list(kept['claims']['claims']) == ['web1']
    assert warnings == [] and not (tmp_path / 'claims').exists()


@pytest.mark.parametrize(('values', 'said'), [
    ({'claim_lease': 0}, 'claim_lease: must be a number of seconds above 0, got 0.0'),
    ({'force': True}, 'force: only with release'),
    ({'leave_out': True, 'member': None, 'leaving': []}, 'leave_out: needs the members'),
])
def test_bad_options_are_refused_naming_them(tmp_path, values, said):
    result, _warnings = guard(tmp_path, me(), **dict({'member': 'web1'}, **values))
    assert result['failed'] and said in result['msg'] and not (tmp_path / 'claims').exists()


# --- the stores ----------------------------------------------------------------------------------

def test_a_compare_and_set_store_decides_again_when_the_claims_changed_under_it():
    """The L4 holds the claims: a write against an older version is refused and the guard reads and decides again."""
    kept = {'version': 0, 'claims': {}}
    sneak = [True]

    def read(pool):
        return kept['version'], kept['claims']

    def write(pool, version, claims):
        if sneak.pop() if sneak else False:  # another rollout claims web1 between this read and this write
            other = _claims.PoolClaims(None)
            other.claim(elsewhere(), ['web1'], NOW, 600)
            kept.update(version=kept['version'] + 1, claims=other.document())
        if version != kept['version']:
            return False
        kept.update(version=version + 1, claims=claims)
        return True

    store = _claims.CompareAndSetStore('the L4', read, write)
    decisions = []

    def decide(claims: _claims.PoolClaims) -> bool:
        decisions.append(sorted(claims.claims))
        if 'web1' in claims.held_by_others(me(), NOW, _claims.this_machine()):
            return False
        claims.claim(me(), ['web1'], NOW, 600)
        return True

    store.transact('web', decide)
    assert decisions == [[], ['web1']] and kept['version'] == 1 and kept['claims']['claims']['web1']['owner'] == elsewhere().key


def test_a_compare_and_set_store_backs_off_at_random_and_gives_up_naming_the_pool_and_the_tries():
    """A writer that never wins: every try after the first pauses a random while that grows, then the store says why it gave up."""
    pauses: list[float] = []
    store = _claims.CompareAndSetStore('the L4', lambda pool: (0, {}), lambda pool, version, claims: False, sleep=pauses.append)
    with pytest.raises(_claims.ClaimError, match=r"claims of pool 'web' in the L4 changed under every one of 16 attempts"):
        store.transact('web', lambda claims: True)
    limits = [min(_claims.BACKOFF_MAX, _claims.BACKOFF * 2 ** attempt) for attempt in range(1, _claims.CAS_ATTEMPTS)]
    assert len(pauses) == _claims.CAS_ATTEMPTS - 1 and all(0 <= p <= limit for p, limit in zip(pauses, limits))
    assert len(set(pauses)) > 1  # random, or the same writers collide again on every try


def test_slots_of_a_big_pool_claiming_at_once_through_one_l4_all_get_their_claims():
    """32 members claim at once from threads against a versioned document, as the slots of a rollout of 64 do at its start:
    every claim is stored, none is lost to another writer's version. All read the first version together, so 31 lose
    their first write; without a random pause between tries the losers keep colliding."""
    lock = threading.Lock()
    kept = {'version': 0, 'claims': {}}
    first_reads = threading.Barrier(32, timeout=10)
    local = threading.local()

    def read(pool):
        if not getattr(local, 'read_once', False):
            local.read_once = True
            first_reads.wait()
        with lock:
            answer = kept['version'], copy.deepcopy(kept['claims'])
        time.sleep(0.005)  # the answer's way back over the network: other writers run meanwhile
        return answer

    def write(pool, version, claims):
        with lock:
            if version != kept['version']:
                return False
            kept.update(version=version + 1, claims=claims)
            return True

    def claim(member: str) -> None:
        store = _claims.CompareAndSetStore('the L4', read, write)
        owner = _claims.Owner.from_dict(me().as_dict())
        store.transact('web', lambda claims: bool(claims.claim(owner, [member], NOW, 600)))

    members = [f'web{n}' for n in range(32)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(claim, members))
    assert sorted(kept['claims']['claims']) == sorted(members) and kept['version'] == 32


def _race(directory: str, member: str, results: t.Any) -> None:
    clock = FakeClock(NOW)
    validated = ArgumentSpecValidator(_guard.capacity_guard_spec()).validate(
        {'pool': 'web', 'pool_members': MEMBERS, 'min_bound': 2, 'member': member, 'claims': True, 'owner': elsewhere(pid=len(member)).as_dict()
         | {'pid': int(member[3:])}})
    ctx = _l4_steps.Context(clock=clock, claims=_l4_steps.ClaimsPlace(directory, 'lb'))
    try:
        _guard.capacity_guard(validated.validated_parameters, ctx)
        results.put((member, True))
    except _l4_steps.StepFailed:
        results.put((member, False))


def test_rollouts_racing_on_one_directory_never_both_win(tmp_path):
    """Three processes at once, min_bound 2 of 3: exactly one may take its member out, whoever it is."""
    context = multiprocessing.get_context('fork')
    for attempt in range(5):
        directory = str(tmp_path / f'claims-{attempt}')
        results = context.Queue()
        racers = [context.Process(target=_race, args=(directory, member, results)) for member in MEMBERS]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(10)
        outcomes = dict(results.get(timeout=5) for _racer in racers)
        assert sorted(outcomes.values()) == [False, False, True], outcomes


# --- the wait for up frees the slot -------------------------------------------------------------

class BoundAtPoll(_providers.Provider):
    """A pool provider whose members are bound again from the poll given for each (never when not given)."""

    name = 'scripted'
    capabilities = frozenset(_providers.Capability)

    def __init__(self, bound_at_poll: dict[str, int]) -> None:
        self.bound_at_poll, self.polls = bound_at_poll, 0

    def observe_members(self, members: t.Sequence[str]) -> dict[str, _providers.Observation]:
        self.polls += 1
        return {m: _providers.Observation(self.polls > self.bound_at_poll.get(m, 10**6), f'{m} poll {self.polls}') for m in members}


def wait_up(tmp_path, monkeypatch, bound_at_poll: dict[str, int], **values: t.Any) -> tuple[dict[str, t.Any], bool]:
    """member_wait for up, claims in tmp_path/claims-dir: its result (or the failure's detail and msg), and whether it failed."""
    monkeypatch.setattr(_providers, 'build_provider', lambda *args, **kwargs: BoundAtPoll(bound_at_poll))
    validated = ArgumentSpecValidator(_guard.member_wait_spec()).validate(dict(
        {'state': 'up', 'provider': 'emulator', 'endpoint': 'http://127.0.0.1:1', 'pool': 'web', 'claims_dir': str(tmp_path / 'claims-dir'),
         'owner': me().as_dict(), 'timeout': 1.0, 'poll_interval': 0.25, 'profile': {'interval': 0.2}}, **values))
    assert not validated.error_messages, validated.error_messages
    try:
        return _guard.member_wait(validated.validated_parameters, _l4_steps.Context(clock=FakeClock(NOW))), False
    except _l4_steps.StepFailed as error:
        return dict(error.detail, msg=str(error)), True


def claimed_in(tmp_path) -> list[str]:
    return sorted(guard(tmp_path, me(), list_claims=True, claims_dir=str(tmp_path / 'claims-dir'))[0]['claims'])


def test_the_wait_for_up_releases_the_claim_of_each_member_bound_again_and_a_late_one_keeps_its_own(tmp_path, monkeypatch):
    guard(tmp_path, me(), members=['web1', 'web2'], claims_dir=str(tmp_path / 'claims-dir'))
    assert claimed_in(tmp_path) == ['web1', 'web2']
    late, failed = wait_up(tmp_path, monkeypatch, {'web1': 1}, members=['web1', 'web2'], release_claims=True)
    assert failed and late['msg'].startswith('web2 was not up within 1s; the L4 last said: web2: web2 poll'), late['msg']
    assert late['released'] == ['web1'] and claimed_in(tmp_path) == ['web2']
    back, failed = wait_up(tmp_path, monkeypatch, {'web2': 2}, member='web2', release_claims=True)
    assert not failed and back['released'] == ['web2'] and back['changed'] and claimed_in(tmp_path) == []


def test_the_wait_releases_nothing_unless_asked_and_only_when_waiting_for_up(tmp_path, monkeypatch):
    guard(tmp_path, me(), member='web1', claims_dir=str(tmp_path / 'claims-dir'))
    plain, failed = wait_up(tmp_path, monkeypatch, {'web1': 0}, member='web1')
    assert not failed and 'released' not in plain and not plain['changed'] and claimed_in(tmp_path) == ['web1']
    refused, failed = wait_up(tmp_path, monkeypatch, {'web1': 0}, member='web1', state='down', release_claims=True)
    assert failed and refused['msg'] == "release_claims: only when waiting for state up (the member bound again), got state 'down'"
    assert claimed_in(tmp_path) == ['web1']
