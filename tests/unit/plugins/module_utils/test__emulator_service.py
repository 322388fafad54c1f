"""How the emulator's service finds the files its daemon needs: every way a module_utils file can import another."""

from __future__ import annotations

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _emulator_service as service

MU = 'ansible_collections.l4vip.rollout.plugins.module_utils'
TREE = {
    'pkg/__init__.py': b'',
    # `python -m pkg.run` runs this; relative imports, and a name that is not a module.
    'pkg/run.py': b'from . import first\nfrom .second import THING\nfrom .first import main\n',
    # An import over several lines, and `from package import module`.
    'pkg/first.py': f'from {MU}.pkg import (\n    second,\n    THING,\n)\nfrom {MU} import _top\n'.encode(),
    'pkg/second.py': f'import {MU}.pkg.sub.deep\n\n\ndef later():\n    from {MU}._lazy import x\n'.encode(),
    'pkg/sub/__init__.py': b'',
    'pkg/sub/deep.py': b'from .. import first\n',
    '_top.py': f'from {MU}._base import y\n'.encode(),
    '_base.py': b'import json\n',
    '_lazy.py': b'',
    '_unrelated.py': b'',
}


@pytest.fixture
def tree(monkeypatch):
    files = dict(TREE)
    monkeypatch.setattr(service, '_read', files.get)
    return files


def test_every_file_imported_directly_or_not_and_the_packages_on_the_way(tree):
    assert sorted(service.sources('pkg.run')) == sorted(set(tree) - {'_unrelated.py'})
    assert service.sources('pkg.run')['_top.py'] == tree['_top.py']


def test_a_module_runs_alone_and_a_package_module_brings_its_package(tree):
    assert sorted(service.sources('_top')) == ['_base.py', '_top.py']
    assert sorted(service.sources('pkg.sub.deep')) == sorted(set(tree) - {'_unrelated.py', 'pkg/run.py'})


def test_a_module_imported_but_not_there_is_an_error(tree):
    tree['_base.py'] = f'from {service.PACKAGE}._gone import z\n'.encode()
    with pytest.raises(service.ServiceError, match='cannot read _gone.py'):
        service.sources('pkg.run')


def task(tmp_path, **params):
    return dict(dict(state='started', config=None, pidfile=str(tmp_path / 'emulator.pid'), startup_timeout=10.0, stop_timeout=10.0), **params)


def test_the_task_queries_and_stops_nothing_when_nothing_runs(tmp_path):
    assert service.run(task(tmp_path, state='query')) == {'changed': False, 'running': False}
    assert service.run(task(tmp_path, state='stopped')) == {'changed': False, 'running': False}


def test_the_task_names_a_bad_timeout_and_a_bad_config_key_before_it_starts_anything(tmp_path):
    with pytest.raises(service.ServiceError, match='startup_timeout') as bad_timeout:
        service.run(task(tmp_path, startup_timeout=-1.0))
    assert bad_timeout.value.detail['option'] == 'startup_timeout'
    with pytest.raises(service.ServiceError, match=r'^config\.') as bad_config:
        service.run(task(tmp_path, config={'vips': 'not a list'}))
    assert bad_config.value.detail['key'].startswith('config.')
    assert not (tmp_path / 'emulator.pid').exists()
