# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Batches for a rolling deploy across VIP groups.

Internal to the l4vip.rollout collection; not a public API.

Ansible's ``serial`` cuts one host list, so a batch could straddle two VIP groups and a
percentage would be a share of the whole fleet. Here each group is cut on its own, by the
same rules as ``serial`` (a number, or a percentage of the group; the last item repeats),
and the batches follow each other group by group. The playbook then runs the flat list with
``serial`` set to the batch sizes, so no batch ever holds hosts of two groups.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

_PERCENT = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*%\s*$')


class BatchError(ValueError):
    """A serial item or a group that cannot make batches; the message names the option and the value."""


@dataclasses.dataclass(frozen=True)
class Plan:
    hosts: list[str]
    serial: list[int]
    batches: list[dict[str, t.Any]]
    max_out: dict[str, int] = dataclasses.field(default_factory=dict)  # slots: each host's group's, by host

    def as_dict(self) -> dict[str, t.Any]:
        return dataclasses.asdict(self)


def batch_size(item: t.Any, group_size: int, option: str = 'serial') -> int:
    """One ``serial`` item (or ``max_out``) for a group of ``group_size`` hosts: a count, or a percentage (rounded down, at least 1)."""
    if isinstance(item, int) and not isinstance(item, bool):
        count = item
    elif isinstance(item, str) and item.strip().isdigit():
        count = int(item)
    elif isinstance(item, str) and _PERCENT.match(item):
        percent = float(_PERCENT.match(item).group(1))
        if not 0 < percent <= 100:
            raise BatchError(f'{option}: {item!r} must be a percentage above 0 and at most 100')
        return max(int(group_size * percent / 100), 1)
    else:
        raise BatchError(f'{option}: {item!r} is neither a host count nor a percentage such as "25%"')
    if count < 1:
        raise BatchError(f'{option}: {item!r} must be at least 1')
    return count


def split(hosts: t.Sequence[str], serial: t.Sequence[t.Any]) -> list[list[str]]:
    """Cut one group's hosts into batches; the last serial item repeats until every host is placed."""
    if not serial:
        raise BatchError('serial: needs at least one item')
    sizes = [batch_size(item, len(hosts)) for item in serial]  # validates every item, also unused ones
    batches, start, index = [], 0, 0
    while start < len(hosts):
        size = sizes[min(index, len(sizes) - 1)]
        batches.append(list(hosts[start:start + size]))
        start, index = start + size, index + 1
    return batches


def plan(groups: t.Sequence[str], members: t.Mapping[str, t.Sequence[str]], serial: t.Any, first: t.Iterable[str] = (),
         max_out: t.Any = None) -> Plan:
    """Batches for ``groups`` in order; a host in several groups goes with the first that names it.

    Hosts in ``first`` (left out of the VIP by an earlier, half-done run) open their group in a
    batch of their own: they are out already, so finishing them takes no one else out.

    With ``max_out`` (a count, or a percentage of each group, as a ``serial`` item) a group is one
    batch, left-out hosts first, and each host gets its group's number of slots: the members go
    out on their own, at most that many at once.
    """
    first = set(first)
    if isinstance(serial, (str, int)) and not isinstance(serial, bool):
        serial = [serial]
    if not isinstance(serial, (list, tuple)):
        raise BatchError(f'serial: expected a count, a percentage or a list of them, got {serial!r}')
    if isinstance(groups, str):
        groups = [groups]
    placed: set[str] = set()
    hosts, sizes, batches = [], [], []
    slots_of: dict[str, int] = {}
    for group in groups:
        if group not in members:
            raise BatchError(f'groups: the inventory has no group {group!r}; it has {", ".join(sorted(members)) or "none"}')
        own = [host for host in members[group] if host not in placed]
        placed.update(own)
        left_out = [host for host in own if host in first]
        rest = [host for host in own if host not in first]
        if max_out is not None and own:
            slots_of.update(dict.fromkeys(own, batch_size(max_out, len(own), 'max_out')))
            cut = [left_out + rest]
        else:
            cut = ([left_out] if left_out else []) + (split(rest, serial) if rest else [])
        for number, batch in enumerate(cut, start=1):
            hosts.extend(batch)
            sizes.append(len(batch))
            batches.append(dict(group=group, number=number, hosts=batch))
    if not hosts:
        raise BatchError(f'groups: {", ".join(groups) or "(none)"} hold no host')
    return Plan(hosts, sizes, batches, slots_of)
