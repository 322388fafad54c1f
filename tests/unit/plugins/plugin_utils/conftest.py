"""Fixtures of the lab's unit tests."""

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.l4vip.rollout.tests.harness.embedded_server import make_docroot


@pytest.fixture
def docroot(tmp_path: pathlib.Path) -> pathlib.Path:
    return make_docroot(tmp_path / 'docroot')
