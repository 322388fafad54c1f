# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The L4 steps of a rollout, for one member or a whole batch: wait for the L4, read and set admin states.

Internal to the l4vip.rollout collection; not a public API.

Each step is one function of its validated options that returns the result or raises StepFailed.
The module of the same name runs it on the host its task runs on; the module's action plugin runs
it in the controller's own process when the task runs on the controller, so an L4 step there costs
no module run. The argument specs live here so that both validate alike. The drain, which also
reads the server's socket table, is in ``_session_drain.py``; the capacity guard, with its claims,
in ``_guard.py``.

A step asks the provider what it can do (``Capability``), never which provider it is.
"""

from __future__ import annotations

import dataclasses
import socket
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError, number, seconds
from ansible_collections.l4vip.rollout.plugins.module_utils._process import run_argv
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Capability
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import (
    SYSTEM_CLOCK, Clock, Profile, ProfileError, Window, default_timeout, parse_profile, poll_until, remaining_wait,
    transition_window)


class StepFailed(Exception):
    """A step could not do what it was asked; ``detail`` goes into the failed result."""

    def __init__(self, msg: str, **detail: t.Any) -> None:
        super().__init__(msg)
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class ClaimsPlace:
    """Where the capacity guard keeps claims when neither the L4 nor ``claims_dir`` holds them: a directory of the host it runs on."""

    directory: str = '~/.ansible/l4vip.rollout/claims'
    host: str = dataclasses.field(default_factory=socket.gethostname)
    # The controller (the action plugin in its process): claims there are this controller's alone, and the run says so.
    controller_only: bool = False


@dataclasses.dataclass
class Context:
    """What a step needs from the task around it."""

    check_mode: bool = False
    diff: bool = False
    clock: Clock = SYSTEM_CLOCK
    warnings: list[str] = dataclasses.field(default_factory=list)
    # Runs an argv on the host the step runs on: (rc, stdout, stderr). Modules pass AnsibleModule.run_command.
    run_command: t.Callable[[list[str]], tuple[int, str, str]] = run_argv
    claims: ClaimsPlace = dataclasses.field(default_factory=ClaimsPlace)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def run_in_module(module: t.Any, step: t.Callable[[t.Mapping[str, t.Any], Context], dict[str, t.Any]]) -> None:
    """Run ``step`` as a module: its warnings as module warnings, StepFailed as fail_json with its detail."""
    ctx = Context(check_mode=module.check_mode, diff=module._diff, run_command=module.run_command)
    try:
        result = step(module.params, ctx)
    except StepFailed as error:
        for warning in ctx.warnings:
            module.warn(warning)
        module.fail_json(msg=str(error), **error.detail)
    for warning in ctx.warnings:
        module.warn(warning)
    module.exit_json(**result)


# --- shared option handling -----------------------------------------------------------------

PROVIDER_REQUIRED_IF = _providers.PROVIDER_REQUIRED_IF


def checked_profile(params: t.Mapping[str, t.Any]) -> Profile:
    """The profile, once the options every step refuses alike (whether it uses them or not) are checked."""
    if params.get('poll_interval') is not None:
        try:
            seconds('poll_interval', params['poll_interval'])
        except OptionError as error:
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


def provider_class(params: t.Mapping[str, t.Any], *needs: Capability) -> type[_providers.Provider]:
    """The class of the provider the options name, once it is known to have every capability the step ``needs``.

    A batch (several ``members``) also needs Capability.BATCHES; the error then names the providers that have it all.
    """
    try:
        cls = _providers.provider_class_for(params)
        for capability in needs:
            if not cls.can(capability):
                raise cls.refusal(capability)
    except _providers.ProviderError as error:
        raise StepFailed(str(error)) from None
    if len(batch(params)) > 1 and not cls.can(Capability.BATCHES):
        raise StepFailed(f"members: provider {cls.name!r} follows one member per task; give member instead, "
                         f"or use one of {', '.join(_providers.providers_that_can(*needs, Capability.BATCHES))}")
    return cls


def build(params: t.Mapping[str, t.Any], profile: Profile, *needs: Capability, since: float | None = None,
          clock: Clock = SYSTEM_CLOCK) -> _providers.Provider:
    """The provider the options ask for, refused with a clear error when it cannot do what the step ``needs``."""
    provider_class(params, *needs)
    return _providers.build_provider(params, profile, since, clock)


# --- member_wait --------------------------------------------------------------------------------

def member_wait_spec() -> dict[str, t.Any]:
    spec = _providers.provider_argument_spec()
    spec.update(
        state=dict(type='str', choices=['down', 'up'], required=True),
        since=dict(type='float'),
        failure=dict(type='str', choices=['fast', 'timeout'], default='fast'),
        timeout=dict(type='float'),
        fallback=dict(type='str', choices=['fail', _providers.TimerProvider.name], default='fail'),
    )
    return spec


def follow(provider: _providers.Provider, members: list[str], bound: bool, timeout: float, poll_interval: float,
           clock: Clock = SYSTEM_CLOCK) -> tuple[dict[str, dict[str, t.Any]], int, float]:
    """Poll the L4 until every member is bound (``bound`` True) or out of the binding list (False), at most ``timeout``
    seconds; each member is asked about until it gets there, and its own time of arrival kept. Returns per member what
    was seen, the polls, elapsed."""
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


def _wait_timer(window: Window, since: float | None, clock: Clock) -> None:
    """What the timer provider (and the fallback to it) waits: the window's end, less the time gone since ``since``."""
    clock.sleep(remaining_wait(window.high, since, clock))


