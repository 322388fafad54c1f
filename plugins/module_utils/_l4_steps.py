# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The L4 steps of a rollout, for one member or a whole batch: wait for the L4, set admin states, guard capacity, drain.

Internal to the l4vip.rollout collection; not a public API.

Each step is one function of its validated options that returns the result or raises StepFailed.
The module of the same name runs it on the host its task runs on; the module's action plugin runs
it in the controller's own process when the task runs on the controller, so an L4 step there costs
no module run. The argument specs live here so that both validate alike.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import subprocess
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _capacity, _providers, _sockets
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError, seconds
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import (
    SYSTEM_CLOCK, Clock, Profile, ProfileError, default_timeout, parse_profile, poll_until, remaining_wait, transition_window)

# Where claims live when the guard is asked to claim and no claims_dir is given: on the host that runs it
# (the action plugin puts them under ANSIBLE_HOME when that host is the controller).
DEFAULT_CLAIMS_DIR = '~/.ansible/l4vip.rollout/claims'


class StepFailed(Exception):
    """A step could not do what it was asked; ``details`` go into the failed result."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.details = details


def _run_argv(argv: list[str]) -> tuple[int, str, str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


@dataclasses.dataclass
class Context:
    """What a step needs from the task around it."""

    check_mode: bool = False
    diff: bool = False
    clock: Clock = SYSTEM_CLOCK
    warnings: list[str] = dataclasses.field(default_factory=list)
    # Runs an argv on the host the step runs on: (rc, stdout, stderr). Modules pass AnsibleModule.run_command.
    run_command: t.Callable[[list[str]], tuple[int, str, str]] = _run_argv
    claims_dir: str = DEFAULT_CLAIMS_DIR

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def run_in_module(module: t.Any, step: t.Callable[[t.Mapping[str, t.Any], Context], dict[str, t.Any]]) -> None:
    """Run ``step`` as a module: its warnings as module warnings, StepFailed as fail_json with its details."""
    ctx = Context(check_mode=module.check_mode, diff=module._diff, run_command=module.run_command)
    try:
        result = step(module.params, ctx)
    except StepFailed as error:
        for warning in ctx.warnings:
            module.warn(warning)
        module.fail_json(msg=str(error), **error.details)
    for warning in ctx.warnings:
        module.warn(warning)
    module.exit_json(**result)


# --- shared option handling -----------------------------------------------------------------

def _profile(params: t.Mapping[str, t.Any]) -> Profile:
    try:
        _providers.check_common_options(params)
    except _providers.ProviderError as error:
        raise StepFailed(str(error)) from None
    try:
        return parse_profile(params.get('profile'))
    except ProfileError as error:
        raise StepFailed(str(error), key=f'profile.{error.key}', value=error.value) from None


def batch(params: t.Mapping[str, t.Any]) -> list[str]:
    """The members a step acts on: ``members`` (the batch), else ``member``, else what the provider watches."""
    if params.get('members'):
        return list(dict.fromkeys(params['members']))
    return [params.get('member') or params.get('endpoint') or 'member']


def _each(provider: _providers.Provider, members: list[str]) -> t.Iterator[tuple[str, _providers.Provider]]:
    if len(members) == 1:
        yield members[0], provider
    else:
        for member in members:
            yield member, provider.with_member(member)


def _build(params: t.Mapping[str, t.Any], profile: Profile, since: float | None = None) -> _providers.Provider:
    provider = _providers.build_provider(params, profile, since)
    if params['provider'] != 'timer' and len(batch(params)) > 1 and not provider.batches:
        raise StepFailed(f"members: provider {params['provider']!r} follows one member per task; give member instead, "
                         f"or use one of {', '.join(_providers.POOL_PROVIDERS)}")
    return provider


# --- member_wait --------------------------------------------------------------------------------

def member_wait_spec() -> dict[str, t.Any]:
    spec = _providers.provider_argument_spec()
    spec.update(
        state=dict(type='str', choices=['down', 'up'], required=True),
        since=dict(type='float'),
        failure=dict(type='str', choices=['fast', 'timeout'], default='fast'),
        timeout=dict(type='float'),
        fallback=dict(type='str', choices=['fail', 'timer'], default='fail'),
    )
    return spec


def follow(provider: _providers.Provider, members: list[str], bound: bool, timeout: float, poll_interval: float,
           clock: Clock = SYSTEM_CLOCK) -> tuple[dict[str, dict[str, t.Any]], int, float]:
    """Poll the L4 until every member's binding is ``bound``, at most ``timeout`` seconds; each member is asked
    about until it gets there, and its own time of arrival kept. Returns per member what was seen, the polls, elapsed."""
    seen: dict[str, _providers.Observation] = {}
    arrived: dict[str, float] = {}

    def probe() -> int:
        pending = [member for member in members if member not in arrived]
        for member, observation in provider.observe_members(pending).items():
            seen[member] = observation
            if observation.bound is bound:
                arrived[member] = clock.time()
        return len(arrived)

    polled = poll_until(probe, lambda count: count == len(members), timeout, poll_interval, clock)
    report = {member: dict(reached=member in arrived, ended_at=arrived.get(member), bound=seen[member].bound,
                           observed=seen[member].observed, l4_since=seen[member].since) for member in members}
    return report, polled.polls, polled.elapsed


def _aggregate(report: dict[str, dict[str, t.Any]]) -> dict[str, t.Any]:
    """One member: its own keys, as the module always returned them. A batch: what all share, and each one's words."""
    values = list(report.values())
    if len(values) == 1:
        return dict(bound=values[0]['bound'], observed=values[0]['observed'], l4_since=values[0]['l4_since'])
    bounds = {value['bound'] for value in values}
    return dict(bound=bounds.pop() if len(bounds) == 1 else None, l4_since=None,
                observed='; '.join(f"{member}: {value['observed']}" for member, value in report.items()))


