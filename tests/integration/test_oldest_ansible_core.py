"""The oldest ansible-core the collection claims (meta/runtime.yml's requires_ansible) runs its rollouts.

The newest is the one the suite itself runs (requirements/dev.txt). The oldest gets a venv of its own,
built once per content of requirements/oldest.txt (from PyPI), and rolls a fleet on the emulator in
batches and on slots, the two strategies the rolling deploy plays with.
"""

from __future__ import annotations

import hashlib
import pathlib
import subprocess
import sys
import tempfile

import pytest
import yaml

from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.fleet import Fleet, FleetOptions
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread

pytestmark = pytest.mark.real

ROOT = pathlib.Path(__file__).resolve().parents[2]
OLDEST = ROOT / 'requirements' / 'oldest.txt'


def claimed_minimum() -> str:
    return yaml.safe_load((ROOT / 'meta' / 'runtime.yml').read_text(encoding='utf-8'))['requires_ansible'].removeprefix('>=')


@pytest.fixture(scope='module', name='oldest_playbook')
def fixture_oldest_playbook() -> pathlib.Path:
    pinned = OLDEST.read_text(encoding='utf-8')
    assert f'ansible-core=={claimed_minimum()}\n' in pinned, f'requirements/oldest.txt does not pin ansible-core {claimed_minimum()}'
    venv = pathlib.Path(tempfile.gettempdir()) / f'l4vip-oldest-{hashlib.sha1(pinned.encode()).hexdigest()[:10]}'
    if not (venv / '.installed').exists():
        subprocess.run([sys.executable, '-m', 'venv', '--clear', str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / 'bin' / 'pip'), 'install', '--quiet', '--no-deps', '--requirement', str(OLDEST)], check=True, timeout=600)
        (venv / '.installed').touch()
    version = subprocess.run([str(venv / 'bin' / 'ansible-playbook'), '--version'], capture_output=True, text=True, check=True, timeout=60)
    assert f'[core {claimed_minimum()}]' in version.stdout, version.stdout
    return venv / 'bin' / 'ansible-playbook'


@pytest.mark.parametrize('how', [{'rolling_deploy_serial': 2}, {'rolling_deploy_max_out': 2}], ids=['batches', 'slots'])
def test_the_oldest_claimed_ansible_core_rolls_the_fleet(tmp_path, oldest_playbook, how):
    with Fleet(tmp_path, FleetOptions(groups={'web': 4})) as fleet:
        with TrafficThread(*fleet.vip('web'), keepalive_clients=4, new_connection_rate=10.0, request_interval=0.05) as traffic:
            run = run_collection_playbook(tmp_path, 'l4vip.rollout.rolling_deploy', fleet.write_inventory(), {'fleet_version': '2', **how},
                                          timeout=180, playbook_bin=oldest_playbook)
            summary = traffic.stop()
        assert run.returncode == 0, run.stderr[-3000:]
        assert summary.failed == 0, summary.line()
        assert {m.served_version() for m in fleet.members} == {f'server={m.name} version=2' for m in fleet.members}
