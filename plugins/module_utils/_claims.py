# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Claims: which rollout works on which member of a pool, kept where every rollout of the VIP sees them.

Internal to the l4vip.rollout collection; not a public API.

The L4 counts a member as bound until it has noticed the member leave, so two rollouts asking at
the same moment both see full capacity; and two rollouts may pick the same member. A claim closes
both races: a rollout counts the members others have claimed as out, and never works on a member
another live rollout holds.

A pool's claims are one small document (``PoolClaims``) changed only by an atomic read-decide-write
of a ``Store``: a directory under a lock on the host that runs the guard, or the L4 itself where its
API can hold them (compare-and-set on a version). The deciding is the same pure code for every store.

A claim names its owner: the controller's host name, its ansible-playbook process and that
process's start, the AWX job when there is one. It stops holding when the owner is provably gone -
on the same machine (boot and pid namespace) its process is gone; anywhere else its lease, renewed
by each guard of the owner, has lapsed - or when the owner left the member out after a failure.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fcntl
import json
import os
import random
import socket
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _process

STATE_FILE_SUFFIX = '.claims.json'


class ClaimError(ValueError):
    """The claims could not be read or written (a missing directory, a store that keeps changing)."""


def _clock_text(epoch: float) -> str:
    return time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(epoch))


def this_machine() -> str:
    """Where a pid means one process: this boot of this kernel, and this pid namespace (a container has its own)."""
    try:
        with open('/proc/sys/kernel/random/boot_id', encoding='ascii') as handle:
            boot = handle.read().strip()
        namespace = os.stat('/proc/self/ns/pid').st_ino
    except OSError:
        return f'{socket.gethostname()}:unknown'  # no /proc: no owner here can be proved gone, leases decide
    return f'{boot}:{namespace}'


@dataclasses.dataclass(frozen=True)
class Owner:
    """A rollout: the process that runs it and where, so that its claims can be told apart and proved abandoned."""

    controller: str
    pid: int
    start_ticks: int  # the process's start in clock ticks since boot: a reused pid has another
    machine: str
    started: float  # epoch seconds, for people
    job: str = ''  # the AWX job id, when AWX runs it

    @property
    def key(self) -> str:
        return f'{self.controller}:{self.pid}:{self.start_ticks}:{self.machine}'

    def describe(self) -> str:
        job = f', AWX job {self.job}' if self.job else ''
        return f'{self.controller} pid {self.pid}{job}, started {_clock_text(self.started)}'

    def as_dict(self) -> dict[str, t.Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: t.Mapping[str, t.Any]) -> Owner:
        try:
            return cls(str(values['controller']), int(values['pid']), int(values['start_ticks']), str(values['machine']),
                       float(values['started']), str(values.get('job') or ''))
        except (KeyError, TypeError, ValueError):
            raise ClaimError(f'owner: expected controller, pid, start_ticks, machine and started, got {dict(values)!r}') from None

    @classmethod
    def of_process(cls, pid: int, job: str = '') -> Owner:
        """The owner that process ``pid`` of this machine is (the controller's ansible-playbook, say)."""
        ticks = _process.start_ticks(pid)
        if ticks is None:
            raise ClaimError(f'owner: no process {pid} on this host')
        return cls(socket.gethostname(), pid, ticks, this_machine(), _boot_time() + ticks / os.sysconf('SC_CLK_TCK'), job)

    def gone(self, here: str) -> bool:
        """Provably gone: it ran on this machine (``here``) and its process no longer does. Elsewhere nothing is proved."""
        return self.machine == here and _process.start_ticks(self.pid) != self.start_ticks


def _boot_time() -> float:
    with open('/proc/stat', encoding='ascii') as handle:
        for line in handle:
            if line.startswith('btime '):
                return float(line.split()[1])
    return 0.0


