# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The capacity guard step: may the batch leave the pool, and which rollout works on which member.

Internal to the l4vip.rollout collection; not a public API.

The count of bound members is the L4's (``_capacity.judge``); the claims (``_claims``) add the
members other rollouts are taking out and keep one rollout per member. Claims live, in this order,
in ``claims_dir`` when given, with the L4 where its provider can hold them, and else in a directory
of the host the guard runs on - which, when that host is the controller, only its own rollouts see.
"""

from __future__ import annotations

import math
import os
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _capacity, _claims, _l4_steps, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._l4_steps import Context, StepFailed, build, checked_profile, provider_class
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Capability
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import poll_until

CONTROLLER_ONLY = ("claims of pool {pool!r} are kept in {where}, which only this controller's rollouts see: a rollout of the same "
                   "VIP from another controller, another AWX job or another ANSIBLE_HOME does not see them and can take members out "
                   "at the same time as this one. Run the L4 steps on the LB host (the role's _l4_host), or give claims_dir on "
                   "storage every controller shares")


def capacity_guard_spec() -> dict[str, t.Any]:
    spec = _providers.provider_argument_spec()
    spec.update(
        leaving=dict(type='list', elements='str'),
        min_bound=dict(type='int', default=1),
        pool_members=dict(type='list', elements='str'),
        claims=dict(type='bool', default=False),
        claims_dir=dict(type='path'),
        claim_lease=dict(type='float', default=3600.0, aliases=['claim_ttl']),
        release=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
        leave_out=dict(type='bool', default=False),
        list_claims=dict(type='bool', default=False),
        max_out=dict(type='int'),
        slot_timeout=dict(type='float'),
        rollout_failed=dict(type='str'),
        reason=dict(type='str', default=''),
        owner=dict(type='dict'),
        gone_owners=dict(type='list', elements='str', default=[]),
    )
    return spec


MUTUALLY_EXCLUSIVE = [('release', 'leave_out', 'list_claims')]


def capacity_guard(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    """Judge whether the batch may leave the pool and claim it (with claims); or release or leave out the batch's claims.

    ``changed`` is whether a member was claimed anew, released or marked left out (in check mode: would be); renewing
    a claim the rollout already holds is no change.
    """
    profile = checked_profile(params)
    leaving = params['leaving'] if params['leaving'] is not None else [m for m in (params['members'] or [params['member']]) if m]
    _check_options(params, leaving)
    pool = params['pool'] or ''
    store, only_here = _store(params, ctx, profile)
    try:
        if params['list_claims']:
            return _list(t.cast(_claims.Store, store), pool, params, ctx)
        owner = _owner(params) if store else None
        if params['release'] or params['leave_out']:
            return _settle(t.cast(_claims.Store, store), t.cast(_claims.Owner, owner), pool, leaving, params, ctx)
        return _judge(store, owner, pool, leaving, params, ctx, profile, only_here)
    except (_providers.ProviderError, _capacity.CapacityError, _claims.ClaimError) as error:
        raise StepFailed(str(error), leaving=leaving) from None
    except OSError as error:
        raise StepFailed(f'claims_dir: {error}', leaving=leaving) from None


def member_wait_spec() -> dict[str, t.Any]:
    """member_wait's options, with the claims of the members it follows up: released once the L4 binds them."""
    spec = _l4_steps.member_wait_spec()
    spec.update(release_claims=dict(type='bool', default=False), claims_dir=dict(type='path'), owner=dict(type='dict'))
    return spec


