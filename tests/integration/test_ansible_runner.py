"""The rolling deploy through ansible-runner, the engine AWX runs jobs with, against the embedded emulator.

A private data dir as AWX lays one out (inventory/, env/, project/ and the artifacts runner
writes), the playbook by its collection name, the collection found through
ANSIBLE_COLLECTIONS_PATH (the symlink tree tests/conftest.py builds), no prompts. The job's
outcome is read the way AWX reads it: status and rc, the job events (``playbook_on_stats``
carries set_stats' ``artifact_data``, where the role's per-host ``l4vip_rollout`` summary is)
and the artifacts directory.

The servers are the lab's embedded ones (127.0.0.60-63), so stop and start are no-ops.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys
import time
import typing as t

import ansible_runner
import yaml

from ansible_collections.l4vip.rollout.plugins.plugin_utils._batches import plan
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab

PROFILE = {'interval': 0.2, 'retry': 1, 'rise': 1}
NOOP = ['/bin/true']
SERIAL = [1, 2]  # a canary, then the other two together (the capacity guard lets two of three go)
IDENT = 'rolling-deploy'


def host_vars(lab: Lab, member: str, deploy_tasks: pathlib.Path) -> dict[str, t.Any]:
    server = lab.servers[member]
    return {
        'l7_vip_deploy_l4': {'provider': 'emulator', 'endpoint': lab.emulator.control_url, 'pool': 'web', 'member': member, 'poll_interval': 0.05},
        'l7_vip_deploy_health_check_path': str(lab.docroots[member] / 'health_check.html'),
        'l7_vip_deploy_health_check_url': f'http://{server.host}:{server.port}/health_check.html',
        'l7_vip_deploy_service_port': server.port,
        'l7_vip_deploy_service_address': server.host,
        'l7_vip_deploy_stop_command': NOOP,
        'l7_vip_deploy_start_command': NOOP,
        'l7_vip_deploy_drain_timeout': 5,
        'l7_vip_deploy_deploy_tasks': str(deploy_tasks),
        'lab_docroot': str(lab.docroots[member]),
    }


def private_data_dir(tmp_path: pathlib.Path, lab: Lab) -> pathlib.Path:
    """What AWX hands ansible-runner: inventory/hosts.yml and project/ with the job's deploy tasks."""
    pdd = tmp_path / 'runner'
    (pdd / 'inventory').mkdir(parents=True)
    (pdd / 'project').mkdir()
    deploy_tasks = pdd / 'project' / 'deploy.yml'
    deploy_tasks.write_text(yaml.safe_dump([{
        'name': 'Deploy | write the new version',
        'ansible.builtin.copy': {'dest': '{{ lab_docroot }}/VERSION', 'content': '2\n', 'mode': '0644'},
    }], sort_keys=False), encoding='utf-8')
    inventory = {'all': {
        # Pipelining (as in the fleet's inventory): fewer temp files per task.
        'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable, 'ansible_pipelining': True,
                 'rolling_deploy_profile': lab.profile},
        'children': {'web': {'hosts': {name: host_vars(lab, name, deploy_tasks) for name in lab.servers}}},
    }}
    (pdd / 'inventory' / 'hosts.yml').write_text(yaml.safe_dump(inventory, sort_keys=False), encoding='utf-8')
    return pdd


def test_rolling_deploy_through_ansible_runner(tmp_path):
    with Lab(tmp_path, count=3, profile=PROFILE) as lab:
        lab.wait_all_bound()
        pdd = private_data_dir(tmp_path, lab)
        home = tmp_path / 'ansible-home'
        started = time.monotonic()
        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            ident=IDENT,
            playbook='l4vip.rollout.rolling_deploy',
            inventory=str(pdd / 'inventory' / 'hosts.yml'),
            extravars={'rolling_deploy_groups': ['web'], 'rolling_deploy_serial': SERIAL},
            envvars={
                'ANSIBLE_COLLECTIONS_PATH': os.environ['ANSIBLE_COLLECTIONS_PATH'],
                # ansible-playbook of this venv, also when the venv is not activated.
                'PATH': f'{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}',
                'ANSIBLE_HOME': str(home),
                'ANSIBLE_LOCAL_TEMP': str(home / 'tmp'),
                'ANSIBLE_REMOTE_TMP': str(home / 'remote-tmp'),
                'ANSIBLE_NOCOLOR': '1',
                # The report callback too, as a job template would enable it.
                'ANSIBLE_CALLBACKS_ENABLED': 'l4vip.rollout.rollout_report',
                'L4VIP_ROLLOUT_REPORT_DIR': str(tmp_path / 'report'),
            },
            quiet=True,
            timeout=240,
        )
        duration = time.monotonic() - started
        artifacts = pdd / 'artifacts' / IDENT
        stdout = (artifacts / 'stdout').read_text(encoding='utf-8') if (artifacts / 'stdout').exists() else ''
        assert (runner.status, runner.rc) == ('successful', 0), stdout[-4000:]
        assert stdout and 'PLAY RECAP' in stdout

        # AWX's view of the job: the stats event carries set_stats' data, one summary per host.
        events = list(runner.events)
        stats = [event for event in events if event['event'] == 'playbook_on_stats']
        assert len(stats) == 1, [event['event'] for event in events][-10:]
        summaries = stats[0]['event_data']['artifact_data']['l4vip_rollout']
        hosts = sorted(lab.servers)
        assert sorted(summaries) == hosts
        batches = plan(['web'], {'web': hosts}, SERIAL).as_dict()['batches']
        for host, summary in summaries.items():
            assert summary['result'] == 'ok' and summary['member'] == host, summary
            assert summary['out_at'] < summary['down_at'] < summary['in_at'] < summary['up_at'], summary
            assert summary['batch'] == next(batch['hosts'] for batch in batches if host in batch['hosts'])
        # Batch after batch: nobody left before the previous batch was bound again.
        for earlier, later in zip(batches, batches[1:]):
            assert max(summaries[h]['up_at'] for h in earlier['hosts']) < min(summaries[h]['out_at'] for h in later['hosts'])
        assert runner.stats['ok'].keys() >= set(hosts) and not runner.stats['failures']

        # The L4 itself saw each member go down and come back, and each one serves the new version.
        for host in hosts:
            assert lab.marks(host)[-2:] == ['down', 'up'], lab.events(host)
            assert lab.member(host)['bound'] and (lab.docroots[host] / 'VERSION').read_text() == '2\n'

        # The callback's report: one bar per host, in the order the rollout ran (the canary first).
        report = json.loads((tmp_path / 'report' / 'report.json').read_text())
        assert [entry['host'] for entry in report['hosts']] == [h for batch in batches for h in batch['hosts']]
        assert all(entry['steps'] and entry['detection_down'] is not None for entry in report['hosts'])
        svg = (tmp_path / 'report' / 'timeline.svg').read_text()
        leaving = re.findall(r'class="phase leaving" data-host="(\w+)" x="([\d.]+)"', svg)
        assert [host for host, _x in leaving] == [entry['host'] for entry in report['hosts']]
        assert float(leaving[0][1]) < float(leaving[1][1])
        print(f'ansible-runner rolling deploy of {len(hosts)} members in {len(batches)} batches: {duration:.1f}s')
