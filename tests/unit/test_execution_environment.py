"""execution-environment.yml: ansible-builder writes a build context from it that holds the collection and jmespath.

No container engine here: ``ansible-builder create`` only writes the context (Containerfile and
_build/), which is what is checked. The definition file is copied into a scratch directory with
the collection tarball built beside it (where ``make build`` would put it), so nothing is
written into the checkout.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
DEFINITION = REPO / 'execution-environment.yml'


def galaxy_version() -> str:
    return yaml.safe_load((REPO / 'galaxy.yml').read_text(encoding='utf-8'))['version']


def pinned(requirement: str) -> str:
    """The ``name==version`` line of requirements/dev.in for this package."""
    lines = (REPO / 'requirements' / 'dev.in').read_text(encoding='utf-8').splitlines()
    return next(line for line in lines if line.lower().startswith(f'{requirement}=='))


def test_definition_pins_what_the_tests_run_and_installs_this_build():
    definition = yaml.safe_load(DEFINITION.read_text(encoding='utf-8'))
    assert definition['version'] == 3
    dependencies = definition['dependencies']
    assert dependencies['ansible_core']['package_pip'] == pinned('ansible-core')
    assert dependencies['ansible_runner']['package_pip'] == pinned('ansible-runner')
    assert pinned('jmespath') in dependencies['python']
    tarball = f'l4vip-rollout-{galaxy_version()}.tar.gz'
    assert dependencies['galaxy']['collections'] == [{'name': f'collections/{tarball}', 'type': 'file'}]
    assert definition['additional_build_files'] == [{'src': f'build/{tarball}', 'dest': 'collections'}]


def test_ansible_builder_create_writes_a_context_with_the_collection_and_jmespath(tmp_path):
    shutil.copy(DEFINITION, tmp_path / DEFINITION.name)
    build = subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'build', '--force', '--output-path', str(tmp_path / 'build'), str(REPO)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = f'l4vip-rollout-{galaxy_version()}.tar.gz'
    assert (tmp_path / 'build' / tarball).is_file()

    context = tmp_path / 'context'
    create = subprocess.run([str(BIN / 'ansible-builder'), 'create', '-f', str(tmp_path / DEFINITION.name), '-c', str(context),
                             '--output-filename', 'Containerfile'],
                            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert create.returncode == 0, create.stdout + create.stderr

    containerfile = (context / 'Containerfile').read_text(encoding='utf-8')
    assert f'ARG ANSIBLE_INSTALL_REFS="{pinned("ansible-core")} {pinned("ansible-runner")}"' in containerfile
    assert 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml' in containerfile
    # The final stage's smoke check names both, so a build without either fails.
    assert "import jmespath" in containerfile and 'ansible-galaxy collection list l4vip.rollout' in containerfile
    # The collection is the local build, installed from the context; jmespath is a pip requirement.
    assert (context / '_build' / 'collections' / tarball).read_bytes() == (tmp_path / 'build' / tarball).read_bytes()
    galaxy = yaml.safe_load((context / '_build' / 'requirements.yml').read_text(encoding='utf-8'))
    assert galaxy['collections'] == [{'name': f'collections/{tarball}', 'type': 'file'}]
    assert pinned('jmespath') in (context / '_build' / 'requirements.txt').read_text(encoding='utf-8').split()
    assert 'iptables-nft [platform:rpm]' in (context / '_build' / 'bindep.txt').read_text(encoding='utf-8')
