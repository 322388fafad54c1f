# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The session_drain step: stop the web server, then wait until no client connection is left on it, and no session on the L4.

Internal to the l4vip.rollout collection; not a public API.

The server side is read from the socket table of the host the step runs on (``_sockets.py``); the L4 side
is asked of the providers that can count a member's sessions (Capability.SESSIONS). Like the other L4
steps (``_l4_steps.py``, whose option handling it shares), the module and the in-process action both call it.
The server's connections are reported under the module's public names ``sessions`` and ``cut_sessions``.
"""

from __future__ import annotations

import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _providers, _sockets
from ansible_collections.l4vip.rollout.plugins.module_utils._l4_steps import (
    Context, StepFailed, batch, build, checked_profile, provider_class)
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError, seconds
from ansible_collections.l4vip.rollout.plugins.module_utils._providers import Capability
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import poll_until


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


# What a drain does when client connections remain at its timeout: fail (the member stays out,
# nothing is cut), or force - run the web server's hard stop and report the connections it cut.
AT_TIMEOUT_FAIL, AT_TIMEOUT_FORCE = 'fail', 'force'
AT_TIMEOUT = (AT_TIMEOUT_FAIL, AT_TIMEOUT_FORCE)


# How long a failed stop command may take to leave the port closed (it may have been stopping already),
# and how long the connections a force_command cut may take to leave the socket table.
STOPPED_GRACE = 10.0


def _port_sockets(port: int) -> t.Callable[[], list[_sockets.Socket]]:
    """A read of the socket table that decodes the service port's lines alone: the drain reads it every poll."""
    return lambda: _sockets.read_sockets(local_port=port)


def _listening(port: int, address: t.Any) -> bool:
    return any(s.state == 'LISTEN' and s.local_port == port and (address is None or s.local_address.is_unspecified or s.local_address == address)
               for s in _sockets.read_sockets(local_port=port))


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


def _peers(connections: list[dict[str, t.Any]]) -> str:
    """Connections as a message names them: ``peer (state)``, comma-separated."""
    return ', '.join(f"{c['peer']} ({c['state']})" for c in connections)


def _force(params: t.Mapping[str, t.Any], ctx: Context, scope: dict[str, t.Any], left: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The web server's hard stop, then the socket table until none of its client connections is left; the connections cut."""
    argv = params['force_command']
    rc, out, err = ctx.run_command(argv)
    if rc != 0:
        raise StepFailed(f"force_command {argv} exited {rc}: {(err or out).strip()[-500:]}", rc=rc, stderr=err, sessions=left, drained=False)
    after = _sockets.wait_for_drain(_port_sockets(scope['port']), threshold=0, timeout=STOPPED_GRACE, poll_interval=params['poll_interval'],
                                    clock=ctx.clock, **scope)
    if not after.drained:
        raise StepFailed(f"{len(after.connections)} client connection(s) remain on port {scope['port']} {STOPPED_GRACE:g}s after "
                         f"force_command {argv}: {_peers(after.connections)}", sessions=after.connections, cut_sessions=left, drained=False)
    return left


def _check_at_timeout(params: t.Mapping[str, t.Any]) -> None:
    force, command = params['at_timeout'] == AT_TIMEOUT_FORCE, params['force_command']
    if force and (params['port'] is None or not command):
        raise StepFailed(f"at_timeout: 'force' needs port and force_command (the web server's hard stop, an argv), "
                         f"got force_command {command!r} with port {params['port']!r}")
    if command is not None and not force:
        raise StepFailed(f"force_command: runs only with at_timeout 'force', got at_timeout {params['at_timeout']!r}")


def session_drain(params: t.Mapping[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    profile = checked_profile(params)
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
    counts_l4 = provider_class(dict(params, members=None)).can(Capability.SESSIONS)
    if port is None and not counts_l4:
        raise StepFailed(f"port: needed to count the server's connections, as provider {params['provider']!r} cannot count the L4's "
                         f"(only {', '.join(_providers.providers_that_can(Capability.SESSIONS))} can)")
    if params['stop_command'] is not None and (port is None or not params['stop_command']):
        raise StepFailed(f"stop_command: needs port and a non-empty argv, got {params['stop_command']!r} with port {port!r}")
    _check_at_timeout(params)
    members = batch(params)
    provider = build(params, profile, Capability.SESSIONS, clock=ctx.clock) if counts_l4 else None
    scope = dict(port=port, address=params['address'], exclude_sources=params['exclude_sources'])
    result: dict[str, t.Any] = dict(changed=False, sessions=[], l4_sessions=None, drained=True, elapsed=0.0, waited=True, forced=False,
                                    cut_sessions=[])
    try:
        if ctx.check_mode:
            present = _sockets.client_sessions(_sockets.read_sockets(local_port=port), **scope) if port is not None else []
            return dict(result, msg='check mode: the stop and the wait for drain were skipped', sessions=[s.as_session() for s in present],
                        drained=len(present) <= params['threshold'], waited=False)
        started = ctx.clock.monotonic()
        if params['stop_command']:
            result.update(changed=True, stopped=_stop(params, ctx, local))
        if port is not None:
            server = _sockets.wait_for_drain(_port_sockets(port), threshold=params['threshold'], timeout=params['timeout'],
                                             poll_interval=params['poll_interval'], clock=ctx.clock, **scope)
            result.update(sessions=server.connections, drained=server.drained, elapsed=server.elapsed)
            if not server.drained and params['at_timeout'] == AT_TIMEOUT_FORCE:
                cut = _force(params, ctx, scope, server.connections)
                result.update(changed=True, forced=True, cut_sessions=cut, sessions=[], drained=True, elapsed=ctx.clock.monotonic() - started)
                ctx.warn(f"at_timeout force: {len(cut)} client connection(s) still open on port {port} after {params['timeout']:g}s were cut "
                         f"by {params['force_command']}: {', '.join(c['peer'] for c in cut)}")
            elif not server.drained:
                raise StepFailed(f"{len(server.connections)} client connection(s) remain on port {port} after {params['timeout']:g}s: "
                                 f"{_peers(server.connections)}", **result)
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
