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
  - Changes nothing on the L4. With O(claims_dir) it writes (and with O(release) removes) a claim file there.
  - Only the providers that can list a pool (V(emulator), V(haproxy)) can be asked. With the others the guard counts
    O(pool_members) as bound, less the members other rollouts claim; without O(pool_members) it returns
    RV(checked=false) and a warning, and does not fail.
  - Reports C(changed) only when it writes a claim (or, with O(release), removes one); a re-run whose claims are already
    held renews them and reports no change.
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
    details: Judges as a real run does, other rollouts' claims included, and writes or removes no claim; RV(claimed) and
      RV(released) name the claims a real run would write or remove.
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
      - Claim the leaving members (see O(claims_dir)), in O(claims_dir) or, when it is not given, in a directory on the
        host that runs the guard - under C(ANSIBLE_HOME) on the controller, C(~/.ansible/l4vip.rollout/claims) elsewhere.
    type: bool
    default: false
  claims_dir:
    description:
      - A directory every rollout of this pool shares (on the host that runs the guard); giving it turns O(claims) on. With it, the guard runs under a
        lock per pool, counts the members other rollouts have claimed as already out, and claims O(member) when it lets
        it go - so two rollouts started at once cannot take out more than O(min_bound) allows, even before the L4 has
        noticed the first one.
      - Without it the count is the L4's alone, which lags by up to the L4's detection time.
    type: path
  claim_ttl:
    description:
      - Seconds a claim holds before it expires (a rollout that died without releasing it).
    type: float
    default: 3600
  release:
    description:
      - Release the claims of O(leaving) (when they are back in the VIP) instead of judging.
    type: bool
    default: false
seealso:
  - module: l4vip.rollout.member_wait
  - module: l4vip.rollout.member_admin
'''

EXAMPLES = r'''
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
claimed:
  description:
    - The members this task claimed anew (a claim the batch already held is renewed, not new); C(changed) says whether there
      were any. Empty without claims. In check mode, the members a real run would claim anew.
  type: list
  elements: str
  returned: when checked and allowed
  sample: [web1, web2]
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

from ansible_collections.l4vip.rollout.plugins.module_utils import _l4_steps, _providers


def main() -> None:
    module = AnsibleModule(argument_spec=_l4_steps.capacity_guard_spec(), required_if=_providers.PROVIDER_REQUIRED_IF, supports_check_mode=True)
    _l4_steps.run_in_module(module, _l4_steps.capacity_guard)


if __name__ == '__main__':
    main()