def member_wait(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    """Wait until the L4 sees every member of the batch ``state``; ``ended_at`` says when, for timelines."""
    try:
        return dict(_member_wait(params, ctx), ended_at=ctx.clock.time())
    except StepFailed as error:
        error.detail['ended_at'] = ctx.clock.time()
        raise


def transition_time(wait: t.Any, started: t.Any) -> float | None:
    """When a member_wait result's transition happened: the L4's own time (``l4_since``) when it tells one after
    ``started``, else when the wait saw it (``ended_at``); None when the wait never ran."""
    if not isinstance(wait, t.Mapping) or wait.get('ended_at') is None:
        return None
    since, begin = number(wait.get('l4_since')), number(started)
    if since is not None and (begin is None or since >= begin):
        return since
    return number(wait.get('ended_at'))


def _member_wait(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    profile = checked_profile(params)
    if params['timeout'] is not None:
        try:
            seconds('timeout', params['timeout'])
        except OptionError as error:
            raise StepFailed(str(error)) from None
    members = batch(params)
    state, since, clock = params['state'], params['since'], ctx.clock
    window = transition_window(profile, state, params['failure'])
    timeout = params['timeout'] or default_timeout(window, profile)
    result: dict[str, t.Any] = dict(changed=False, timer_wait=window.high, window=dict(low=window.low, high=window.high),
                                    fallback_used=False, waited=True, polls=0)

    def everyone(**values: t.Any) -> dict[str, dict[str, t.Any]]:
        return {member: dict(dict(reached=True, ended_at=clock.time(), l4_since=None), **values) for member in members}

    if ctx.check_mode:
        unasked = everyone(reached=False, ended_at=None, bound=None, observed='not asked (check mode)')
        return dict(result, msg=f'check mode: the wait for {state} was skipped', elapsed=0.0, waited=False, members=unasked,
                    **_aggregate(unasked))
    started = clock.monotonic()
    try:
        provider = build(params, profile, since=since, clock=clock)
        if not provider.can(Capability.OBSERVE):
            # Nothing to ask (the timer): the wait is the timing model's worst case, counted from `since`.
            _wait_timer(window, since, clock)
            assumed = everyone(bound=state == 'up', observed=f"assumed {state}: the timing model's worst case has passed")
            return dict(result, elapsed=clock.monotonic() - started, members=assumed, **_aggregate(assumed))
        report, polls, elapsed = follow(provider, members, state == 'up', timeout, params['poll_interval'], clock)
    except _providers.L4Unreachable as error:
        if params['fallback'] != _providers.TimerProvider.name:
            raise StepFailed(str(error), endpoint=error.endpoint, elapsed=clock.monotonic() - started, **result) from None
        ctx.warn(f"{error}; falling back to the timer: waiting {window.high:g}s, the timing model's worst case")
        _wait_timer(window, since, clock)
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

ADMIN_STATES = ('enabled', 'drain', 'disabled')


def member_admin_spec() -> dict[str, t.Any]:
    spec = _providers.provider_argument_spec()
    spec.update(
        state=dict(type='str', choices=list(ADMIN_STATES), required=True),
        admin_request=dict(type='dict', options=dict(method=dict(type='str', default='PATCH'), url=dict(type='str'), body=dict(type='raw'))),
        admin_values=dict(type='dict'),
    )
    return spec


# With http, member_admin writes with admin_request (or its preset's request) and reads (when it can) with query.
MEMBER_ADMIN_REQUIRED_IF = _providers.PROVIDER_REQUIRED_IF


def member_admin(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    profile = checked_profile(params)
    wanted = params['state']
    provider_class(params, Capability.ADMIN)
    if params['provider'] == _providers.HttpProvider.name and not params.get('preset') and not params['admin_request']:
        raise StepFailed('admin_request: needed with provider http (the request that sets the admin state), unless a preset gives it')
    if params['admin_values'] is not None and not params['query']:
        raise StepFailed('admin_values: needs query, the JMESPath expression that reads the admin state')
    unknown = sorted(set(params['admin_values'] or {}) - set(ADMIN_STATES))
    if unknown:
        raise StepFailed(f"admin_values: {unknown[0]!r} is not an admin state; use {', '.join(ADMIN_STATES)}")
    members = batch(params)
    report: dict[str, dict[str, t.Any]] = {}
    try:
        for member, provider in build(params, profile, Capability.ADMIN, clock=ctx.clock).for_members(members):
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
