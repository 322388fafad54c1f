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
  - L4 side, through the providers that can count a member's sessions (V(emulator), V(haproxy), V(ipvs)), after the server side has
    drained. With the other providers only the server side is checked.
  - In check mode the stop and the wait are skipped; the sessions present now are still reported.
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
      - The web server's service port, whose client sessions must drain, on the host the module runs on.
      - Without it only the L4's side is checked, for O(member) or each of O(members) - which needs a provider that
        counts the L4's sessions (V(emulator), V(haproxy)).
    type: int
  stop_command:
    description:
      - The web server's graceful stop, as an argv (no shell), run first - so that the stop and the drain that proves it
        are one module run. A command that fails counts as stopped once nothing listens on O(port) any more (nothing
        was running), and fails the task otherwise, with its output.
      - Needs O(port).
    type: list
    elements: str
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
      - Seconds to wait for the sessions to go; what happens then is O(at_timeout)'s.
    type: float
    default: 60.0
  at_timeout:
    description:
      - What to do when client sessions remain on the server at O(timeout).
      - V(fail) fails the task with the sessions that remain and cuts nothing; the member stays out and its open
        responses go on.
      - V(force) runs O(force_command), the web server's hard stop, then waits until none of its client sessions is left
        (at most 10 seconds) and returns the sessions it cut in RV(cut_sessions). Every request still in flight on a cut
        connection fails for its client, so this trades those requests for a rollout that goes on; the default stays
        V(fail).
    type: str
    choices: [fail, force]
    default: fail
  force_command:
    description:
      - The web server's hard stop, as an argv (no shell), for example C([/usr/sbin/nginx, -s, stop]) (nginx's fast
        shutdown) or C([systemctl, kill, --signal=SIGKILL, nginx]).
      - Needed by, and only taken with, O(at_timeout=force); needs O(port).
    type: list
    elements: str
seealso:
  - module: l4vip.rollout.member_wait
'''

EXAMPLES = r'''
- name: Stop nginx gracefully; whatever still holds a response open after 120 s is cut, and reported
  l4vip.rollout.session_drain:
    port: 80
    stop_command: [/usr/sbin/nginx, -s, quit]
    timeout: 120
    at_timeout: force
    force_command: [/usr/sbin/nginx, -s, stop]
  register: drain

- name: After stopping nginx, no client may still hold a connection to port 80
  l4vip.rollout.session_drain:
    port: 80
    exclude_sources: [10.0.0.2/31]  # the L4's self IPs
    timeout: 30

- name: Stop nginx gracefully and see its clients go, in one module run
  l4vip.rollout.session_drain:
    port: 80
    stop_command: [/usr/sbin/nginx, -s, quit]

- name: And HAProxy must agree, for the whole batch (where the HAProxy socket is)
  l4vip.rollout.session_drain:
    provider: haproxy
    endpoint: /run/haproxy/admin.sock
    pool: web
    members: [web1, web2]
  delegate_to: localhost
'''

RETURN = r'''
msg:
  description: That the stop and the wait were skipped (check mode).
  type: str
  returned: in check mode
  sample: "check mode: the stop and the wait for drain were skipped"
sessions:
  description:
    - The client sessions that remain on the server (also when the module fails), each with its peer, local end, state
      and C(open_for), the seconds this task saw it open (the socket table keeps no age, so it was open at least that
      long).
  type: list
  elements: dict
  returned: always
  sample: [{"peer": "203.0.113.7:51234", "local": "10.0.0.11:80", "state": "ESTABLISHED", "open_for": 12.5}]
forced:
  description: Whether O(force_command) ran because sessions remained at O(timeout).
  type: bool
  returned: always
  sample: false
cut_sessions:
  description:
    - The client sessions O(force_command) cut, as in RV(sessions) at the moment of the cut; empty when nothing was cut.
    - Each one's client saw its request in flight fail.
  type: list
  elements: dict
  returned: always
  sample: [{"peer": "203.0.113.9:40022", "local": "10.0.0.11:80", "state": "ESTABLISHED", "open_for": 120.0}]
l4_sessions:
  description: The sessions the L4 still holds for the member (for a batch, all its members'); null when the provider cannot count them.
  type: int
  returned: always
  sample: 0
l4_sessions_by_member:
  description: The sessions the L4 still holds, per member.
  type: dict
  returned: when the provider counts the L4's sessions
  sample: {"web1": 0, "web2": 0}
stopped:
  description:
    - The stop command's exit code (and its error output when it failed but nothing listened any more), and C(at), when
      it returned (epoch seconds) - for an L4 that checks with a TCP connect, when its checks started to fail.
  type: dict
  returned: when O(stop_command) ran
  sample: {"rc": 0, "at": 1796057627.57}
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _l4_steps, _providers, _session_drain


def main() -> None:
    module = AnsibleModule(argument_spec=_session_drain.session_drain_spec(), required_if=_providers.PROVIDER_REQUIRED_IF, supports_check_mode=True)
    _l4_steps.run_in_module(module, _session_drain.session_drain)


if __name__ == '__main__':
    main()
