#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: dsr_preflight
short_description: Check that a member is ready for an L3DSR (direct server return) VIP
version_added: 0.1.0
description:
  - Behind an L3DSR L4 the member answers the VIP's clients itself, from the VIP address. Before such a member is let
    back into the VIP it must hold the VIP on a loopback interface (C(lo), often as the alias C(lo:0)), on no other
    interface, and the interfaces that face the L4 must not answer ARP for it, or the member takes the VIP's traffic from
    the L4.
  - Fails, listing every missing piece, unless the VIP is on a loopback interface and on no other, and C(arp_ignore) is
    at least 1 and C(arp_announce) is 2 on each interface that faces the L4. The kernel uses the larger of
    C(net.ipv4.conf.all.<key>) and C(net.ipv4.conf.<interface>.<key>), and so does this check.
  - Only reads (C(ip -j addr show), run without a shell, and C(/proc/sys/net/ipv4/conf)); it never adds or removes an
    address, and never takes the VIP down.
  - The M(l4vip.rollout.health_check) module makes the same check with its O(l4vip.rollout.health_check#module:dsr_vip)
    option before it puts a health check back in service; this module serves where there is no health-check file, such
    as before the start of a web server behind an L4-checked VIP.
author:
  - l4vip.rollout maintainers (@l4vip)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module changes nothing in any mode.
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  vip:
    description:
      - The VIP's address, as the L4's clients connect to it. For an IPv6 VIP only the addresses are checked (ARP is
        IPv4's).
    type: str
    required: true
  interface:
    description:
      - The interface that faces the L4, the only one whose ARP settings are checked.
      - When not given, every interface that could answer ARP for the VIP is checked - up, not loopback, not C(NOARP),
        not a bridge port or bond slave.
    type: str
notes:
  - Needs iproute2 4.14 or newer (C(ip -j)) on the member.
'''

EXAMPLES = r'''
- name: Before the start, the member holds the VIP on lo and ignores ARP for it
  l4vip.rollout.dsr_preflight:
    vip: 10.0.0.100

- name: The same, with the ARP settings of eth0 (the interface towards the L4) only
  l4vip.rollout.dsr_preflight:
    vip: 10.0.0.100
    interface: eth0
'''

RETURN = r'''
vip:
  description: The VIP checked.
  type: str
  returned: always, except when an option value is refused
  sample: 10.0.0.100
loopback:
  description: The labels of the loopback interfaces that hold the VIP (empty when none does).
  type: list
  elements: str
  returned: always, except when an option value is refused
  sample: [lo:0]
also_on:
  description: The other interfaces that hold the VIP (it should be none).
  type: list
  elements: str
  returned: always, except when an option value is refused
  sample: []
arp:
  description: Per interface checked, the C(arp_ignore) and C(arp_announce) the kernel uses (the larger of C(all)'s and its own).
  type: dict
  returned: always, except when an option value is refused
  sample: {eth0: {arp_ignore: 1, arp_announce: 2}}
missing:
  description: What is missing for DSR, one sentence each; empty when the member is ready.
  type: list
  elements: str
  returned: always, except when an option value is refused
  sample: ["arp_announce is 0 on eth0 (the larger of all's 0 and eth0's 0): set net.ipv4.conf.all.arp_announce (or .eth0.) to 2"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _dsr
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError


def main() -> None:
    module = AnsibleModule(argument_spec=dict(vip=dict(type='str', required=True), interface=dict(type='str')), supports_check_mode=True)
    try:
        result = _dsr.check(module.params['vip'], module.params['interface'], options=('vip', 'interface'))
    except OptionError as error:
        module.fail_json(msg=str(error), **error.detail)
    except _dsr.DsrError as error:
        module.fail_json(msg=str(error), **error.detail.get('dsr', {}))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
