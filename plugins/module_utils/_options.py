# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Option checks the modules, the tools and the timing model share: one error type, one rule per kind of value.

Internal to the l4vip.rollout collection; not a public API.
"""

from __future__ import annotations

import math
import typing as t

SECONDS = 'expected a number of seconds greater than 0'
SECONDS_OR_ZERO = 'expected a number of seconds, 0 or more'


class OptionError(ValueError):
    """An option has a bad value; the message names the option and the value."""

    def __init__(self, option: str, value: t.Any, expected: str) -> None:
        self.option = option
        self.value = value
        self.expected = expected
        super().__init__(f'{option}: {expected}, got {value!r}')

    @property
    def detail(self) -> dict[str, t.Any]:
        """What a module's failure carries beside its message."""
        return {'option': self.option, 'value': self.value}


def seconds(option: str, value: t.Any, allow_zero: bool = False, error: type[OptionError] = OptionError) -> float:
    """A finite number of seconds, greater than 0 (or 0 too): every wait is limited, and NaN limits nothing."""
    expected = SECONDS_OR_ZERO if allow_zero else SECONDS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise error(option, value, expected)
    if value < 0 or (value == 0 and not allow_zero):
        raise error(option, value, expected)
    return float(value)


def number(value: t.Any) -> float | None:
    """A moment or a duration from a step's result or a summary, or None where it is missing or not a number."""
    try:
        return None if value is None or value == '' else float(value)
    except (TypeError, ValueError):
        return None
