# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: transition_time
short_description: When the L4 made the transition a member_wait waited for
version_added: 0.1.0
description:
  - From a registered M(l4vip.rollout.member_wait) result - the L4's own time of the transition
    (RV(l4vip.rollout.member_wait#module:l4_since)) when the provider tells it and it is not before O(started), else the
    time the module saw it (RV(l4vip.rollout.member_wait#module:ended_at)). Null when the wait did not run.
author:
  - l4vip.rollout maintainers (@l4vip)
positional: started
options:
  _input:
    description: The registered result of M(l4vip.rollout.member_wait).
    type: dict
    required: true
  started:
    description: When the member began to fail or to pass (epoch seconds); an older L4 time is an earlier transition.
    type: float
'''

EXAMPLES = r'''
- name: How long the L4 took to let go of the member
  ansible.builtin.debug:
    msg: "{{ (down | l4vip.rollout.transition_time(out.changed_at)) - out.changed_at }}"
'''

RETURN = r'''
_value:
  description: Epoch seconds, or null.
  type: float
'''


def transition_time(wait, started):
    # Imported when called, as every filter of this collection does (docs/architecture.md, Filters).
    from ansible_collections.l4vip.rollout.plugins.module_utils import _l4_steps

    return _l4_steps.transition_time(wait, started)


class FilterModule:
    def filters(self):
        return {'transition_time': transition_time}
