"""Make the checkout importable as ``ansible_collections.l4vip.rollout`` for plain pytest.

A symlink to the checkout is placed in a scratch tree outside the repository (inside it,
tools that walk the tree would loop through the link). The same tree serves as
ANSIBLE_COLLECTIONS_PATH for the tests that run ansible-playbook.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = pathlib.Path(tempfile.gettempdir()) / f'l4vip-rollout-{hashlib.sha1(bytes(REPO)).hexdigest()[:10]}'


def _link_collection() -> None:
    link = COLLECTIONS_ROOT / 'ansible_collections' / 'l4vip' / 'rollout'
    link.parent.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and link.resolve() == REPO):
        tmp = link.with_name(f'rollout.{os.getpid()}')
        tmp.symlink_to(REPO, target_is_directory=True)
        tmp.replace(link)


_link_collection()
sys.path.insert(0, str(COLLECTIONS_ROOT))
os.environ['ANSIBLE_COLLECTIONS_PATH'] = str(COLLECTIONS_ROOT)

# pylint: disable=wrong-import-position
import pytest  # noqa: E402

from ansible_collections.l4vip.rollout.tests.harness import environment  # noqa: E402
from ansible_collections.l4vip.rollout.tests.harness.ansible import Background  # noqa: E402


@pytest.fixture(autouse=True)
def _no_playbook_left_running():
    """A playbook a test started in the background and never joined is stopped, and fails the test in its teardown."""
    yield
    left = Background.stop_all()
    if left:
        pytest.fail(f'still running at the end of the test, stopped: {left}', pytrace=False)


# On CI (root, CI=true) the suite gives itself ::1 on lo where the machine lacks it, for the session only.

_UNDO_IPV6: list = []


def pytest_sessionstart(session) -> None:  # pylint: disable=unused-argument
    if environment.on_ci() and os.geteuid() == 0:
        undo = environment.give_ipv6_loopback()
        if undo is not None:
            _UNDO_IPV6.append(undo)


def pytest_sessionfinish(session, exitstatus) -> None:  # pylint: disable=unused-argument
    while _UNDO_IPV6:
        _UNDO_IPV6.pop()()