def member_wait(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    """Wait for the L4; with ``release_claims``, the claim of each member it has bound again is released in the same step,
    so the member's slot is free the moment it is back - also when another member of the batch is late."""
    if not params['release_claims']:
        return _l4_steps.member_wait(params, ctx)
    if params['state'] != 'up':
        raise StepFailed(f"release_claims: only when waiting for state up (the member bound again), got state {params['state']!r}")
    try:
        result = _l4_steps.member_wait(params, ctx)
    except StepFailed as error:
        try:
            error.detail.update(_release_back(params, ctx, error.detail.get('members') or {}))
        except StepFailed as also:
            raise StepFailed(f'{error}; {also}', **error.detail) from None
        raise
    return dict(result, **_release_back(params, ctx, result['members']))


def _release_back(params: t.Mapping[str, t.Any], ctx: Context, seen: t.Mapping[str, t.Mapping[str, t.Any]]) -> dict[str, t.Any]:
    back = [member for member, what in seen.items() if what['reached']]
    if not back:
        return dict(released=[])
    settle = dict(params, claims=True, release=True, leave_out=False, list_claims=False, force=False, reason='')
    store, _only_here = _store(settle, ctx, checked_profile(params))
    try:
        released = _settle(t.cast(_claims.Store, store), _owner(params), params['pool'] or '', back, settle, ctx)
    except (_providers.ProviderError, _claims.ClaimError) as error:
        raise StepFailed(f'the claims of {", ".join(back)} were not released: {error}', released=[]) from None
    except OSError as error:
        raise StepFailed(f'claims_dir: {error}', released=[]) from None
    return dict(changed=released['changed'], released=released.get('released', []))


def _refused_after(earlier: str, leaving: list[str]) -> StepFailed:
    """The refusal of a member for an earlier failure of its rollout; ``after_failure`` tells the rescue it is not one of its own."""
    return StepFailed(f"capacity guard: no member goes out after a failure in this rollout: {earlier}", leaving=leaving,
                      after_failure=earlier)


def _check_options(params: t.Mapping[str, t.Any], leaving: list[str]) -> None:
    try:
        _capacity.check_min_bound(params['min_bound'])
        _capacity.check_max_out(params['max_out'])
    except _capacity.CapacityError as error:
        raise StepFailed(str(error)) from None
    for option in ('claim_lease', 'slot_timeout'):
        if params[option] is not None and not (math.isfinite(params[option]) and params[option] > 0):
            raise StepFailed(f"{option}: must be a number of seconds above 0, got {params[option]!r}")
    if params['rollout_failed']:
        # Slots let members run on after one failed; none may start after it.
        raise _refused_after(params['rollout_failed'], leaving)
    for option in ('release', 'leave_out'):
        if params[option] and not leaving:
            raise StepFailed(f'{option}: needs the members whose claims to settle (leaving, members or member)')
    if params['force'] and not params['release']:
        raise StepFailed('force: only with release (release the claims whichever rollout holds them)')


def _store(params: t.Mapping[str, t.Any], ctx: Context, profile: t.Any) -> tuple[_claims.Store | None, bool]:
    """Where the claims live (None when the guard only counts), and whether only this controller's rollouts see them."""
    if not (params['claims'] or params['claims_dir'] or params['release'] or params['leave_out'] or params['list_claims']):
        return None, False
    if params['claims_dir']:
        return _claims.DirectoryStore(params['claims_dir'], ctx.claims.host), False
    if provider_class(dict(params, members=None)).can(Capability.CLAIMS):
        return build(dict(params, members=None), profile, Capability.CLAIMS, clock=ctx.clock).claims_store(), False
    return _claims.DirectoryStore(ctx.claims.directory, ctx.claims.host), ctx.claims.controller_only


def _owner(params: t.Mapping[str, t.Any]) -> _claims.Owner:
    """The rollout claiming: the task's ``owner`` (the action plugin fills it), else this step's parent process."""
    return _claims.Owner.from_dict(params['owner']) if params['owner'] else _claims.Owner.of_process(os.getppid())


def _list(store: _claims.Store, pool: str, params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    """The pool's claims, changing nothing: who holds which member, and which members an earlier rollout left behind."""
    now, here = ctx.clock.time(), _claims.this_machine()
    held = store.transact(pool, lambda claims: False)
    holdings = [h for h in (held.holding(m, now, here, params['gone_owners']) for m in sorted(held.claims)) if h is not None]
    claims = {h.member: {'holder': h.describe(), 'owner': h.owner.as_dict(), 'left_out': h.left_out, 'lapsed': h.lapsed} for h in holdings}
    # A lapsed claim's member was left out (a failure) or abandoned (a controller gone) mid-sequence: it may be out of the VIP.
    return dict(changed=False, checked=False, claims=claims, left_behind=[h.member for h in holdings if h.lapsed], claims_kept=store.where)


def _settle(store: _claims.Store, owner: _claims.Owner, pool: str, leaving: list[str], params: t.Mapping[str, t.Any],
            ctx: Context) -> dict[str, t.Any]:
    """Release the members' claims (they are back, or the operator clears them), or mark them left out after a failure."""
    outcome: dict[str, t.Any] = {}

    def decide(claims: _claims.PoolClaims) -> bool:
        if params['leave_out']:
            outcome['left_out'] = claims.leave_out(owner, leaving, params['reason'])
            return bool(outcome['left_out'])
        outcome['released'], outcome['kept'] = claims.release(owner, leaving, force=params['force'])
        return bool(outcome['released'])

    store.transact(pool, decide, dry_run=ctx.check_mode)
    for member, holder in outcome.get('kept', {}).items():
        ctx.warn(f'the claim of {member} is not released: another rollout ({holder}) holds it; release with force to clear it anyway')
    changed = bool(outcome.get('left_out') or outcome.get('released'))
    return dict(changed=changed, checked=False, leaving=leaving, claims_kept=store.where, **{k: v for k, v in outcome.items() if k != 'kept'})


def _judge(store: _claims.Store | None, owner: _claims.Owner | None, pool: str, leaving: list[str], params: t.Mapping[str, t.Any],
           ctx: Context, profile: t.Any, only_here: bool) -> dict[str, t.Any]:  # pylint: disable=too-many-arguments
    cls = provider_class(dict(params, members=None))
    counts = cls.can(Capability.POOL) or bool(params['pool_members'])
    if not counts:
        ctx.warn(f"capacity not checked: provider {cls.name!r} cannot list the pool "
                 f"(only {', '.join(_providers.providers_that_can(Capability.POOL))} can) and no pool_members were given")

    def bindings_of() -> t.Mapping[str, bool]:
        if cls.can(Capability.POOL):
            return build(dict(params, members=None), profile, Capability.POOL, clock=ctx.clock).pool_bindings()
        return dict.fromkeys(params['pool_members'], True)  # no L4 to ask: the inventory's members count as bound

    if store is None or owner is None:
        if not counts:
            return dict(changed=False, checked=False, leaving=leaving)
        verdict = _capacity.judge(pool, bindings_of(), leaving, params['min_bound'], params['max_out'])
        return _verdict_result(verdict, {}, [], None)
    outcome: dict[str, t.Any] = {}
    asked: dict[str, t.Mapping[str, bool]] = {}

    def ask_the_l4() -> None:
        # Outside the claims' read-decide-write: the L4's answer can take a while, and a store that compares and sets
        # must not hold its version across it while every waiting slot writes. A claim made meanwhile changes the version.
        if counts:
            asked['bindings'] = bindings_of()

    def claimed_elsewhere(claims: _claims.PoolClaims, held: t.Mapping[str, _claims.Holding]) -> set[str]:
        """Out whatever the L4 says yet: claimed by another rollout, or by this one for another member (a slot taken)."""
        return {m for m in held if m not in leaving} | {m for m in claims.claims if m not in leaving and claims.claims[m].get('owner') == owner.key}

    def left_out_here(claims: _claims.PoolClaims) -> list[str]:
        return [m for m, c in claims.claims.items() if c.get('owner') == owner.key and c.get('left_out')]

    def slots_full(claims: _claims.PoolClaims) -> bool:
        # Every claimed member counts as out: while max_out are claimed no slot is free, whatever the L4 would say. A
        # member this rollout left out is news for decide, which refuses at once.
        held = claims.held_by_others(owner, ctx.clock.time(), _claims.this_machine(), params['gone_owners'])
        return not left_out_here(claims) and bool(params['max_out']) and len(claimed_elsewhere(claims, held)) >= params['max_out']

    def decide(claims: _claims.PoolClaims) -> bool:
        now = ctx.clock.time()
        held = claims.held_by_others(owner, now, _claims.this_machine(), params['gone_owners'])
        blocking = [held[m] for m in leaving if m in held and not held[m].lapsed]
        if blocking:
            raise StepFailed(f"capacity guard: claimed by another rollout: {'; '.join(h.describe() for h in blocking)}. A claim lapses "
                             "when its rollout ends on the controller that holds it, when its lease runs out, or when it is released "
                             "with force.", claimed_by_others=sorted(held), blocked_by=[h.owner.as_dict() for h in blocking], leaving=leaving)
        failed_here = left_out_here(claims)
        if failed_here:
            # Slots let members run on after a failure, and may be waiting here for a slot when it comes: none may go out.
            raise _refused_after(f"{failed_here[0]} was left out ({claims.claims[failed_here[0]]['left_out']})", leaving)
        others = {m: h for m, h in held.items() if m not in leaving}
        claimed = claimed_elsewhere(claims, held)
        bindings = asked['bindings'] if counts else {**dict.fromkeys(claimed, False), **dict.fromkeys(leaving, True)}
        outcome['verdict'] = verdict = _capacity.judge(pool, {m: bound and m not in claimed for m, bound in bindings.items()}, leaving,
                                                       params['min_bound'], params['max_out']) if counts or params['max_out'] else None
        outcome['others'] = others
        if verdict is not None and not verdict.allowed:
            return False
        outcome['first'] = not claims.knows(owner)
        outcome['taken_over'] = {m: held[m].lapsed for m in leaving if m in held}
        outcome['claimed'] = claims.claim(owner, leaving, now, params['claim_lease'])
        return True

    _transact_when_a_slot_is_free(store, pool, ask_the_l4, slots_full, decide, outcome, params, ctx)
    for member, why in outcome.get('taken_over', {}).items():
        ctx.warn(f'took over the claim of {member}: {why}')
    if outcome.get('first') and only_here:
        ctx.warn(CONTROLLER_ONLY.format(pool=pool, where=store.where))
    verdict = outcome['verdict']
    if verdict is None:
        return dict(changed=bool(outcome['claimed']), checked=False, leaving=leaving, claimed=outcome['claimed'], claims_kept=store.where,
                    taken_over=sorted(outcome['taken_over']))
    return dict(_verdict_result(verdict, outcome['others'], outcome.get('claimed', []), store, sorted(outcome.get('taken_over', {}))),
                slot_wait=outcome['slot_wait'])


def _transact_when_a_slot_is_free(store: _claims.Store, pool: str, ask_the_l4: t.Callable[[], None],
                                  slots_full: t.Callable[[_claims.PoolClaims], bool],
                                  decide: _claims.Decide, outcome: dict[str, t.Any], params: t.Mapping[str, t.Any],
                                  ctx: Context) -> None:  # pylint: disable=too-many-arguments
    """Decide once; with max_out and no free slot, decide again every poll_interval until one is (a member bound again
    and its claim released), limited by slot_timeout (the claim lease by default). Check mode does not wait.

    A waiting member reads the claims alone while they fill every slot: the L4 is asked only when a slot may be free,
    so a dozen members waiting do not load the L4's API (or its management plane) ten times a second each."""
    timeout = params['slot_timeout'] or params['claim_lease']

    def decided() -> _capacity.Verdict | None:
        # Waiting already: a look at the claims first, changing nothing.
        if 'verdict' in outcome and slots_full(store.transact(pool, lambda claims: False, dry_run=True)):
            return outcome['verdict']
        ask_the_l4()
        store.transact(pool, decide, dry_run=ctx.check_mode)
        return outcome.get('verdict')

    def settled(verdict: _capacity.Verdict | None) -> bool:
        return verdict is None or verdict.room or len(verdict.remaining) < verdict.min_bound or ctx.check_mode

    polled = poll_until(decided, settled, timeout, params['poll_interval'], ctx.clock)
    verdict = polled.last
    if not polled.reached and verdict is not None:
        raise StepFailed(f"capacity guard: no slot in pool {pool!r} within {timeout:g} s: out {', '.join(verdict.out)}, "
                         f"max_out {verdict.max_out}, leaving {', '.join(verdict.leaving)}", checked=True, **verdict.as_dict())
    outcome['slot_wait'] = round(polled.elapsed, 3)


def _verdict_result(verdict: _capacity.Verdict, others: t.Mapping[str, _claims.Holding], claimed: list[str], store: _claims.Store | None,
                    taken_over: list[str] | None = None) -> dict[str, t.Any]:
    said = verdict.explain() + (f"; claimed by another rollout: {'; '.join(h.describe() for h in others.values())}" if others else '')
    kept = {} if store is None else {'claims_kept': store.where}
    if not verdict.allowed:
        raise StepFailed(f'capacity guard: {said}', checked=True, claimed_by_others=sorted(others), **kept, **verdict.as_dict())
    return dict(changed=bool(claimed), checked=True, msg=said, claimed_by_others=sorted(others), claimed=claimed, taken_over=taken_over or [],
                **kept, **verdict.as_dict())
