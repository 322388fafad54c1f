#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: capacity_guard
short_description: Refuse to take members out of a pool when too few would stay bound
version_added: 0.1.0
description:
  - Asks the L4 which members of O(pool) are bound now, and fails when taking O(leaving) out would leave fewer than
    O(min_bound) of them. The count comes from the L4, so a member that is already out (a half-done earlier run, a
    concurrent rollout, a dead server) counts as out.
  - Changes nothing on the L4's traffic. With O(claims) it claims the leaving members for this rollout, so that every
    other rollout of the pool counts them as out and none works on them at the same time (see O(claims)).
  - Only the providers that can list a pool (V(emulator), V(haproxy), V(ipvs), V(aws_elbv2)) can be asked. With the others the
    guard counts
    O(pool_members) as bound, less the members other rollouts claim; without O(pool_members) it returns
    RV(checked=false) and a warning, and does not fail (it still claims, with O(claims)).
  - Reports C(changed) only when it claims a member anew, releases a claim or marks one left out; a re-run whose claims
    are already held renews them and reports no change.
  - Runs inside the controller's process when the task runs on the controller; anywhere else, as a module on that host.
author:
  - l4vip.rollout maintainers (@l4vip)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - l4vip.rollout.provider
  - l4vip.rollout.profile
attributes:
  check_mode:
    support: full
    details: Judges as a real run does, other rollouts' claims included, and writes, removes or marks no claim; RV(claimed),
      RV(released) and RV(left_out) name the claims a real run would change.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  leaving:
    description:
      - The members about to go out of O(pool) together (the batch), as the L4 names them. O(members), else O(member), when
        not given.
    type: list
    elements: str
  min_bound:
    description:
      - How many members of O(pool) must stay bound (take new connections) once O(leaving) is out - a count of members.
    type: int
    default: 1
  pool_members:
    description:
      - The pool's members as the inventory knows them, for the providers that cannot list the pool (V(timer), V(http),
        V(access_log)). Ignored where the L4 can be asked.
    type: list
    elements: str
  claims:
    description:
      - Claim the leaving members for this rollout. Another rollout of the pool then counts them as out (even before the
        L4 has noticed them leave) and is refused, saying whose claim it is, if it wants one of them itself; this one
        counts the members others claim as out.
      - The claims live where every rollout of the pool sees them, the first of - O(claims_dir) when given; the L4 itself
        where its provider can hold them (V(emulator)); a directory of the host the guard runs on,
        C(~/.ansible/l4vip.rollout/claims) of the login user on the LB host, say. When that host is the controller the
        directory is under C(ANSIBLE_HOME) and only this controller's rollouts see it, and the guard says so once per
        rollout and pool.
      - A claim names its owner (see O(owner)) and stops holding when the owner left the member out after a failure
        (O(leave_out)), when the owner ran on the host that checks and its process is gone, or when the owner's lease
        (O(claim_lease)) has lapsed. Such a claim is taken over with a warning; the member still counts as out until then.
    type: bool
    default: false
  claims_dir:
    description:
      - A directory, on the host the guard runs on, that every rollout of this pool shares; giving it turns O(claims) on.
        The claims of a pool are one file there, changed under an exclusive lock.
    type: path
  claim_lease:
    description:
      - Seconds the owner's claims hold without being renewed; every capacity guard of the owner renews them. Choose it
        longer than one batch takes, deploy included - a rollout of another controller takes over a claim whose lease has
        lapsed.
    type: float
    default: 3600
    aliases: [claim_ttl]
  release:
    description:
      - Release this rollout's claims of O(leaving) (when they are back in the VIP) instead of judging. A claim another
        rollout holds is kept, with a warning, unless O(force).
    type: bool
    default: false
  force:
    description:
      - With O(release), release the claims whichever rollout holds them - the way out of a claim whose owner is gone
        on another controller and whose lease has not lapsed yet. Make sure that rollout is not running first.
    type: bool
    default: false
  leave_out:
    description:
      - Mark this rollout's claims of O(leaving) as left out after a failure, instead of judging. They keep counting as
        out, and any later rollout may take them over (and redeploy the member) without waiting for a lease.
    type: bool
    default: false
  max_out:
    description:
      - Slots - at most this many members of the pool out at once, those leaving included. Out is every member the L4
        does not bind (also one out for its own reasons, or not in this rollout) and every member a rollout has claimed,
        this one's other members included. When no slot is free the guard waits, asking again every O(poll_interval),
        until a member is bound again and its claim released, at most O(slot_timeout) seconds.
      - Unset, no such limit; O(min_bound) still applies.
    type: int
  slot_timeout:
    description:
      - With O(max_out), the most seconds to wait for a free slot before failing with what is out. Defaults to
        O(claim_lease).
    type: float
  rollout_failed:
    description:
      - What failed earlier in this rollout, when something did; given, the guard refuses at once and claims nothing.
        Members that run on their own slots (a play with the C(free) strategy) go on after another member failed; this
        stops new ones from going out.
    type: str
  list_claims:
    description:
      - List the pool's claims and change nothing, instead of judging - before a rollout, to find the members an earlier
        one left behind (C(left_behind)) - marked left out after a failure, or held by a rollout that is gone or whose
        lease has lapsed. Such a member may be out of the VIP, and goes first.
    type: bool
    default: false
  reason:
    description:
      - With O(leave_out), why the members were left out, for the next rollout's message.
    type: str
    default: ''
  owner:
    description:
      - The rollout that claims - filled in on the controller by the module's action plugin (the controller's host name,
        its C(ansible-playbook) process and that process's start, the AWX job id when AWX runs it); give it only to act
        for another rollout. Without it, the process that started the module.
    type: dict
  gone_owners:
    description:
      - Owners (as their claims name them) known to be gone; filled in by the action plugin when the owner of a blocking
        claim ran on the controller and its process is gone.
    type: list
    elements: str
    default: []
