# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: stop_grace
short_description: How long systemd lets a service stop gracefully, from C(systemctl show)
version_added: 0.2.0
description:
  - Reads the output of C(systemctl show --property=TimeoutStopUSec --property=ExecStop <unit>) and returns how many
    seconds the unit lets its server finish the requests in flight before a harder signal ends them - the shorter of
    C(TimeoutStopSec) (then SIGKILL) and, when C(ExecStop) runs C(start-stop-daemon --retry SIGNAL/SECONDS/...), its
    first wait (then the next signal; the stock nginx unit's C(QUIT/5) gives 5 s of graceful stop).
  - The deploy roles compare it with their drain timeout before the rollout, so that a service stop does not cut the
    connections the drain would wait for.
author:
  - l4vip.rollout maintainers (@l4vip)
options:
  _input:
    description: What C(systemctl show) printed, one C(Property=value) per line.
    type: str
    required: true
'''

EXAMPLES = r'''
- name: How long may nginx take to stop gracefully?
  ansible.builtin.command:
    argv: [systemctl, show, --property=TimeoutStopUSec, --property=ExecStop, nginx]
  register: unit
  changed_when: false

- name: Say it
  ansible.builtin.debug:
    msg: "{{ (unit.stdout | l4vip.rollout.stop_grace).seconds }} s, set by {{ (unit.stdout | l4vip.rollout.stop_grace).by }}"
'''

RETURN = r'''
_value:
  description: The grace, and what sets it.
  type: dict
  contains:
    seconds:
      description: Seconds of graceful stop; null when nothing limits it (C(infinity)) or the output names no limit.
      type: float
    by:
      description: What sets it, for people (C(TimeoutStopSec=5s), C(ExecStop start-stop-daemon --retry QUIT/5)).
      type: str
'''

import re
import shlex

from ansible.errors import AnsibleFilterError

# systemd's time span units, as format_timespan() prints them.
_UNIT_SECONDS = {'us': 1e-6, 'ms': 1e-3, 's': 1.0, 'min': 60.0, 'h': 3600.0, 'd': 86400.0, 'w': 604800.0, 'M': 2629800.0, 'y': 31557600.0}
_SPAN_PART = re.compile(r'(\d+(?:\.\d+)?)(us|ms|s|min|h|d|w|M|y)')


def timespan_seconds(text: str) -> float | None:
    """'1min 30s' -> 90.0; 'infinity' -> None."""
    text = text.strip()
    if text == 'infinity':
        return None
    parts = text.split()
    matches = [_SPAN_PART.fullmatch(part) for part in parts]
    if not parts or not all(matches):
        raise AnsibleFilterError(f'stop_grace: TimeoutStopUSec: expected a systemd time span such as 5s or 1min 30s, got {text!r}')
    return sum(float(m.group(1)) * _UNIT_SECONDS[m.group(2)] for m in matches if m)


def retry_first_wait(exec_stop: str) -> float | None:
    """The first wait of ExecStop's start-stop-daemon --retry SIGNAL/SECONDS/..., None when it has no such schedule."""
    found = re.search(r'argv\[\]=([^;]*)', exec_stop)
    argv = shlex.split(found.group(1)) if found else []
    if not argv or not argv[0].endswith('start-stop-daemon'):
        return None
    for option, value in zip(argv, argv[1:]):
        if option in ('--retry', '-R') and '/' in value:
            wait = value.split('/')[1]
            return float(wait) if wait.isdigit() else None
    return None


def stop_grace(show_output: str) -> dict[str, object]:
    if not isinstance(show_output, str):
        raise AnsibleFilterError(f'stop_grace: expected the text systemctl show printed, got {show_output!r}')
    properties = dict(line.split('=', 1) for line in show_output.splitlines() if '=' in line)
    limits = []
    if properties.get('TimeoutStopUSec'):
        timeout = timespan_seconds(properties['TimeoutStopUSec'])
        if timeout is not None:
            limits.append((timeout, f"TimeoutStopSec={properties['TimeoutStopUSec'].strip()}"))
    wait = retry_first_wait(properties.get('ExecStop', ''))
    if wait is not None:
        limits.append((wait, f'ExecStop start-stop-daemon --retry, first wait {wait:g} s'))
    if not limits:
        return {'seconds': None, 'by': 'nothing limits it'}
    seconds, by = min(limits, key=lambda limit: limit[0])
    return {'seconds': seconds, 'by': by}


class FilterModule:
    def filters(self):
        return {'stop_grace': stop_grace}
