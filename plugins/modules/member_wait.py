#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: member_wait
short_description: Wait until the L4 has marked a member down or bound it again
version_added: 0.1.0
description:
  - Waits until the L4 in front of a web server sees the member O(state=down) (out of the binding list, no new
    connections) or O(state=up) (bound again), asking the L4 itself where it can be asked.
  - With O(provider=timer) nothing is asked; the module waits the timing model's worst case for O(profile) (RV(timer_wait)),
    less the time already gone since O(since) - the "wait 20 seconds" of a 10 s interval and one retry, computed from the
    profile instead of guessed.
  - Down is about new connections only. Sessions the L4 already forwards to the member stay until the web server
    closes them; use M(l4vip.rollout.session_drain) for those.
  - With O(members) one task follows a whole batch - each poll asks the L4 about every member that has not got there
    yet, in one request - and returns each member's own result under RV(members); the task fails when any member is late,
    naming it.
  - Runs inside the controller's process when the task runs on the controller (no module run); anywhere else, as a
    module on that host.
  - In check mode the wait is skipped and the module says so.
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
    platforms: posix
options:
  state:
    description:
      - V(down) waits until the member takes no new connections (health down, or drained or disabled by an admin).
      - V(up) waits until it is bound again.
    type: str
    choices: [down, up]
    required: true
  since:
    description:
      - When the member started failing (O(state=down)) or could first pass a check (O(state=up)), as epoch seconds,
        for example C({{ ansible_facts.date_time.epoch }}) or the C(changed_at) of an earlier task.
      - The V(timer) provider waits only what is left of RV(timer_wait); V(access_log) counts only checks answered since then
        (the start of the task when not given).
    type: float
  failure:
    description:
      - How the member fails its checks, for the V(timer) wait. V(fast) for a 404 or a refused connection; V(timeout)
        when checks get no answer, which the L4 learns only O(profile.check_timeout) later.
    type: str
    choices: [fast, timeout]
    default: fast
  timeout:
    description:
      - Seconds to wait for the L4 before failing with what it last said. By default the timing model's worst case plus
        one O(profile.interval).
    type: float
  fallback:
    description:
      - What to do when the L4 cannot be reached. V(fail) fails naming the endpoint and the error. V(timer) warns and
        waits the timing model's worst case (RV(timer_wait)) instead.
    type: str
    choices: [fail, timer]
    default: fail
  release_claims:
    description:
      - With O(state=up), release this rollout's claims (see M(l4vip.rollout.capacity_guard)) of the members the L4 has
        bound again, in the same step - on slots the member's slot is free the moment it is back. A member that is late
        keeps its claim.
      - The claims are looked for where the capacity guard keeps them - O(claims_dir), the L4 where its provider can hold
        them, or a directory of the host the task runs on - so run the task where the guard runs.
    type: bool
    default: false
  claims_dir:
    description:
      - With O(release_claims), the directory the capacity guard keeps the pool's claims in - the capacity guard's C(claims_dir), when it was given one.
    type: path
  owner:
    description:
      - With O(release_claims), the rollout whose claims to release - filled in on the controller by the module's action
        plugin, as for the capacity guard; give it only to act for another rollout.
    type: dict
notes:
  - With V(access_log), the member counts as down once the web server has answered O(profile.retry) + 1 health checks
    in a row with a failure (the L4 has then seen them all), and as up after O(profile.rise) passing answers.
seealso:
  - module: l4vip.rollout.session_drain
  - module: l4vip.rollout.member_admin
'''

EXAMPLES = r'''
- name: Wait until HAProxy has marked web1 down
  l4vip.rollout.member_wait:
    state: down
    provider: haproxy
    endpoint: /run/haproxy/admin.sock
    pool: web
    member: web1
    profile:
      interval: 2
      retry: 2

- name: Wait until F5 BIG-IP sees the member down (iControl REST)
  l4vip.rollout.member_wait:
    state: down
    provider: http
    endpoint: https://bigip.example.com/mgmt/tm/ltm/pool/~Common~web/members/~Common~web1:80
    headers:
      X-F5-Auth-Token: "{{ f5_token }}"
    query: state
    down_values: [down, user-down]
    up_values: [up]

