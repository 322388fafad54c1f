"""Two rollouts of one VIP started at once: the claims of the capacity guard let only what
min_bound allows go out, even before the L4 has noticed either member leaving.
"""

from __future__ import annotations

import json
import threading
import urllib.request
import typing as t

import pytest

from ansible_collections.l4vip.rollout.tests.harness.ansible import Background, run_collection_playbook
from ansible_collections.l4vip.rollout.tests.harness.fleet import Fleet, FleetOptions
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab
from ansible_collections.l4vip.rollout.tests.harness.traffic_thread import TrafficThread
from ansible_collections.l4vip.rollout.tests.integration.test_roles import PROFILE

# Live traffic as the end-to-end tests run it: 16 keep-alive clients at 20 requests/s, 40 new connections/s.
TRAFFIC = {'keepalive_clients': 16, 'new_connection_rate': 40.0, 'request_interval': 0.05}


def most_down_at_once(events: list[dict]) -> int:
    """From the L4's event log: the largest number of members down at the same moment."""
    down, most = set(), 0
    for event in sorted(events, key=lambda e: e['at']):
        if event['to'] == 'down':
            down.add(event['member'])
        elif event['to'] == 'up':
            down.discard(event['member'])
        most = max(most, len(down))
    return most


@pytest.mark.real
def test_two_rollouts_at_once_take_out_no_more_than_min_bound_allows(tmp_path):
    """Two rolling deploys of one VIP (one for web1, one for web2) started together, each with its own ANSIBLE_HOME, real
    nginx, live traffic. No claims_dir: the claims are the emulator's own, as an L4 that can hold them keeps them."""
    guarded = {'l7_vip_deploy_min_bound_members': 3}
    options = FleetOptions(groups={'web': 4}, host_vars={f'web{n}': dict(guarded) for n in range(1, 5)})
    with Fleet(tmp_path / 'fleet', options) as fleet:
        inventory = fleet.write_inventory()
        runs: dict[str, t.Any] = {}

        def rollout(member: str) -> None:
            workdir = tmp_path / f'run-{member}'
            workdir.mkdir()
            runs[member] = run_collection_playbook(workdir, 'l4vip.rollout.rolling_deploy', inventory, {'rolling_deploy_groups': ['web'], 'fleet_version': '2'},
                                                   limit=f'localhost,{member}')

        with TrafficThread(*fleet.vip('web'), **TRAFFIC) as traffic:
            threads = [threading.Thread(target=rollout, args=(member,)) for member in ('web1', 'web2')]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=180)
            summary = traffic.stop()
        events = fleet.l4.events()
        bound = fleet.l4.bound('web')
        with urllib.request.urlopen(f'{fleet.l4.control_url}/api/claims/web', timeout=5) as answer:
            claims = json.load(answer)

    assert set(runs) == {'web1', 'web2'}
    outcomes = {member: run.returncode == 0 for member, run in runs.items()}
    # Exactly one went ahead; the other was refused before it changed anything.
    assert sorted(outcomes.values()) == [False, True], {m: [e['result'].get('msg') for e in r.output if e['status'] == 'failed'] for m, r in runs.items()}
    refused = next(member for member, ok in outcomes.items() if not ok)
    went = next(member for member, ok in outcomes.items() if ok)
    message = runs[refused].task('Stop the rollout', refused)['msg']
    assert f'claimed by another rollout: {went}' in message and message.endswith('Nothing was changed.'), message
    assert most_down_at_once(events) == 1 and {e['member'] for e in events if e['to'] == 'down'} == {went}
    assert all(bound.values()), bound
    # The claims were the emulator's (each run's own ANSIBLE_HOME held none); released once the member was back.
    assert claims['version'] >= 2 and claims['claims']['claims'] == {}, claims
    assert not list(tmp_path.glob('run-*/ansible-home/l4vip.rollout/claims/*'))
    assert summary.failed == 0 and summary.ok > 500, summary.line()


def test_without_claims_dir_the_guard_counts_only_what_the_l4_sees(tmp_path):
    """The race the claims close: two guards at once both see four members bound."""
    with Lab(tmp_path, count=4, profile=PROFILE) as lab:
        lab.wait_all_bound()
        tasks = [{'name': 'guard', 'l4vip.rollout.capacity_guard': {
            'provider': 'emulator', 'endpoint': lab.emulator.control_url, 'pool': 'web', 'member': member, 'min_bound': 3}}
            for member in ('web1', 'web2')]
        runs = []
        for number, task in enumerate(tasks):
            workdir = tmp_path / f'guard-{number}'
            workdir.mkdir()
            runs.append(Background(workdir, [task]))
        results = [run.join().task('guard') for run in runs]
        assert [result['failed'] for result in results] == [False, False]
        assert all(len(result['remaining']) == 3 for result in results)