seealso:
  - module: l4vip.rollout.member_wait
  - module: l4vip.rollout.member_admin
'''

EXAMPLES = r'''
# The way out of a claim whose rollout is gone (on another controller, its lease still running): on the host that keeps
# the claims, after making sure that rollout no longer runs.
- name: Which members did an earlier rollout leave behind?
  l4vip.rollout.capacity_guard:
    pool: web
    list_claims: true
  register: claims

- name: Release web2's claim whichever rollout holds it
  l4vip.rollout.capacity_guard:
    pool: web
    member: web2
    release: true
    force: true

- name: Keep at least two members of the web backend bound while web1 and web2 go out
  l4vip.rollout.capacity_guard:
    provider: haproxy
    endpoint: /run/haproxy/admin.sock
    pool: web
    member: web1
    leaving: [web1, web2]
    min_bound: 2
'''

RETURN = r'''
checked:
  description: Whether the capacity was judged. False with O(release), and with the providers that cannot list a pool when no
    O(pool_members) are given.
  type: bool
  returned: always
  sample: true
msg:
  description: The verdict in words - who goes, how many members stay bound, O(min_bound), and the members other rollouts claim.
  type: str
  returned: when checked
  sample: "taking out web1, web2 leaves 2 of 4 bound member(s) in pool 'web' (web3, web4); min_bound is 1"
bound_members:
  description: The members of O(pool) bound now (taking new connections), less the members other rollouts claim.
  type: list
  elements: str
  returned: when checked
  sample: [web1, web2, web3, web4]
remaining:
  description: The members that stay bound once O(leaving) is out.
  type: list
  elements: str
  returned: when checked
  sample: [web3, web4]
claimed_by_others:
  description: Members of the pool other rollouts hold, counted as out; empty without claims.
  type: list
  elements: str
  returned: when checked
  sample: [web3]
leaving:
  description: The members going out.
  type: list
  elements: str
  returned: always
  sample: [web1, web2]
blocked_by:
  description: The owners of the claims that refused the guard, as O(owner) names them (a member another live rollout works on).
  type: list
  elements: dict
  returned: when refused by a claim
  sample: [{controller: ctl2, pid: 4242, start_ticks: 88231, machine: "3f1c...:4026531836", started: 1765080000.0, job: "17"}]
claims_kept:
  description: Where the claims are kept (the L4, or a directory and its host).
  type: str
  returned: with claims
  sample: directory /root/.ansible/l4vip.rollout/claims on lb
after_failure:
  description:
    - The earlier failure in this rollout the guard refused for (O(rollout_failed), or a member this rollout left out), when it
      did. A refusal for another member's failure is not a failure of its own.
  type: str
  returned: when refused after an earlier failure in this rollout
  sample: web2 failed at 'Deploy | migrate'
taken_over:
  description: The leaving members whose claims this rollout took over (their owner was gone, its lease lapsed, or it left them out).
  type: list
  elements: str
  returned: when checked and allowed
  sample: [web2]
left_out:
  description: The members whose claims were marked left out (in check mode, would be).
  type: list
  elements: str
  returned: with O(leave_out)
  sample: [web2]
claimed:
  description:
    - The members this task claimed anew (a claim the batch already held is renewed, not new); C(changed) says whether there
      were any. Empty without claims. In check mode, the members a real run would claim anew.
  type: list
  elements: str
  returned: when checked and allowed
  sample: [web1, web2]
claims:
  description:
    - With O(list_claims), every claimed member of the pool - C(holder) (who, for people), C(owner) (as O(owner) names
      it), C(left_out) (why its rollout left it out; empty otherwise), C(lapsed) (why another rollout may take it over;
      empty while the claim holds).
  type: dict
  returned: with O(list_claims)
  sample: {web2: {holder: "web2 (held by ctl1 pid 4242, started ...; left out: failed at deploy)", left_out: failed at deploy,
           lapsed: "its owner (ctl1 pid 4242, ...) left it out: failed at deploy", owner: {controller: ctl1, pid: 4242}}}
out:
  description: The members of the pool out already (not bound, or claimed by a rollout), not counting those leaving.
  type: list
  elements: str
  returned: when checked
  sample: [web3]
max_out:
  description: O(max_out), as judged; null without slots.
  type: int
  returned: when checked
  sample: 2
slot_wait:
  description: Seconds the guard waited for a free slot (0 when one was free at once).
  type: float
  returned: when checked with claims
  sample: 4.25
left_behind:
  description: With O(list_claims), the members whose claims have lapsed - left out, or their rollout gone - in name order.
  type: list
  elements: str
  returned: with O(list_claims)
  sample: [web2]
released:
  description: The members whose claims were released (in check mode, would be).
  type: list
  elements: str
  returned: with O(release)
  sample: [web1]
pool:
  description: The pool judged.
  type: str
  returned: when checked
  sample: web
min_bound:
  description: O(min_bound), as judged.
  type: int
  returned: when checked
  sample: 1
allowed:
  description: Whether the members may go out; when false the task fails.
  type: bool
  returned: when checked
  sample: true
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _guard, _l4_steps, _providers


def main() -> None:
    module = AnsibleModule(argument_spec=_guard.capacity_guard_spec(), required_if=_providers.PROVIDER_REQUIRED_IF,
                           mutually_exclusive=_guard.MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    _l4_steps.run_in_module(module, _guard.capacity_guard)


if __name__ == '__main__':
    main()