- name: Wait until NetScaler sees the service group member down (NITRO)
  l4vip.rollout.member_wait:
    state: down
    provider: http
    endpoint: https://adc.example.com/nitro/v1/config/servicegroup_servicegroupmember_binding/web?filter=servername:web1
    headers:
      X-NITRO-USER: "{{ nitro_user }}"
      X-NITRO-PASS: "{{ nitro_password }}"
    query: servicegroup_servicegroupmember_binding[0].svrstate
    down_values: [DOWN, OUT OF SERVICE]
    up_values: [UP]

- name: No API to ask - wait the timing model's worst case (20 s for a 10 s interval and one retry)
  l4vip.rollout.member_wait:
    state: down
    provider: timer
    since: "{{ health_check_out.changed_at }}"
'''

RETURN = r'''
elapsed:
  description: Seconds the module waited.
  type: float
  returned: always
  sample: 13.6
msg:
  description: Why nothing was waited for (check mode); a failure's message names the late members and what the L4 last said.
  type: str
  returned: in check mode
  sample: "check mode: the wait for down was skipped"
observed:
  description: What the L4 last said, in its own words (for V(timer), what its wait assumes).
  type: str
  returned: always
  sample: STOPPED
bound:
  description:
    - Whether the member took new connections at the end; null when the L4 could not say (or, for a batch, when its members
      differ).
  type: bool
  returned: always
  sample: false
polls:
  description: How many times the L4 was asked.
  type: int
  returned: always
  sample: 137
timer_wait:
  description:
    - Seconds after O(since) the V(timer) provider waits (and O(fallback=timer) when the L4 cannot be reached) - the
      timing model's worst case for this transition and O(profile), RV(window.high).
  type: float
  returned: always
  sample: 20.0
released:
  description: With O(release_claims), the members whose claims this rollout released (those the L4 bound again).
  type: list
  elements: str
  returned: with O(release_claims)
  sample: [web1]
fallback_used:
  description: Whether the L4 could not be reached and RV(timer_wait) was waited instead.
  type: bool
  returned: always
  sample: false
l4_since:
  description:
    - When the L4 itself says the member's health state last changed, in seconds since the epoch - the L4's own time of
      the transition, free of the module's start-up and polling. Null when the provider cannot tell (all but V(emulator)).
  type: float
  returned: when the L4 was asked
  sample: 1795526412.31
window:
  description:
    - The timing model's window for the transition, in seconds after O(since) - the L4 acts after RV(window.low) and
      at the latest at RV(window.high) (RV(timer_wait)). A report compares the L4's real detection time with it.
  type: dict
  returned: always
  sample: {"low": 10.0, "high": 20.0}
  contains:
    low:
      description: The transition comes later than this.
      type: float
      sample: 10.0
    high:
      description: The transition comes at the latest at this.
      type: float
      sample: 20.0
ended_at:
  description: When the wait ended, in epoch seconds, for timelines.
  type: float
  returned: always
  sample: 1795963441.27
waited:
  description: Whether a wait happened; false in check mode, where it is skipped.
  type: bool
  returned: always
  sample: true
members:
  description:
    - Each member's own outcome, by name (O(member), or each of O(members)).
  type: dict
  returned: always
  contains:
    reached:
      description: Whether the member got to O(state) within O(timeout).
      type: bool
    ended_at:
      description: When the wait first saw it there (epoch seconds); null when it did not get there.
      type: float
    bound:
      description: Whether it took new connections when last seen.
      type: bool
    observed:
      description: What the L4 last said of it.
      type: str
    l4_since:
      description: The L4's own time of its last health change, where the provider tells it.
      type: float
  sample: {"web1": {"reached": true, "ended_at": 1795963441.27, "bound": false, "observed": "STOPPED", "l4_since": null}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _guard, _l4_steps, _providers


def main() -> None:
    module = AnsibleModule(argument_spec=_guard.member_wait_spec(), required_if=_providers.PROVIDER_REQUIRED_IF, supports_check_mode=True)
    _l4_steps.run_in_module(module, _guard.member_wait)


if __name__ == '__main__':
    main()
