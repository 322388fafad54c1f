# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read what the L4 saw from the web server's own access log.

Internal to the l4vip.rollout collection; not a public API.

Every health check the L4 sends is a line in the access log, with the L4's address and the
answer it got. Once the server has answered ``retry + 1`` checks in a row with a failure,
the L4 has seen them all and has marked the member down; once it has answered ``rise``
checks in a row with 200, the L4 has bound it again. This works with nginx's default
``combined`` format (and ``common``): only the address, time, request and status are read.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import re
import typing as t

LINE = re.compile(r'^(?P<source>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<uri>\S+)[^"]*" (?P<status>\d{3}) ')
TAIL_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Check:
    """One health check as the server answered it."""

    source: str
    at: float
    uri: str
    status: int

    @property
    def passed(self) -> bool:
        return self.status == 200


def parse_line(line: str) -> Check | None:
    match = LINE.match(line)
    if match is None:
        return None
    try:
        at = datetime.datetime.strptime(match['time'], '%d/%b/%Y:%H:%M:%S %z').timestamp()
    except ValueError:
        return None
    return Check(match['source'], at, match['uri'].split('?', 1)[0], int(match['status']))


def health_checks(lines: t.Iterable[str], uri: str, sources: t.Sequence[str], since: float) -> list[Check]:
    """The health checks from the L4's addresses, answered at or after ``since``.

    Log times have whole seconds, so the second of ``since`` itself counts: a check answered
    earlier in that second can only have passed, which breaks a failing streak rather than
    lengthening it.
    """
    wanted = {ipaddress.ip_address(s) for s in sources}
    checks = []
    for line in lines:
        check = parse_line(line)
        if check is None or check.uri != uri or check.at < int(since):
            continue
        try:
            if wanted and ipaddress.ip_address(check.source) not in wanted:
                continue
        except ValueError:
            continue
        checks.append(check)
    return checks


def streak(checks: t.Sequence[Check]) -> tuple[bool | None, int]:
    """The latest answer (passed or not; None without any) and how many in a row ended the same way."""
    if not checks:
        return None, 0
    last = checks[-1].passed
    count = 0
    for check in reversed(checks):
        if check.passed != last:
            break
        count += 1
    return last, count


def read_tail(path: str) -> list[str]:
    """The log's last few megabytes as lines (the first, maybe partial, line dropped)."""
    with open(path, 'rb') as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - TAIL_BYTES))
        data = handle.read()
    lines = data.decode('utf-8', errors='replace').splitlines()
    return lines[1:] if size > TAIL_BYTES else lines
