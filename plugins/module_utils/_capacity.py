# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The capacity guard: how many members of a pool stay bound when a batch leaves it.

Internal to the l4vip.rollout collection; not a public API.

The count comes from the L4 itself, not from the inventory, so a member that is already out
(a half-done earlier run, a second rollout, a server that died) is not counted twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import typing as t


class CapacityError(ValueError):
    """The guard was asked something it cannot answer (e.g. a member the L4 does not know)."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The guard's judgement: the members bound now, those leaving, those that stay bound, and the least that must."""

    pool: str
    bound_members: list[str]
    leaving: list[str]
    remaining: list[str]
    min_bound: int

    @property
    def allowed(self) -> bool:
        return len(self.remaining) >= self.min_bound

    def explain(self) -> str:
        stay = ', '.join(self.remaining) or 'none'
        going = ', '.join(m for m in self.leaving if m in self.bound_members) or 'no bound member'
        return (f'taking out {going} leaves {len(self.remaining)} of {len(self.bound_members)} bound member(s) '
                f'in pool {self.pool!r} ({stay}); min_bound is {self.min_bound}')

    def as_dict(self) -> dict[str, t.Any]:
        """The verdict as capacity_guard returns it (each key documented in the module's RETURN)."""
        return dict(pool=self.pool, bound_members=self.bound_members, leaving=self.leaving, remaining=self.remaining,
                    min_bound=self.min_bound, allowed=self.allowed)


def check_min_bound(min_bound: int) -> None:
    if min_bound < 0:
        raise CapacityError(f'min_bound: must be 0 or more, got {min_bound}')


def judge(pool: str, bindings: t.Mapping[str, bool], leaving: t.Sequence[str], min_bound: int) -> Verdict:
    """Whether ``leaving`` may go out of ``pool`` and leave at least ``min_bound`` members bound."""
    check_min_bound(min_bound)
    unknown = [member for member in leaving if member not in bindings]
    if unknown:
        known = ', '.join(sorted(bindings)) or 'none'
        raise CapacityError(f'leaving: the L4 has no member {unknown[0]!r} in pool {pool!r}; its members are {known}')
    bound = sorted(member for member, is_bound in bindings.items() if is_bound)
    return Verdict(pool, bound, list(leaving), [member for member in bound if member not in leaving], min_bound)


# --- claims: two rollouts of one pool at once ----------------------------------------------
#
# The L4 counts a member as bound until it has noticed the member leave, so two guards asking at
# the same moment both see full capacity. A claim closes that race: under one lock per pool, a
# guard counts the members other rollouts have claimed as already gone, and claims its own.

CLAIM_SUFFIX = '.claim'


def _claim_path(directory: str, pool: str, member: str) -> str:
    return os.path.join(directory, f'{_safe(pool)}.{_safe(member)}{CLAIM_SUFFIX}')


def _safe(name: str) -> str:
    """A pool or member name as a file name part (names come from the L4 and the inventory)."""
    return ''.join(c if c.isalnum() or c in '-_' else '%' for c in name)


@contextlib.contextmanager
def pool_lock(directory: str, pool: str) -> t.Iterator[None]:
    """One guard of ``pool`` at a time, across processes on this host (or a shared filesystem with locks)."""
    if not os.path.isdir(directory):
        raise CapacityError(f'claims_dir: {directory} is not a directory')
    with open(os.path.join(directory, f'{_safe(pool)}.lock'), 'a+', encoding='utf-8') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_claims(directory: str, pool: str, now: float) -> dict[str, dict[str, t.Any]]:
    """The pool's claims that have not expired, by member."""
    claims = {}
    prefix = f'{_safe(pool)}.'
    for name in os.listdir(directory):
        if not (name.startswith(prefix) and name.endswith(CLAIM_SUFFIX)):
            continue
        try:
            with open(os.path.join(directory, name), encoding='utf-8') as handle:
                claim = json.load(handle)
        except (OSError, ValueError):
            continue  # half-written or just released: not a claim
        if claim.get('pool') == pool and claim.get('expires', 0) > now:
            claims[claim['member']] = claim
    return claims


def write_claim(directory: str, pool: str, member: str, owner: str, now: float, ttl: float) -> None:
    path = _claim_path(directory, pool, member)
    with open(f'{path}.tmp', 'w', encoding='utf-8') as handle:
        json.dump({'pool': pool, 'member': member, 'owner': owner, 'since': now, 'expires': now + ttl}, handle)
    os.replace(f'{path}.tmp', path)


def release_claim(directory: str, pool: str, member: str, dry_run: bool = False) -> bool:
    """Remove ``member``'s claim; whether there was one (with ``dry_run``, whether there is one, removing nothing)."""
    path = _claim_path(directory, pool, member)
    if dry_run:
        return os.path.exists(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def judge_and_claim(directory: str, pool: str, bindings_of: t.Callable[[], t.Mapping[str, bool]], leaving: t.Sequence[str],
                    min_bound: int, owner: str, ttl: float, now: t.Callable[[], float],
                    dry_run: bool = False) -> tuple[Verdict, list[str], list[str]]:
    """Under the pool's lock: count others' claims as gone, judge, and claim every member of ``leaving`` when allowed.

    Returns the verdict, the members other rollouts hold, and the members newly claimed (a claim this
    batch already held, from a run that stopped half-way, is renewed, not new). With ``dry_run`` (check
    mode) nothing is written, not even the lock: the claims are read as they are, and the members that
    would be claimed anew are returned.
    """
    with contextlib.nullcontext() if dry_run else pool_lock(directory, pool):
        held = read_claims(directory, pool, now()) if os.path.isdir(directory) else {}
        others = [member for member in held if member not in leaving]
        bindings = {member: bound and member not in others for member, bound in bindings_of().items()}
        verdict = judge(pool, bindings, leaving, min_bound)
        claimed = []
        if verdict.allowed:
            for member in leaving:
                if not dry_run:
                    write_claim(directory, pool, member, owner, now(), ttl)
                if member not in held:
                    claimed.append(member)
    return verdict, sorted(others), claimed
