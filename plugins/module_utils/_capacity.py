# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The capacity guard: how many members of a pool stay bound when a batch leaves it.

Internal to the l4vip.rollout collection; not a public API.

The count comes from the L4 itself, not from the inventory, so a member that is already out
(a half-done earlier run, a second rollout, a server that died) is not counted twice. Members
other rollouts have claimed (``_claims.py``) come in already counted as out.
"""

from __future__ import annotations

import dataclasses
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
    out: list[str] = dataclasses.field(default_factory=list)  # the pool's members out already, not leaving now
    max_out: int | None = None  # slots: at most this many out at once, those leaving included

    @property
    def room(self) -> bool:
        """Whether a slot is free for the leaving members (always, without max_out)."""
        return self.max_out is None or len(self.out) + len(self.leaving) <= self.max_out

    @property
    def allowed(self) -> bool:
        return len(self.remaining) >= self.min_bound and self.room

    def explain(self) -> str:
        stay = ', '.join(self.remaining) or 'none'
        going = ', '.join(m for m in self.leaving if m in self.bound_members) or 'no bound member'
        said = (f'taking out {going} leaves {len(self.remaining)} of {len(self.bound_members)} bound member(s) '
                f'in pool {self.pool!r} ({stay}); min_bound is {self.min_bound}')
        if self.max_out is not None:
            said += f"; out already: {', '.join(self.out) or 'none'}, max_out is {self.max_out}"
        return said

    def as_dict(self) -> dict[str, t.Any]:
        """The verdict as capacity_guard returns it (each key documented in the module's RETURN)."""
        return dict(pool=self.pool, bound_members=self.bound_members, leaving=self.leaving, remaining=self.remaining,
                    min_bound=self.min_bound, out=self.out, max_out=self.max_out, allowed=self.allowed)


def check_min_bound(min_bound: int) -> None:
    if min_bound < 0:
        raise CapacityError(f'min_bound: must be 0 or more, got {min_bound}')


def check_max_out(max_out: int | None) -> None:
    if max_out is not None and max_out < 1:
        raise CapacityError(f'max_out: must be 1 or more, got {max_out}')


def judge(pool: str, bindings: t.Mapping[str, bool], leaving: t.Sequence[str], min_bound: int, max_out: int | None = None) -> Verdict:
    """Whether ``leaving`` may go out of ``pool``: at least ``min_bound`` members stay bound, and with ``max_out``
    at most that many are out at once - every member the L4 does not bind (``bindings`` False), whyever it is out."""
    check_min_bound(min_bound)
    check_max_out(max_out)
    unknown = [member for member in leaving if member not in bindings]
    if unknown:
        known = ', '.join(sorted(bindings)) or 'none'
        raise CapacityError(f'leaving: the L4 has no member {unknown[0]!r} in pool {pool!r}; its members are {known}')
    bound = sorted(member for member, is_bound in bindings.items() if is_bound)
    out = sorted(member for member, is_bound in bindings.items() if not is_bound and member not in leaving)
    return Verdict(pool, bound, list(leaving), [member for member in bound if member not in leaving], min_bound, out, max_out)
