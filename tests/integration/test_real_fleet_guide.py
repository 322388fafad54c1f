"""docs/real-fleet.md runs as printed, addresses aside, against three nginx hosts and an HAProxy host over SSH.

The guide marks its files with ``<!-- fleet-guide: PATH -->`` before a fenced block (written to PATH
under a scratch directory) and its commands with ``<!-- fleet-guide: run -->`` before a shell block.
The guide's addresses (10.0.0.0/24) become the namespaced hosts' (198.18.0.0/24); the only file added
is the connection settings the guide leaves to the reader (group_vars/all.yml: root over SSH with the
fleet's key). The commands run from the scratch directory with the venv's ansible-playbook first on
PATH, as a user with the collection installed runs them, under live traffic through the VIP.

Then the mistakes the guide says are caught: each, given on the printed command line, is refused
before any member leaves the VIP.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import typing as t

import pytest
import yaml

from ansible_collections.l4vip.rollout.tests.harness.netns import LB_ADDRESS, VIP, WEB_BASE, NetnsFleet, NetnsOptions, require_netns
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread
from ansible_collections.l4vip.rollout.tests.integration.test_docs_examples import _FENCE, _closes, _commands
from ansible_collections.l4vip.rollout.tests.integration.test_fleet_over_ssh import TRAFFIC, OutWatch, transitions_of, versions

pytestmark = pytest.mark.real

ROOT = pathlib.Path(__file__).resolve().parents[2]
GUIDE = ROOT / 'docs' / 'real-fleet.md'
MARKER = re.compile(r'^<!-- fleet-guide: (?P<what>\S+) -->$')
# The guide's addresses, and the namespaced hosts' for them.
ADDRESSES = {'10.0.0.5': LB_ADDRESS, '10.0.0.10': VIP[0], **{f'10.0.0.{10 + n}': f'198.18.0.{WEB_BASE + n}' for n in (1, 2, 3)}}


def guide_parts(text: str) -> tuple[dict[str, str], list[str]]:
    """The guide's files by path and its commands in order."""
    files: dict[str, str] = {}
    commands: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        marked = MARKER.match(line.strip())
        if marked is None:
            continue
        opening = _FENCE.match(lines[index + 1])
        assert opening is not None, f'{GUIDE.name}:{index + 1}: a fleet-guide marker must be followed by a fenced block'
        end = next(n for n in range(index + 2, len(lines)) if _closes(lines[n], opening.group('fence')))
        body = lines[index + 2:end]
        if marked.group('what') == 'run':
            commands.extend(_commands(body, len(opening.group('indent')), f'{GUIDE.name}:{index + 2}'))
        else:
            files[marked.group('what')] = '\n'.join(body) + '\n'
    return files, commands


def with_our_addresses(text: str) -> str:
    return re.sub(r'\b10\.0\.0\.\d+\b', lambda found: ADDRESSES[found.group(0)], text)


def guide_profile(files: dict[str, str]) -> dict[str, t.Any]:
    return yaml.safe_load(files['inventory/group_vars/web.yml'])['rolling_deploy_profile']


def run_as_user(command: str, workdir: pathlib.Path, fleet: NetnsFleet) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith('ANSIBLE_')}
    env.update(HOME=str(workdir / 'home'), PATH=f'{pathlib.Path(sys.executable).parent}:{env["PATH"]}',
               # The collection, installed: the suite's copy of this checkout.
               ANSIBLE_COLLECTIONS_PATH=os.environ['ANSIBLE_COLLECTIONS_PATH'], ANSIBLE_NOCOLOR='1')
    return subprocess.run(['bash', '-c', command], cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(name='guide')
def fixture_guide(tmp_path):
    files, commands = guide_parts(GUIDE.read_text(encoding='utf-8'))
    assert set(files) >= {'inventory/hosts.yml', 'inventory/group_vars/web.yml', 'deploy.yml'} and len(commands) == 2
    require_netns()
    with NetnsFleet(tmp_path, NetnsOptions(members=3, l4_host_ssh=True, profile=guide_profile(files))) as fleet:
        workdir = tmp_path / 'guide'
        for path, text in files.items():
            (workdir / path).parent.mkdir(parents=True, exist_ok=True)
            (workdir / path).write_text(with_our_addresses(text), encoding='utf-8')
        connection = {k: v for k, v in fleet.common_vars().items() if k != 'rolling_deploy_profile'}
        (workdir / 'inventory' / 'group_vars' / 'all.yml').write_text(yaml.safe_dump(connection), encoding='utf-8')
        (workdir / 'home').mkdir()
        yield fleet, workdir, [with_our_addresses(command) for command in commands]


def test_the_real_fleet_guide_runs_as_printed_and_fails_no_request(guide):
    fleet, workdir, (check, roll) = guide
    with TrafficThread(*fleet.vip(), **TRAFFIC) as traffic, OutWatch(fleet) as watch:
        checked = run_as_user(check, workdir, fleet)
        assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr[-2000:]
        assert watch.ever_out == set() and versions(fleet) == {m.name: '1' for m in fleet.members}, 'the --check run changed something'
        rolled = run_as_user(roll, workdir, fleet)
        assert rolled.returncode == 0, rolled.stdout[-4000:] + rolled.stderr[-2000:]
        fleet.wait_all_bound()
        summary = traffic.stop()
    for run in (checked, rolled):
        assert '[WARNING]' not in run.stdout + run.stderr, run.stdout + run.stderr
    assert summary.failed == 0 and summary.ok > 500, summary.line()
    assert watch.most_out == 1 and watch.ever_out == {m.name for m in fleet.members}, vars(watch)
    assert versions(fleet) == {m.name: '2' for m in fleet.members}
    assert transitions_of(fleet) == {m.name: ['down', 'up'] for m in fleet.members}
    print(f'\nthe real-fleet guide as printed: {summary.line()}; most out at once {watch.most_out}')


@pytest.mark.parametrize(('mistake', 'said'), [
    ({'l7_vip_deploy_deploy_tasks': '{{ playbook_dir }}/deploy.yml'},
     'rollout/playbooks/deploy.yml" is no file on the controller (under l4vip.rollout.rolling_deploy, playbook_dir is'),
    ({'l7_vip_deploy_service_address': ''}, 'verify_url: http://127.0.0.1:80/health_check.html did not answer 200'),
    ({'l7_vip_deploy_drain_exclude_sources': [LB_ADDRESS]},
     f'l7_vip_deploy_drain_exclude_sources: ["{LB_ADDRESS}"] is where the L4 (provider haproxy) connects from'),
], ids=['deploy path', 'health-check URL', 'exclude_sources'])
def test_the_mistakes_the_guide_names_are_refused_before_any_member_goes_out(guide, mistake, said):
    fleet, workdir, (_check, roll) = guide
    with OutWatch(fleet) as watch:
        refused = run_as_user(f'{roll} -e {shlex.quote(json.dumps(mistake))}', workdir, fleet)
    assert refused.returncode != 0
    assert said in refused.stdout, refused.stdout[-4000:]
    assert watch.samples > 5 and watch.ever_out == set(), vars(watch)
    assert versions(fleet) == {m.name: '1' for m in fleet.members} and transitions_of(fleet) == {m.name: [] for m in fleet.members}