@dataclasses.dataclass(frozen=True)
class Holding:
    """Who holds a member's claim, and whether the claim still holds (``lapsed`` says why not)."""

    member: str
    owner: Owner
    since: float
    lease_until: float
    left_out: str  # why its owner left it out after a failure; empty while it works on it
    lapsed: str  # why any rollout may take it over; empty while the claim holds

    def describe(self) -> str:
        said = f'{self.member} (held by {self.owner.describe()}; claimed {_clock_text(self.since)}'
        if self.left_out:
            return f'{said}; left out: {self.left_out})'
        return f'{said}; lease until {_clock_text(self.lease_until)})'


class PoolClaims:
    """One pool's claims, as a store keeps them: {"owners": {key: {...}}, "claims": {member: {...}}}. Changed in place."""

    def __init__(self, document: t.Mapping[str, t.Any] | None) -> None:
        document = copy.deepcopy(dict(document or {}))
        self.owners: dict[str, dict[str, t.Any]] = dict(document.get('owners') or {})
        self.claims: dict[str, dict[str, t.Any]] = dict(document.get('claims') or {})

    def document(self) -> dict[str, t.Any]:
        return {'owners': copy.deepcopy(self.owners), 'claims': copy.deepcopy(self.claims)}

    def knows(self, owner: Owner) -> bool:
        return owner.key in self.owners

    def holding(self, member: str, now: float, here: str, gone: t.Collection[str] = ()) -> Holding | None:
        claim = self.claims.get(member)
        if claim is None:
            return None
        record = self.owners.get(claim.get('owner'), {})
        try:
            owner = Owner.from_dict(record.get('owner') or {})
        except ClaimError:
            owner = Owner('unknown', 0, 0, 'unknown', 0.0)
        lease_until = float(record.get('renewed', 0)) + float(record.get('lease', 0))
        left_out = claim.get('left_out') or ''
        if left_out:
            lapsed = f'its owner ({owner.describe()}) left it out: {left_out}'
        elif owner.key in gone or owner.gone(here):
            lapsed = f'its owner ({owner.describe()}) is gone'
        elif lease_until <= now:
            lapsed = f'the lease of its owner ({owner.describe()}) lapsed at {_clock_text(lease_until)}'
        else:
            lapsed = ''
        return Holding(member, owner, float(claim.get('since', 0)), lease_until, left_out, lapsed)

    def held_by_others(self, me: Owner, now: float, here: str, gone: t.Collection[str] = ()) -> dict[str, Holding]:
        """Every claimed member that is not ``me``'s, held or lapsed: a lapsed claim's member may still be out."""
        found = {}
        for member in self.claims:
            holding = self.holding(member, now, here, gone)
            if holding is not None and holding.owner.key != me.key:
                found[member] = holding
        return found

    def claim(self, me: Owner, members: t.Sequence[str], now: float, lease: float) -> list[str]:
        """Claim ``members`` for ``me`` and renew ``me``'s lease; returns the members that were not ``me``'s before."""
        self.owners[me.key] = {'owner': me.as_dict(), 'renewed': now, 'lease': lease}
        new = []
        for member in members:
            claim = self.claims.get(member)
            if claim is None or claim.get('owner') != me.key or claim.get('left_out'):
                new.append(member)
                self.claims[member] = {'owner': me.key, 'since': now}
        self._forget_owners_without_claims(keep=me.key)
        return new

    def leave_out(self, me: Owner, members: t.Sequence[str], why: str) -> list[str]:
        """Mark ``me``'s claims of ``members`` as left out after a failure: they keep counting as out, and any rollout may take them."""
        marked = []
        for member in members:
            claim = self.claims.get(member)
            if claim is not None and claim.get('owner') == me.key:
                claim['left_out'] = why or 'the rollout failed'
                marked.append(member)
        return marked

    def release(self, me: Owner, members: t.Sequence[str], force: bool = False) -> tuple[list[str], dict[str, str]]:
        """Remove the claims of ``members`` that are ``me``'s (anyone's with ``force``); returns those released and those kept, by owner."""
        released, kept = [], {}
        for member in members:
            claim = self.claims.get(member)
            if claim is None:
                continue
            if claim.get('owner') == me.key or force:
                del self.claims[member]
                released.append(member)
            else:
                kept[member] = self.owners.get(claim.get('owner'), {}).get('owner', {}).get('controller', 'unknown')
        self._forget_owners_without_claims(keep=me.key)
        return released, kept

    def _forget_owners_without_claims(self, keep: str) -> None:
        used = {claim.get('owner') for claim in self.claims.values()} | {keep}
        for key in [key for key in self.owners if key not in used]:
            del self.owners[key]


