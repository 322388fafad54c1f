"""tests/harness/emulator_thread.py ``is_mark``: which of the emulator's own health events the tests count as the L4
marking a member down or up. A member back from Suspect stayed bound, so its return is no mark-up."""

from __future__ import annotations

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import parse_config
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.core import Emulator
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.health import CheckResult
from ansible_collections.l4vip.rollout.tests.harness.emulator_thread import is_mark

CONFIG = {'vips': [{'name': 'web', 'listen': '127.0.0.10:8080', 'members': [{'name': 'web1', 'address': '127.0.0.11:8080'}]}],
          'profile': {'interval': 0.2, 'retry': 1}}


def marks(results: list[bool]) -> list[str]:
    """Feed check results to a member as the emulator's check loop does; the marks its event log then holds."""
    emulator = Emulator(parse_config(CONFIG))
    member = emulator.member('web', 'web1')
    for ok in results:
        emulator.take_check(member, CheckResult(0.0, ok, ''))
    # An admin state's change is no mark: the L4's health of the member did not move.
    emulator.log_event('web', 'web1', 'admin', 'disabled', 'set through the control API', 'enabled')
    return [event['to'] for event in emulator.events if is_mark(event)]


@pytest.mark.parametrize(('results', 'expected'), [
    ([True], ['up']),  # a new member starts down: its first pass binds it
    ([True, False, False, True], ['up', 'down', 'up']),
    # A blip: one failed check (Suspect, still bound), then a pass; marked neither down nor up.
    ([True, False, True], ['up']),
    ([True, False, True, False, False, True], ['up', 'down', 'up']),
])
def test_a_mark_is_a_move_to_down_or_from_down_to_up(results, expected):
    assert marks(results) == expected
