#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: session_drain
short_description: Verify that no client sessions remain on a member
version_added: 0.1.0
description:
  - Out of the binding list is not the same as no sessions left - the L4 keeps forwarding packets of known sessions to a
    member marked down until the web server closes them. This module waits, up to O(timeout), until at most O(threshold)
    client sessions remain, and fails naming each one that is left.
  - Server side, from the kernel's own socket table (C(/proc/net/tcp) and C(/proc/net/tcp6); no C(ss) or C(netstat) needed) -
    connections to O(port) (and O(address)) in a state that still carries client traffic (C(ESTABLISHED), C(SYN_RECV),
    C(CLOSE_WAIT)). A connection the server has already closed (C(FIN_WAIT), C(TIME_WAIT)) no longer counts; its FIN has
    cleared the L4's session.
  - L4 side, through the providers that can count a member's sessions (V(emulator), V(haproxy)), after the server side has
    drained. With the other providers only the server side is checked.
  - In check mode the wait is skipped; the sessions present now are still reported.
author:
  - l4vip.rollout maintainers (@l4vip)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - l4vip.rollout.provider
  - l4vip.rollout.profile
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  port:
    description:
      - The web server's service port, whose client sessions must drain.
    type: int
    required: true
  address:
    description:
      - Only sessions to this local address (for example the VIP held on C(lo:0) in direct server return). All addresses
        when not given.
    type: str
  exclude_sources:
    description:
      - Peers that are not clients and do not count, as IP addresses or CIDR networks - the L4's health-check addresses,
        a monitoring host.
    type: list
    elements: str
    default: []
  threshold:
    description:
      - How many sessions may remain for the member to count as drained.
    type: int
    default: 0
  timeout:
    description:
      - Seconds to wait before failing with the sessions that remain.
    type: float
    default: 60.0
seealso:
  - module: l4vip.rollout.member_wait
'''

EXAMPLES = r'''
- name: After stopping nginx, no client may still hold a connection to port 80
  l4vip.rollout.session_drain:
    port: 80
    exclude_sources: [10.0.0.2/31]  # the L4's self IPs
    timeout: 30

- name: And HAProxy must agree
  l4vip.rollout.session_drain:
    port: 80
    provider: haproxy
    endpoint: /run/haproxy/admin.sock
    pool: web
    member: web1
'''

RETURN = r'''
sessions:
  description: The client sessions that remain on the server (also when the module fails), each with its peer, local end and state.
  type: list
  elements: dict
  returned: always
  sample: [{"peer": "203.0.113.7:51234", "local": "10.0.0.11:80", "state": "ESTABLISHED"}]
l4_sessions:
  description: The sessions the L4 still holds for the member; null when the provider cannot count them.
  type: int
  returned: always
  sample: 0
drained:
  description: Whether at most O(threshold) sessions remained on both sides.
  type: bool
  returned: always
  sample: true
elapsed:
  description: Seconds waited.
  type: float
  returned: always
  sample: 0.4
waited:
  description: Whether a wait happened; false in check mode.
  type: bool
  returned: always
  sample: true
'''

import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _providers, _sockets
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import SYSTEM_CLOCK, Clock, ProfileError, parse_profile, poll_until


class DrainFailed(Exception):
    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.details = details


def l4_session_count(provider: _providers.Provider) -> int | None:
    if isinstance(provider, _providers.HAProxyProvider):
        return provider.sessions()
    if isinstance(provider, _providers.EmulatorProvider):
        return provider.observe().sessions
    return None


def drain(module: AnsibleModule, clock: Clock = SYSTEM_CLOCK) -> dict[str, t.Any]:
    params = module.params
    profile = parse_profile(params['profile'])
    provider = _providers.build_provider(params, profile)
    scope = dict(port=params['port'], address=params['address'], exclude_sources=params['exclude_sources'])
    if module.check_mode:
        present = _sockets.client_sessions(_sockets.read_sockets(), **scope)
        return dict(msg='check mode: the wait for drain was skipped', sessions=[s.as_session() for s in present],
                    l4_sessions=None, drained=len(present) <= params['threshold'], elapsed=0.0, waited=False)
    started = clock.monotonic()
    server = _sockets.wait_for_drain(_sockets.read_sockets, threshold=params['threshold'], timeout=params['timeout'],
                                     poll_interval=params['poll_interval'], clock=clock, **scope)
    result = dict(sessions=server.sessions, l4_sessions=None, drained=server.drained, elapsed=server.elapsed, waited=True)
    if not server.drained:
        peers = ', '.join(f"{s['peer']} ({s['state']})" for s in server.sessions)
        raise DrainFailed(f"{len(server.sessions)} client session(s) remain on port {params['port']} after {params['timeout']:g}s: {peers}",
                          **result)
    left = max(0.0, params['timeout'] - server.elapsed)
    # The server's FINs clear the L4's sessions; where the L4 can count them, see it agree.
    count = poll_until(lambda: l4_session_count(provider), lambda seen: seen is None or seen <= params['threshold'],
                       left, params['poll_interval'], clock).last
    result.update(l4_sessions=count, elapsed=clock.monotonic() - started)
    if count is not None and count > params['threshold']:
        result['drained'] = False
        raise DrainFailed(f"the server side drained, but the L4 still holds {count} session(s) for {params['member']} "
                          f"after {params['timeout']:g}s", **result)
    return result


def main() -> None:
    argument_spec = _providers.provider_argument_spec()
    argument_spec.update(
        port=dict(type='int', required=True),
        address=dict(type='str'),
        exclude_sources=dict(type='list', elements='str', default=[]),
        threshold=dict(type='int', default=0),
        timeout=dict(type='float', default=60.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, required_if=_providers.PROVIDER_REQUIRED_IF, supports_check_mode=True)
    params = module.params
    try:
        # Every option is checked before the first look at the table, so a bad one never costs a wait.
        _sockets.validate_port(params['port'])
        _sockets.validate_address(params['address'])
        _sockets.validate_exclude_sources(params['exclude_sources'])
        _sockets.validate_threshold(params['threshold'])
        _sockets.validate_seconds(params['timeout'], 'timeout', allow_zero=True)
        _sockets.validate_seconds(params['poll_interval'], 'poll_interval', allow_zero=False)
        result = drain(module)
    except (_sockets.OptionError, ProfileError) as error:
        module.fail_json(msg=str(error))
    except DrainFailed as error:
        module.fail_json(msg=str(error), **error.details)
    except _providers.ProviderError as error:
        module.fail_json(msg=str(error))
    except (OSError, _sockets.SocketTableError) as error:
        module.fail_json(msg=f'cannot read the socket table: {error}')
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
