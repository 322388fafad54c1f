"""tests/harness/environment.py: a missing machine feature skips a test on a developer's machine and fails it on CI."""

from __future__ import annotations

import pytest

from ansible_collections.l4vip.rollout.tests.harness import environment


@pytest.mark.parametrize(('ci', 'expected'), [('true', True), ('TRUE', True), ('', False), ('false', False), ('1', False)])
def test_ci_is_ci_true(monkeypatch, ci, expected):
    monkeypatch.setenv('CI', ci)
    assert environment.on_ci() is expected


def test_missing_skips_off_ci_and_fails_on_it(monkeypatch):
    monkeypatch.delenv('CI', raising=False)
    with pytest.raises(pytest.skip.Exception, match='^needs a thing$'):
        environment.missing('needs a thing')
    monkeypatch.setenv('CI', 'true')
    with pytest.raises(pytest.fail.Exception, match=r'^needs a thing \(CI=true: on CI this fails instead of skipping\)$'):
        environment.missing('needs a thing')


def test_require_root_asks_only_when_not_root(monkeypatch):
    monkeypatch.setenv('CI', 'true')
    monkeypatch.setattr(environment.os, 'geteuid', lambda: 0)
    environment.require_root('anything')  # root: nothing raised
    monkeypatch.setattr(environment.os, 'geteuid', lambda: 1000)
    with pytest.raises(pytest.fail.Exception, match='needs root: to chown'):
        environment.require_root('to chown')