def member_wait(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    """Wait until the L4 sees every member of the batch ``state``; ``ended_at`` says when, for timelines."""
    try:
        return dict(_member_wait(params, ctx), ended_at=ctx.clock.time())
    except StepFailed as error:
        error.details['ended_at'] = ctx.clock.time()
        raise


def _member_wait(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    profile = _profile(params)
    if params['timeout'] is not None:
        try:
            seconds('timeout', params['timeout'])
        except OptionError as error:
            raise StepFailed(str(error)) from None
    members = batch(params)
    state, since, clock = params['state'], params['since'], ctx.clock
    window = transition_window(profile, state, params['failure'])
    timeout = params['timeout'] or default_timeout(window, profile)
    result: dict[str, t.Any] = dict(changed=False, timer_bound=window.high, window=dict(low=window.low, high=window.high),
                                    fallback_used=False, waited=True, polls=0)

    def everyone(**values: t.Any) -> dict[str, dict[str, t.Any]]:
        return {member: dict(dict(reached=True, ended_at=clock.time(), l4_since=None), **values) for member in members}

    if ctx.check_mode:
        unasked = everyone(reached=False, ended_at=None, bound=None, observed='not asked (check mode)')
        return dict(result, msg=f'check mode: the wait for {state} was skipped', elapsed=0.0, waited=False, members=unasked,
                    **_aggregate(unasked))
    started = clock.monotonic()
    try:
        provider = _build(params, profile, since)
        if params['provider'] == 'timer':
            clock.sleep(remaining_wait(window.high, since, clock))
            assumed = everyone(bound=state == 'up', observed=f"assumed {state}: the timing model's bound has passed")
            return dict(result, elapsed=clock.monotonic() - started, members=assumed, **_aggregate(assumed))
        report, polls, elapsed = follow(provider, members, state == 'up', timeout, params['poll_interval'], clock)
    except _providers.L4Unreachable as error:
        if params['fallback'] != 'timer':
            raise StepFailed(str(error), endpoint=error.endpoint, elapsed=clock.monotonic() - started, **result) from None
        ctx.warn(f"{error}; waiting the timer bound of {window.high:g}s instead")
        clock.sleep(remaining_wait(window.high, since, clock))
        unknown = everyone(bound=None, observed=f'unknown: {error}')
        return dict(result, elapsed=clock.monotonic() - started, fallback_used=True, members=unknown, **_aggregate(unknown))
    except _providers.ProviderError as error:
        raise StepFailed(str(error), elapsed=clock.monotonic() - started, **result) from None
    result.update(elapsed=elapsed, polls=polls, members=report, **_aggregate(report))
    late = [member for member, seen in report.items() if not seen['reached']]
    if late:
        said = report[late[0]]['observed'] if len(report) == 1 else '; '.join(f"{member}: {report[member]['observed']}" for member in late)
        raise StepFailed(f"{', '.join(late)} {'was' if len(late) == 1 else 'were'} not {state} within {timeout:g}s; "
                         f"the L4 last said: {said}", **result)
    return result


# --- member_admin -------------------------------------------------------------------------------

def member_admin_spec() -> dict[str, t.Any]:
    spec = _providers.provider_argument_spec()
    spec.update(
        state=dict(type='str', choices=list(_providers.ADMIN_STATES), required=True),
        admin_request=dict(type='dict', options=dict(method=dict(type='str', default='PATCH'), url=dict(type='str'), body=dict(type='raw'))),
        admin_values=dict(type='dict'),
    )
    return spec


PROVIDER_REQUIRED_IF = _providers.PROVIDER_REQUIRED_IF
MEMBER_ADMIN_REQUIRED_IF = [rule for rule in _providers.PROVIDER_REQUIRED_IF if rule[1] != 'http'] + [
    ('provider', 'http', ['endpoint', 'admin_request'])]


def member_admin(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    profile = _profile(params)
    wanted = params['state']
    if params['provider'] not in _providers.ADMIN_PROVIDERS:
        raise StepFailed(f"provider: {params['provider']!r} cannot set an admin state; use one of {', '.join(_providers.ADMIN_PROVIDERS)}")
    if params['admin_values'] is not None and not params['query']:
        raise StepFailed('admin_values: needs query, the JMESPath expression that reads the admin state')
    unknown = sorted(set(params['admin_values'] or {}) - set(_providers.ADMIN_STATES))
    if unknown:
        raise StepFailed(f"admin_values: {unknown[0]!r} is not an admin state; use {', '.join(_providers.ADMIN_STATES)}")
    members = batch(params)
    report: dict[str, dict[str, t.Any]] = {}
    try:
        for member, provider in _each(_build(params, profile), members):
            before = provider.admin_state()
            changed = before != wanted
            if changed and not ctx.check_mode:
                provider.set_admin(wanted)
                after = provider.admin_state()
                if after is not None and after != wanted:
                    raise StepFailed(f"the L4 still reports admin state {after!r} for {member} after being told {wanted!r}",
                                     admin_state=after, previous_admin_state=before)
            report[member] = dict(changed=changed, admin_state=wanted, previous_admin_state=before)
    except _providers.ProviderError as error:
        raise StepFailed(str(error), members=report) from None
    befores = {value['previous_admin_state'] for value in report.values()}
    result = dict(changed=any(value['changed'] for value in report.values()), admin_state=wanted,
                  previous_admin_state=befores.pop() if len(befores) == 1 else None, members=report)
    if ctx.diff:
        label = (lambda member: '') if len(members) == 1 else (lambda member: f'{member} ')
        result['diff'] = dict(before=''.join(f"{label(m)}admin_state: {v['previous_admin_state']}\n" for m, v in report.items()),
                              after=''.join(f'{label(m)}admin_state: {wanted}\n' for m in report))
    return result


# --- capacity_guard -----------------------------------------------------------------------------

def capacity_guard_spec() -> dict[str, t.Any]:
    spec = _providers.provider_argument_spec()
    spec.update(
        leaving=dict(type='list', elements='str'),
        min_bound=dict(type='int', default=1),
        pool_members=dict(type='list', elements='str'),
        claims=dict(type='bool', default=False),
        claims_dir=dict(type='path'),
        claim_ttl=dict(type='float', default=3600.0),
        release=dict(type='bool', default=False),
    )
    return spec


def capacity_guard(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    profile = _profile(params)
    leaving = params['leaving'] if params['leaving'] is not None else [m for m in (params['members'] or [params['member']]) if m]
    try:
        _capacity.check_min_bound(params['min_bound'])
    except _capacity.CapacityError as error:
        raise StepFailed(str(error)) from None
    if not (math.isfinite(params['claim_ttl']) and params['claim_ttl'] > 0):
        raise StepFailed(f"claim_ttl: must be a number of seconds above 0, got {params['claim_ttl']!r}")
    claims_dir = params['claims_dir'] or (ctx.claims_dir if params['claims'] or params['release'] else None)
    pool = params['pool'] or ''
    if params['release']:
        if not leaving:
            raise StepFailed('release: needs the members whose claims to release (leaving, members or member)')
        released = [] if ctx.check_mode else [m for m in leaving if _capacity.release_claim(os.path.expanduser(claims_dir), pool, m)]
        return dict(changed=bool(released), checked=False, leaving=leaving, released=released)
    lists_pool = params['provider'] in _providers.POOL_PROVIDERS
    if not lists_pool and not params['pool_members']:
        ctx.warn(f"capacity not checked: provider {params['provider']!r} cannot list the pool "
                 f"(only {', '.join(_providers.POOL_PROVIDERS)} can) and no pool_members were given")
        return dict(changed=False, checked=False, leaving=leaving)
    try:
        def inventory_bindings() -> dict[str, bool]:
            # No L4 to ask: the inventory's members count as bound, less what other rollouts claim.
            return dict.fromkeys(params['pool_members'], True)

        bindings_of = _build(dict(params, members=None), profile).pool_bindings if lists_pool else inventory_bindings
        others: list[str] = []
        claimed: list[str] = []
        if claims_dir and not ctx.check_mode:
            directory = os.path.expanduser(claims_dir)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            verdict, others, claimed = _capacity.judge_and_claim(
                directory, pool, bindings_of, leaving, params['min_bound'], owner=f'{socket.gethostname()}:{os.getppid()}',
                ttl=params['claim_ttl'], now=time.time)
        else:
            verdict = _capacity.judge(pool, bindings_of(), leaving, params['min_bound'])
    except (_providers.ProviderError, _capacity.CapacityError) as error:
        raise StepFailed(str(error), leaving=leaving) from None
    except OSError as error:
        raise StepFailed(f'claims_dir: {error}', leaving=leaving) from None
    said = verdict.explain() + (f"; claimed by another rollout: {', '.join(others)}" if others else '')
    if not verdict.allowed:
        raise StepFailed(f'capacity guard: {said}', checked=True, claimed_by_others=others, **verdict.as_dict())
    return dict(changed=bool(claimed), checked=True, msg=said, claimed_by_others=others, claimed=claimed, **verdict.as_dict())


# --- session_drain ------------------------------------------------------------------------------

def session_drain_spec() -> dict[str, t.Any]:
    spec = _providers.provider_argument_spec()
    spec.update(
        port=dict(type='int'),
        address=dict(type='str'),
        exclude_sources=dict(type='list', elements='str', default=[]),
        threshold=dict(type='int', default=0),
        timeout=dict(type='float', default=60.0),
        stop_command=dict(type='list', elements='str'),
        at_timeout=dict(type='str', choices=list(AT_TIMEOUT), default=AT_TIMEOUT_FAIL),
        force_command=dict(type='list', elements='str'),
    )
    return spec


# What a drain does when client sessions remain at its timeout: fail (the member stays out,
# nothing is cut), or force - run the web server's hard stop and report the sessions it cut.
AT_TIMEOUT_FAIL, AT_TIMEOUT_FORCE = 'fail', 'force'
AT_TIMEOUT = (AT_TIMEOUT_FAIL, AT_TIMEOUT_FORCE)


# How long a failed stop command may take to leave the port closed (it may have been stopping already),
# and how long the sessions a force_command cut may take to leave the socket table.
STOPPED_GRACE = 10.0


def _listening(port: int, address: t.Any) -> bool:
    return any(s.state == 'LISTEN' and s.local_port == port and (address is None or s.local_address.is_unspecified or s.local_address == address)
               for s in _sockets.read_sockets())


def _stop(params: t.Mapping[str, t.Any], ctx: Context, local: t.Any) -> dict[str, t.Any]:
    """Run the web server's stop command; one that fails because nothing runs is fine once the port is closed."""
    argv = params['stop_command']
    rc, out, err = ctx.run_command(argv)
    at = ctx.clock.time()  # the port is closed by now: when the L4's checks start failing, for an L4-checked VIP
    if rc == 0:
        return dict(rc=rc, at=at)
    polled = poll_until(lambda: _listening(params['port'], local), lambda listening: not listening, STOPPED_GRACE,
                        params['poll_interval'], ctx.clock)
    if not polled.reached:
        raise StepFailed(f"stop_command {argv} exited {rc} and port {params['port']} still listens {STOPPED_GRACE:g}s later: "
                         f"{(err or out).strip()[-500:]}", rc=rc, stderr=err, sessions=[], drained=False)
    return dict(rc=rc, stderr=err, at=at)


def _peers(sessions: list[dict[str, t.Any]]) -> str:
    """Sessions as a message names them: ``peer (state)``, comma-separated."""
    return ', '.join(f"{s['peer']} ({s['state']})" for s in sessions)


def _force(params: t.Mapping[str, t.Any], ctx: Context, scope: dict[str, t.Any], left: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The web server's hard stop, then the socket table until none of its client sessions is left; the sessions cut."""
    argv = params['force_command']
    rc, out, err = ctx.run_command(argv)
    if rc != 0:
        raise StepFailed(f"force_command {argv} exited {rc}: {(err or out).strip()[-500:]}", rc=rc, stderr=err, sessions=left, drained=False)
    after = _sockets.wait_for_drain(_sockets.read_sockets, threshold=0, timeout=STOPPED_GRACE, poll_interval=params['poll_interval'],
                                    clock=ctx.clock, **scope)
    if not after.drained:
        raise StepFailed(f"{len(after.sessions)} client session(s) remain on port {scope['port']} {STOPPED_GRACE:g}s after "
                         f"force_command {argv}: {_peers(after.sessions)}", sessions=after.sessions, cut_sessions=left, drained=False)
    return left


def _check_at_timeout(params: t.Mapping[str, t.Any]) -> None:
    force, command = params['at_timeout'] == AT_TIMEOUT_FORCE, params['force_command']
    if force and (params['port'] is None or not command):
        raise StepFailed(f"at_timeout: 'force' needs port and force_command (the web server's hard stop, an argv), "
                         f"got force_command {command!r} with port {params['port']!r}")
    if command is not None and not force:
        raise StepFailed(f"force_command: runs only with at_timeout 'force', got at_timeout {params['at_timeout']!r}")


def session_drain(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    profile = _profile(params)
    port = params['port']
    try:
        if port is not None:
            _sockets.validate_port(port)
        local = _sockets.validate_address(params['address'])
        _sockets.validate_exclude_sources(params['exclude_sources'])
        _sockets.validate_threshold(params['threshold'])
        seconds('timeout', params['timeout'], allow_zero=True)
    except OptionError as error:
        raise StepFailed(str(error)) from None
    counts_l4 = params['provider'] in _providers.SESSION_PROVIDERS
    if port is None and not counts_l4:
        raise StepFailed(f"port: needed to count the server's sessions, as provider {params['provider']!r} cannot count the L4's "
                         f"(only {', '.join(_providers.SESSION_PROVIDERS)} can)")
    if params['stop_command'] is not None and (port is None or not params['stop_command']):
        raise StepFailed(f"stop_command: needs port and a non-empty argv, got {params['stop_command']!r} with port {port!r}")
    _check_at_timeout(params)
    members = batch(params)
    provider = _build(params, profile) if counts_l4 else None
    scope = dict(port=port, address=params['address'], exclude_sources=params['exclude_sources'])
    result: dict[str, t.Any] = dict(changed=False, sessions=[], l4_sessions=None, drained=True, elapsed=0.0, waited=True, forced=False,
                                    cut_sessions=[])
    try:
        if ctx.check_mode:
            present = _sockets.client_sessions(_sockets.read_sockets(), **scope) if port is not None else []
            return dict(result, msg='check mode: the stop and the wait for drain were skipped', sessions=[s.as_session() for s in present],
                        drained=len(present) <= params['threshold'], waited=False)
        started = ctx.clock.monotonic()
        if params['stop_command']:
            result.update(changed=True, stopped=_stop(params, ctx, local))
        if port is not None:
            server = _sockets.wait_for_drain(_sockets.read_sockets, threshold=params['threshold'], timeout=params['timeout'],
                                             poll_interval=params['poll_interval'], clock=ctx.clock, **scope)
            result.update(sessions=server.sessions, drained=server.drained, elapsed=server.elapsed)
            if not server.drained and params['at_timeout'] == AT_TIMEOUT_FORCE:
                cut = _force(params, ctx, scope, server.sessions)
                result.update(changed=True, forced=True, cut_sessions=cut, sessions=[], drained=True, elapsed=ctx.clock.monotonic() - started)
                ctx.warn(f"at_timeout force: {len(cut)} client session(s) still open on port {port} after {params['timeout']:g}s were cut "
                         f"by {params['force_command']}: {', '.join(c['peer'] for c in cut)}")
            elif not server.drained:
                raise StepFailed(f"{len(server.sessions)} client session(s) remain on port {port} after {params['timeout']:g}s: "
                                 f"{_peers(server.sessions)}", **result)
        if provider is not None:
            # The server's FINs clear the L4's sessions; where the L4 can count them, see it agree.
            left = max(0.0, params['timeout'] - (ctx.clock.monotonic() - started))
            if result['forced']:  # the cut came at the timeout: give the L4 a moment to see it
                left = STOPPED_GRACE
            polled = poll_until(lambda: provider.session_counts(members), lambda counts: max(counts.values()) <= params['threshold'],
                                left, params['poll_interval'], ctx.clock)
            counts = polled.last
            result.update(l4_sessions=counts[members[0]] if len(members) == 1 else sum(counts.values()), l4_sessions_by_member=counts,
                          elapsed=ctx.clock.monotonic() - started)
            if not polled.reached:
                holding = ', '.join(f'{member} {count}' for member, count in counts.items() if count > params['threshold'])
                result['drained'] = False
                raise StepFailed(f"the L4 still holds sessions after {params['timeout']:g}s: {holding}", **result)
    except _providers.ProviderError as error:
        raise StepFailed(str(error), **result) from None
    except (OSError, _sockets.SocketTableError) as error:
        raise StepFailed(f'cannot read the socket table: {error}', **result) from None
    return result
