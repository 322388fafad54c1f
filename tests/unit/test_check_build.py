"""The build check must refuse a tarball that carries a venv, caches or test output."""

from __future__ import annotations

import io
import pathlib
import runpy
import tarfile

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / 'scripts' / 'check_build.py'
check_build = runpy.run_path(str(SCRIPT))['main']
GOOD = ['MANIFEST.json', 'FILES.json', 'plugins/module_utils/_timing.py', 'meta/execution-environment.yml', 'meta/ee-requirements.txt',
        'meta/ee-bindep.txt', 'README.md']


def make_tarball(tmp_path, names):
    path = tmp_path / 'l4vip-rollout.tar.gz'
    with tarfile.open(path, 'w:gz') as tarball:
        for name in names:
            info = tarfile.TarInfo(name)
            tarball.addfile(info, io.BytesIO(b''))
    return str(path)


def test_clean_tarball_passes(tmp_path, capsys):
    assert check_build(make_tarball(tmp_path, GOOD)) == 0
    assert '7 entries' in capsys.readouterr().out


@pytest.mark.parametrize('intruder', ['.venv/bin/python', '.ansible/collections/x', 'tests/output/junit.xml', 'plugins/__pycache__/x.pyc', '.pytest_cache/v'])
def test_intruders_fail(tmp_path, capsys, intruder):
    assert check_build(make_tarball(tmp_path, GOOD + [intruder])) == 1
    assert intruder in capsys.readouterr().err


def test_missing_manifest_fails(tmp_path, capsys):
    assert check_build(make_tarball(tmp_path, GOOD[1:])) == 1
    assert 'lacks MANIFEST.json' in capsys.readouterr().err
