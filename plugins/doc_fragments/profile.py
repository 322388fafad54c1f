# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The defaults below must equal plugins/module_utils/_timing.py's Profile; a unit test holds them together.
    DOCUMENTATION = r'''
options:
  profile:
    description:
      - How the L4 checks and remembers members. The same dict is taken by every module and role of this
        collection, and by the embedded emulator, so that all of them share one timing model.
      - With a fast failure (404, refused connection) the L4 marks a member down more than C(retry * interval) and
        at most C((retry + 1) * interval) seconds after it starts failing; a check that times out adds the check
        timeout. It binds a member again more than C((rise - 1) * interval) and at most C(rise * interval) seconds
        after it can first pass a check.
    type: dict
    default: {}
    suboptions:
      interval:
        description:
          - Seconds between two health checks of one member. Fractions are valid.
        type: float
        default: 10.0
      retry:
        description:
          - Failed checks after the first (which only makes the member Suspect) that take the member down.
          - V(0) takes it down on the first failure.
        type: int
        default: 1
      rise:
        description:
          - Consecutive passing checks that bind a down member again.
        type: int
        default: 1
      check_timeout:
        description:
          - Seconds a check waits for an answer before it counts as failed. A check still unanswered when the next
            one is due has failed, so the effective value is at most O(profile.interval).
        type: float
        default: 3.0
      idle_timeout:
        description:
          - Seconds a session table entry lives without traffic (the session table aging time).
        type: float
        default: 600.0
      reset_on_port_fail:
        description:
          - Whether the L4 sends RST to the clients of a member's sessions when it marks the member down.
        type: bool
        default: false
      health_check:
        description:
          - V(l7) sends C(GET) O(profile.health_check_path) and expects 200; V(l4) only opens a TCP connection.
        type: str
        choices: [l7, l4]
        default: l7
      health_check_path:
        description:
          - URL path the L4 requests in an V(l7) health check.
        type: str
        default: /health_check.html
'''
