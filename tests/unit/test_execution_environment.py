"""execution-environment.yml: an execution environment built from the collection tarball alone gets jmespath and boto3.

The definition lists only the tarball; the collection declares its own dependencies
(meta/execution-environment.yml), which is where ansible-builder looks in any EE that installs it.
No container engine here: ``ansible-builder create`` writes the context (Containerfile and
_build/), and the two steps the build would run inside the builder image are run here instead:
installing the collections of the context's requirements.yml, then ``ansible-builder introspect``
on them. The definition file is copied into a scratch directory with the collection tarball
built beside it (where ``make build`` would put it), so nothing is written into the checkout.
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
    assert 'python' not in dependencies, 'the collection declares its Python dependencies itself'
    tarball = f'l4vip-rollout-{galaxy_version()}.tar.gz'
    assert dependencies['galaxy']['collections'] == [{'name': f'collections/{tarball}', 'type': 'file'}]
    assert definition['additional_build_files'] == [{'src': f'build/{tarball}', 'dest': 'collections'}]


def test_an_ee_of_the_tarball_alone_gets_jmespath_and_boto3_from_the_collection(tmp_path):
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
    assert "import jmespath, boto3" in containerfile and 'ansible-galaxy collection list l4vip.rollout' in containerfile
    # The collection is the local build, installed from the context; jmespath is a pip requirement.
    assert (context / '_build' / 'collections' / tarball).read_bytes() == (tmp_path / 'build' / tarball).read_bytes()
    galaxy = yaml.safe_load((context / '_build' / 'requirements.yml').read_text(encoding='utf-8'))
    assert galaxy['collections'] == [{'name': f'collections/{tarball}', 'type': 'file'}]

    # What the builder stage does in the container: install the collections (into an empty path, hence --force
    # here, where this checkout may already be on the collections path), then introspect them.
    collections = tmp_path / 'collections'
    install = subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'install', '--force', '-r', 'requirements.yml', '-p', str(collections)],
                             capture_output=True, text=True, timeout=120, check=False, cwd=context / '_build')
    assert install.returncode == 0, install.stdout + install.stderr
    pip, bindep = tmp_path / 'pip.txt', tmp_path / 'bindep.txt'
    introspect = subprocess.run([str(BIN / 'ansible-builder'), 'introspect', '--write-pip', str(pip),
                                 '--write-bindep', str(bindep), str(collections)],
                                capture_output=True, text=True, timeout=120, check=False)
    assert introspect.returncode == 0, introspect.stdout + introspect.stderr
    assert pip.is_file(), introspect.stdout + introspect.stderr
    python_requirements = pip.read_text(encoding='utf-8')
    for package in ('jmespath', 'boto3'):
        assert any(line.split('#')[0].strip().startswith(package) for line in python_requirements.splitlines()), python_requirements
    system_requirements = bindep.read_text(encoding='utf-8')
    assert 'iptables-nft [platform:rpm]' in system_requirements and 'openssh-clients [platform:rpm]' in system_requirements, system_requirements