# --- stores: where a pool's claims live, each with one atomic read-decide-write -----------------

Decide = t.Callable[[PoolClaims], bool]  # changes the claims in place; returns whether to write them


class Store(t.Protocol):
    where: str  # for people: "the L4 (...)", "directory ... on host ..."

    def transact(self, pool: str, decide: Decide, dry_run: bool = False) -> PoolClaims:
        """Read the pool's claims, let ``decide`` change them, and write them if it says so, all at once. Returns them as decided."""


def _safe(name: str) -> str:
    """A pool name as a file name part (names come from the L4 and the inventory)."""
    return ''.join(c if c.isalnum() or c in '-_' else '%' for c in name)


class DirectoryStore:
    """A JSON file per pool in a directory of the host that runs the guard, changed under an exclusive lock on that host."""

    def __init__(self, directory: str, host: str) -> None:
        self.directory = os.path.expanduser(directory)
        self.where = f'directory {self.directory} on {host}'

    def transact(self, pool: str, decide: Decide, dry_run: bool = False) -> PoolClaims:
        path = os.path.join(self.directory, f'{_safe(pool)}{STATE_FILE_SUFFIX}')
        if dry_run:  # check mode: no lock, no directory, nothing written
            claims = PoolClaims(self._read(path))
            decide(claims)
            return claims
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        with self._locked(pool):
            claims = PoolClaims(self._read(path))
            if decide(claims):
                with open(f'{path}.tmp', 'w', encoding='utf-8') as handle:
                    json.dump(claims.document(), handle, indent=1, sort_keys=True)
                os.replace(f'{path}.tmp', path)
        return claims

    @contextlib.contextmanager
    def _locked(self, pool: str) -> t.Iterator[None]:
        with open(os.path.join(self.directory, f'{_safe(pool)}.lock'), 'a+', encoding='utf-8') as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _read(path: str) -> dict[str, t.Any]:
        try:
            with open(path, encoding='utf-8') as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {}
        except ValueError as error:
            raise ClaimError(f'claims: {path} is not a claims file ({error}); remove it once no rollout runs') from None


# How often a store that compares and sets may find the claims changed under it before the guard gives up, and the
# backoff between tries: a random pause up to BACKOFF * 2**try, at most BACKOFF_MAX - every slot of a big pool asks at
# once when a rollout starts, and without the random pause the same writers collide again on every try.
CAS_ATTEMPTS = 16
BACKOFF = 0.02
BACKOFF_MAX = 0.5


class CompareAndSetStore:
    """Claims the L4 itself holds: read with a version, written only if the version is still the same, else decided anew."""

    def __init__(self, where: str, read: t.Callable[[str], tuple[int, dict[str, t.Any]]],
                 write: t.Callable[[str, int, dict[str, t.Any]], bool], sleep: t.Callable[[float], None] = time.sleep) -> None:
        self.where = where
        self._read, self._write, self._sleep = read, write, sleep

    def transact(self, pool: str, decide: Decide, dry_run: bool = False) -> PoolClaims:
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                self._sleep(random.uniform(0, min(BACKOFF_MAX, BACKOFF * 2 ** attempt)))
            version, document = self._read(pool)
            claims = PoolClaims(document)
            if not decide(claims) or dry_run or self._write(pool, version, claims.document()):
                return claims
        raise ClaimError(f'claims: the claims of pool {pool!r} in {self.where} changed under every one of {CAS_ATTEMPTS} attempts '
                         '(other rollouts or slots writing all the time)')
