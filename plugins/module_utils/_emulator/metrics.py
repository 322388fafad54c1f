# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The emulator's counters and gauges in the Prometheus text format, as the control API's ``/metrics`` serves them.

Internal to the l4vip.rollout collection; not a public API. One line per VIP and member (bound,
health, sessions, connections, checks), per VIP and reason (rejected connections), and the
control API's and the aging sweep's own figures.
"""

from __future__ import annotations

import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.datapath import Vip
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.health import HEALTH_DOWN, HEALTH_SUSPECT, HEALTH_UP


def prometheus_text(vips: t.Collection[Vip], api_requests: int, last_sweep: t.Mapping[str, t.Any]) -> str:
    lines = [
        '# HELP l4vip_member_bound Whether the member takes new connections.',
        '# TYPE l4vip_member_bound gauge',
    ]
    rows = [(v, m) for v in vips for m in v.members]
    lines += [f'l4vip_member_bound{{vip="{v.config.name}",member="{m.name}"}} {int(m.bound)}' for v, m in rows]
    lines += ['# HELP l4vip_member_health Health state of the member (1 for the current one).', '# TYPE l4vip_member_health gauge']
    lines += [
        f'l4vip_member_health{{vip="{v.config.name}",member="{m.name}",state="{state}"}} {int(m.health == state)}'
        for v, m in rows for state in (HEALTH_UP, HEALTH_SUSPECT, HEALTH_DOWN)
    ]
    lines += ['# HELP l4vip_sessions Session table entries.', '# TYPE l4vip_sessions gauge']
    lines += [f'l4vip_sessions{{vip="{v.config.name}",member="{m.name}"}} {len(m.sessions)}' for v, m in rows]
    lines += ['# HELP l4vip_connections_total Client connections forwarded.', '# TYPE l4vip_connections_total counter']
    lines += [f'l4vip_connections_total{{vip="{v.config.name}",member="{m.name}"}} {m.connections_total}' for v, m in rows]
    lines += ['# HELP l4vip_checks_total Health checks by result.', '# TYPE l4vip_checks_total counter']
    lines += [
        f'l4vip_checks_total{{vip="{v.config.name}",member="{m.name}",result="{"pass" if ok else "fail"}"}} {m.checks_total[ok]}'
        for v, m in rows for ok in (True, False)
    ]
    lines += ['# HELP l4vip_rejected_total Client connections refused or reset by the L4.', '# TYPE l4vip_rejected_total counter']
    lines += [f'l4vip_rejected_total{{vip="{v.config.name}",reason="{r}"}} {n}' for v in vips for r, n in sorted(v.rejected_total.items())]
    lines += ['# HELP l4vip_api_requests_total Requests answered on the control API.', '# TYPE l4vip_api_requests_total counter',
              f'l4vip_api_requests_total {api_requests}']
    lines += ['# HELP l4vip_aging_sweep_seconds How long the last aging sweep took.', '# TYPE l4vip_aging_sweep_seconds gauge',
              f'l4vip_aging_sweep_seconds {last_sweep["seconds"]:.6f}',
              '# HELP l4vip_aging_sweep_looked_at Session keys the last aging sweep looked at.', '# TYPE l4vip_aging_sweep_looked_at gauge',
              f'l4vip_aging_sweep_looked_at {last_sweep["looked_at"]}']
    return '\n'.join(lines) + '\n'
