"""The deploy roles through real ansible-playbook against the emulator: the sequence, its
failure paths (the member stays out, the message names the step) and bad input.

The servers are the lab's embedded ones, so stop and start are no-ops here; the end-to-end
tests with real nginx, stopped and started by the roles under live traffic, are in
test_rollout_e2e.py.
"""

from __future__ import annotations

import os
import pathlib
import sys
import typing as t

import pytest
import yaml

from ansible_collections.l4vip.rollout.tests.harness.ansible import run_collection_playbook, run_playbook
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab

PROFILE = {'interval': 0.2, 'retry': 1, 'rise': 1}
NOOP = ['/bin/true']
STOP = "Stop the web server (its FINs end the L4's sessions) and wait until no client connection is left on it"
START_AND_IN = 'Start the web server, then its health check in service (verified 200)'


def deploy_tasks(tmp_path: pathlib.Path, docroot: pathlib.Path, version: str, fail: bool = False) -> str:
    tasks = tmp_path / f'deploy-{version}.yml'
    steps = [f"- name: Write version {version}\n  ansible.builtin.copy:\n    dest: {docroot / 'VERSION'}\n    content: \"{version}\\n\"\n    mode: '0644'\n"]
    if fail:
        steps.append("- name: Break the deploy\n  ansible.builtin.command:\n    argv: [/bin/false]\n  changed_when: false\n")
    tasks.write_text(''.join(steps))
    return str(tasks)


def l7_vars(lab: Lab, member: str = 'web1', **extra: t.Any) -> dict[str, t.Any]:
    server = lab.servers[member]
    return dict({
        'l7_vip_deploy_l4': {'provider': 'emulator', 'endpoint': lab.emulator.control_url, 'pool': 'web', 'member': member,
                             'poll_interval': 0.05},
        'l7_vip_deploy_profile': PROFILE,
        'l7_vip_deploy_health_check_path': str(lab.docroots[member] / 'health_check.html'),
        'l7_vip_deploy_service_port': server.port,
        'l7_vip_deploy_service_address': server.host,
        'l7_vip_deploy_stop_command': NOOP,
        'l7_vip_deploy_start_command': NOOP,
        'l7_vip_deploy_drain_timeout': 5,
    }, **extra)


def l4_vars(lab: Lab, l4: dict[str, t.Any], member: str = 'web1') -> dict[str, t.Any]:
    """The L4 role's variables for one lab member (stop and start are no-ops: the servers are in-process)."""
    server = lab.servers[member]
    return {
        'l4_vip_deploy_l4': l4,
        'l4_vip_deploy_profile': PROFILE,
        'l4_vip_deploy_service_port': server.port,
        'l4_vip_deploy_service_address': server.host,
        'l4_vip_deploy_stop_command': NOOP,
        'l4_vip_deploy_start_command': NOOP,
    }


def role(name: str, variables: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    return [{'name': 'deploy', 'ansible.builtin.include_role': {'name': f'l4vip.rollout.{name}'}, 'vars': variables}]


def published(run: t.Any, task: str = "Publish this host's summary (AWX shows it; the rollout report draws it)") -> dict[str, t.Any]:
    """The per-host summary the role gave set_stats."""
    return run.task(task)['ansible_stats']['data']['l4vip_rollout']['localhost']


def ran(run: t.Any) -> list[str]:
    """The steps that ran, by name; a wait's limit (", at most N s") left off."""
    return [entry['task'].split(', at most ')[0] for entry in run.output if entry['status'] != 'skipped']


def bound_of(run: t.Any, step: str) -> float:
    """The limit a wait announced in its name ("..., at most 0.6 s")."""
    name = next(entry['task'] for entry in run.output if entry['task'].startswith(f'{step}, at most '))
    return float(name.rsplit(', at most ', 1)[1].removesuffix(' s'))


def test_l7_role_takes_the_member_out_deploys_and_brings_it_back(tmp_path):
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        # A relative path: the inventory's directory, here (an inventory that is no file) the playbook's.
        relative = pathlib.Path(deploy_tasks(tmp_path, lab.docroots['web1'], '2')).name
        run = run_playbook(tmp_path, role('l7_vip_deploy', l7_vars(lab, l7_vip_deploy_deploy_tasks=relative)))
        assert run.returncode == 0, run.stderr[-3000:]
        steps = ran(run)
        order = ['Capacity guard | enough members stay bound while this batch is out', 'Health check out of service (verified 404)',
                 'Wait until the L4 has marked the batch down', STOP,
                 'Write version 2', START_AND_IN,
                 'Wait until the L4 has bound the batch again']
        assert [step for step in steps if step in order] == order
        # The L4 itself saw web1 go down and come back, once each; web2 never moved.
        assert lab.marks('web1')[-2:] == ['down', 'up']
        assert not [e for e in lab.events('web2') if e['to'] == 'down']
        assert lab.member('web1')['bound'] and (lab.docroots['web1'] / 'VERSION').read_text() == '2\n'
        # Every wait said how long it may take: the timing model's worst case plus one interval (0.4 + 0.2; 0.2 + 0.2).
        assert bound_of(run, 'Wait until the L4 has marked the batch down') == pytest.approx(0.6)
        assert bound_of(run, 'Wait until the L4 has bound the batch again') == pytest.approx(0.4)
        assert bound_of(run, STOP) == 5
        guard = run.task('Capacity guard | enough members stay bound while this batch is out')
        assert guard['checked'] and guard['remaining'] == ['web2']
        # No URL given: every toggle verified at the service's own address and port, the profile's path.
        url = f'http://{lab.servers["web1"].host}:{lab.servers["web1"].port}/health_check.html'
        verified = [run.task(step)['verify'] for step in ('Health check out of service (verified 404)', START_AND_IN)]
        assert [(seen['url'], seen['status']) for seen in verified] == [(url, 404), (url, 200)]
        summary = published(run)
        assert summary['result'] == 'ok' and summary['member'] == 'web1'
        assert summary['out_at'] < summary['down_at'] < summary['in_at'] < summary['up_at']
        # The L4 let go of web1 within the timing model's window (plus the module's polling).
        detection = summary['down_at'] - summary['out_at']
        assert summary['down_window']['low'] - 0.05 < detection <= summary['down_window']['high'] + 0.3, summary


def test_a_failed_deploy_leaves_the_member_out_and_names_the_step(tmp_path):
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        variables = l7_vars(lab, l7_vip_deploy_deploy_tasks=deploy_tasks(tmp_path, lab.docroots['web1'], '2', fail=True))
        run = run_playbook(tmp_path, role('l7_vip_deploy', variables))
        assert run.returncode != 0
        failure = run.task('Stop the rollout')
        assert failure['msg'].startswith("l7_vip_deploy stopped on localhost at 'Break the deploy': ")
        assert failure['msg'].endswith('The member is left out of the VIP (health check out of service).')
        assert 'Stop or start the web server with its command: start' not in ran(run)
        summary = published(run, 'Publish this host\'s summary, failed')
        assert (summary['result'], summary['failed_step'], summary['up_at']) == ('failed', 'Break the deploy', None)
        assert not (lab.docroots['web1'] / 'health_check.html').exists()
        assert lab.member('web1')['state'] == 'down' and not lab.member('web1')['bound']


def test_capacity_guard_refuses_and_nothing_changes(tmp_path):
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        lab.fail_health_check('web2')
        lab.wait_state('web2', 'down')
        run = run_playbook(tmp_path, role('l7_vip_deploy', l7_vars(lab)))
        assert run.returncode != 0
        message = run.task('Stop the rollout')['msg']
        assert ("capacity guard: taking out web1 leaves 0 of 1 bound member(s) in pool 'web' (none); min_bound is 1" in message)
        assert message.endswith('Nothing was changed.')
        assert (lab.docroots['web1'] / 'health_check.html').exists() and lab.member('web1')['bound']
        assert 'Health check out of service (verified 404)' not in ran(run)


def test_a_second_run_in_the_same_play_starts_clean(tmp_path):
    """State from the first run must not make the second run's refused guard take the member out."""
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        web2_check = lab.docroots['web2'] / 'health_check.html'
        take_web2_down = [
            {'name': 'web2 fails its health check', 'ansible.builtin.command': {'argv': ['mv', str(web2_check), f'{web2_check}.off']}},
            {'name': 'web2 is down', 'l4vip.rollout.member_wait': {
                'state': 'down', 'provider': 'emulator', 'endpoint': lab.emulator.control_url, 'pool': 'web', 'member': 'web2', 'profile': PROFILE}},
        ]
        run = run_playbook(tmp_path, role('l7_vip_deploy', l7_vars(lab)) + take_web2_down + role('l7_vip_deploy', l7_vars(lab)))
        assert run.returncode != 0
        message = run.task('Stop the rollout')['msg']
        assert 'capacity guard: taking out web1 leaves 0 of 1' in message and message.endswith('Nothing was changed.')
        assert (lab.docroots['web1'] / 'health_check.html').exists() and lab.member('web1')['bound']
        assert published(run, "Publish this host's summary, failed")['out_at'] is None


def test_fallback_reaches_the_waits_only(tmp_path):
    """fallback is member_wait's option: the role hands it to the waits, not to the other modules of the group."""
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        variables = l7_vars(lab)
        variables['l7_vip_deploy_l4'] = dict(variables['l7_vip_deploy_l4'], fallback='timer')
        run = run_playbook(tmp_path, role('l7_vip_deploy', variables))
        assert run.returncode == 0, run.stderr[-3000:]
        assert lab.member('web1')['bound']


def test_check_mode_changes_nothing(tmp_path):
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        version = lab.docroots['web1'] / 'VERSION'
        variables = l7_vars(lab, l7_vip_deploy_deploy_tasks=deploy_tasks(tmp_path, lab.docroots['web1'], '2'))
        run = run_playbook(tmp_path, role('l7_vip_deploy', variables), check=True)
        assert run.returncode == 0, run.stderr[-3000:]
        waits = [entry['result'] for entry in run.output if entry['task'].startswith('Wait until the L4 has marked the batch down')]
        assert waits and waits[0]['waited'] is False
        assert (lab.docroots['web1'] / 'health_check.html').exists() and version.read_text() == '1\n'
        assert not [e for e in lab.events('web1') if e['to'] == 'down']


def test_l4_role_with_admin_disable_uses_the_admin_state(tmp_path):
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        variables = l4_vars(lab, {'provider': 'emulator', 'endpoint': lab.emulator.control_url, 'pool': 'web', 'member': 'web1',
                                  'poll_interval': 0.05, 'admin_disable': True})
        run = run_playbook(tmp_path, role('l4_vip_deploy', variables))
        assert run.returncode == 0, run.stderr[-3000:]
        admin = [e['to'] for e in lab.events('web1', kind='admin')]
        assert admin == ['disabled', 'enabled']
        steps = ran(run)
        assert steps.index('Admin state of the batch on the L4: disabled') < steps.index('Wait until the L4 has marked the batch down') \
            < steps.index(STOP) < steps.index('Admin state of the batch on the L4: enabled')
        assert lab.member('web1')['bound']


def test_l4_role_admin_disable_through_the_http_provider(tmp_path):
    """Any REST API: here the emulator's own, read with JMESPath and written with one request per admin state."""
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        member_url = f'{lab.emulator.control_url}/api/vips/web/members/web1'
        variables = l4_vars(lab, {
            'provider': 'http', 'endpoint': member_url, 'query': 'bound', 'down_values': [False], 'up_values': [True],
            'poll_interval': 0.05, 'admin_disable': True, 'admin_query': 'admin_state',
            'admin_values': {'disabled': ['disabled'], 'enabled': ['enabled']},
            'admin_requests': {state: {'method': 'PUT', 'url': f'{member_url}/admin', 'body': {'state': state}}
                               for state in ('disabled', 'enabled')},
        })
        run = run_playbook(tmp_path, role('l4_vip_deploy', variables))
        assert run.returncode == 0, run.stderr[-3000:]
        assert [e['to'] for e in lab.events('web1', kind='admin')] == ['disabled', 'enabled']
        assert run.task('Admin state of the batch on the L4: disabled')['previous_admin_state'] == 'enabled'
        assert lab.member('web1')['bound']


@pytest.mark.parametrize(
    ('role_name', 'change', 'message'),
    [
        ('l7_vip_deploy', {'l7_vip_deploy_service_port': 'eighty'}, 'l7_vip_deploy_service_port'),
        ('l7_vip_deploy', {'l7_vip_deploy_profile': {'health_check': 'l4'}},
         'l7_vip_deploy_profile: health_check is "l4"; an L4-checked VIP takes l4vip.rollout.l4_vip_deploy'),
        ('l7_vip_deploy', {'l7_vip_deploy_stop_command': []},
         'l7_vip_deploy_service_name, or both l7_vip_deploy_stop_command and l7_vip_deploy_start_command'),
        ('l7_vip_deploy', {'l7_vip_deploy_profile': {'interval': -1}}, 'profile.interval'),
        ('l7_vip_deploy', {'l7_vip_deploy_l4': {'provider': 'timer', 'admin_disable': True}},
         'l7_vip_deploy_l4.admin_disable: only l4vip.rollout.l4_vip_deploy takes it'),
        # The path a user writes as {{ playbook_dir }}/deploy.yml, run through the collection's own playbook.
        ('l7_vip_deploy', {'l7_vip_deploy_deploy_tasks': '/nonexistent/ansible_collections/l4vip/rollout/playbooks/deploy.yml'},
         'l7_vip_deploy_deploy_tasks: "/nonexistent/ansible_collections/l4vip/rollout/playbooks/deploy.yml" is no file on the controller'),
        ('l7_vip_deploy', {'l7_vip_deploy_deploy_tasks': 'nowhere.yml'}, 'l7_vip_deploy_deploy_tasks: "nowhere.yml" ('),
        ('l7_vip_deploy', {'l7_vip_deploy_dsr_vip': '198.18.0.2500'}, 'l7_vip_deploy_dsr_vip: "198.18.0.2500" is not an IP address'),
        # A health check the web server does not serve there: nothing could verify the toggles.
        ('l7_vip_deploy', {'l7_vip_deploy_profile': dict(PROFILE, health_check_path='/status.html')}, '/status.html did not answer 200'),
        # HAProxy connects to its members from its own address, for its checks and every client alike.
        ('l7_vip_deploy', {'l7_vip_deploy_l4': {'provider': 'haproxy', 'endpoint': '127.0.0.9:9999', 'pool': 'web'},
                           'l7_vip_deploy_drain_exclude_sources': ['127.0.0.9']},
         'l7_vip_deploy_drain_exclude_sources: ["127.0.0.9"] is where the L4 (provider haproxy) connects from'),
    ],
)
def test_bad_input_names_the_variable_and_changes_nothing(tmp_path, role_name, change, message):
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        run = run_playbook(tmp_path, role(role_name, dict(l7_vars(lab), **change)))
        assert run.returncode != 0
        assert message in run.stderr or message in str(run.output), run.stderr[-3000:]
        assert (lab.docroots['web1'] / 'health_check.html').exists() and lab.member('web1')['bound']


# The stock nginx unit of Debian, as `systemctl show` prints it: 5 s of graceful stop. The machine the suite runs on has no
# systemd, so a stand-in systemctl prints it; the role must refuse before the member goes out.
SYSTEMCTL_SHOW_NGINX = """#!/bin/sh
echo 'TimeoutStopUSec=5s'
echo 'ExecStop={ path=/sbin/start-stop-daemon ; argv[]=/sbin/start-stop-daemon --quiet --stop --retry QUIT/5 --pidfile /run/nginx.pid ; ignore_errors=yes }'
"""


def test_a_service_stop_shorter_than_the_drain_is_refused_before_the_member_goes_out(tmp_path):
    stand_in = tmp_path / 'bin'
    stand_in.mkdir()
    (stand_in / 'systemctl').write_text(SYSTEMCTL_SHOW_NGINX, encoding='ascii')
    (stand_in / 'systemctl').chmod(0o755)
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        variables = dict(l7_vars(lab), l7_vip_deploy_service_name='nginx', l7_vip_deploy_drain_timeout=60)
        tasks = [{'name': 'with the stand-in', 'block': role('l7_vip_deploy', variables), 'environment': {'PATH': f"{stand_in}:{os.environ['PATH']}"}}]
        run = run_playbook(tmp_path, tasks)
        assert run.returncode != 0
        said = ('l7_vip_deploy_service_name: systemd stops nginx gracefully for 5.0 s (TimeoutStopSec=5s), less than '
                'l7_vip_deploy_drain_timeout 60 s')
        assert said in str(run.output), run.stderr[-3000:]
        assert (lab.docroots['web1'] / 'health_check.html').exists() and lab.member('web1')['bound']
        assert 'Capacity guard | enough members stay bound while this batch is out' not in ran(run)


def test_the_rehearsal_refuses_an_l4_checked_profile_before_it_starts_anything(tmp_path):
    lab_dir = tmp_path / 'lab'
    run = run_collection_playbook(tmp_path, 'l4vip.rollout.rehearsal', 'localhost,',
                                  {'rehearsal_profile': {'health_check': 'l4'}, 'rehearsal_dir': str(lab_dir)}, timeout=120)
    assert run.returncode != 0
    assert 'rehearsal_profile: health_check is "l4"; the rehearsal rehearses an L7-checked VIP' in str(run.output), run.stderr[-3000:]
    assert not lab_dir.exists()


def test_rolling_deploy_refuses_two_different_profiles_for_one_host(tmp_path):
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': {'web1': {
        'ansible_connection': 'local', 'rolling_deploy_profile': {'interval': 2}, 'l7_vip_deploy_profile': {'interval': 30}}}}}))
    run = run_collection_playbook(tmp_path, 'l4vip.rollout.rolling_deploy', inventory, timeout=120)
    assert run.returncode != 0
    said = ('rolling_deploy_profile: {"interval": 2} and l7_vip_deploy_profile: {"interval": 30} are both set for web1 and differ')
    assert said in str(run.output), run.stderr[-3000:]


def _local_vip_group(tmp_path: pathlib.Path, **hosts: dict[str, t.Any]) -> tuple[pathlib.Path, pathlib.Path]:
    """An inventory of one VIP group (vip_a) of local members whose health check is a file, verified by no URL."""
    docroot = tmp_path / 'docroot'
    docroot.mkdir()
    (docroot / 'health_check.html').write_text('ok\n')
    member = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
              'l7_vip_deploy_health_check_path': str(docroot / 'health_check.html'), 'l7_vip_deploy_service_port': 20599,
              'l7_vip_deploy_health_check_verify': False, 'l7_vip_deploy_stop_command': ['true'], 'l7_vip_deploy_start_command': ['true'],
              'l7_vip_deploy_claims_dir': str(tmp_path / 'claims'), 'l7_vip_deploy_l4': {'provider': 'timer', 'pool': 'web'}}
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'children': {'vip_a': {'hosts': {
        name: {k: v for k, v in (member | given).items() if v is not None} for name, given in hosts.items()}}}}}))
    return inventory, docroot


def test_rolling_deploy_refuses_a_vip_group_whose_members_reach_different_l4s_before_any_goes_out(tmp_path):
    inventory, docroot = _local_vip_group(tmp_path, web1={}, web2={'l7_vip_deploy_l4': {'provider': 'timer', 'pool': 'www'}})
    run = run_collection_playbook(tmp_path, 'l4vip.rollout.rolling_deploy', inventory, {'rolling_deploy_groups': ['vip_a']}, timeout=120)
    assert run.returncode != 0
    said = 'the members of one VIP group go out of one VIP, so they must agree on provider, endpoint, pool and L4 host; vip_a has'
    assert said in str(run.output), run.stderr[-3000:]
    assert '"pool": "www"' in str(run.output)
    assert (docroot / 'health_check.html').exists() and not [t for t in run.output if t['task'].startswith('Capacity guard')]


def test_rolling_deploy_checks_every_member_against_the_roles_argument_spec_before_any_goes_out(tmp_path):
    """The deploy play runs the role's sequence alone: its preflight holds the members to the argument spec."""
    inventory, docroot = _local_vip_group(tmp_path, web1={}, web2={'l7_vip_deploy_service_port': None})
    run = run_collection_playbook(tmp_path, 'l4vip.rollout.rolling_deploy', inventory, {'rolling_deploy_groups': ['vip_a']}, timeout=120)
    assert run.returncode != 0
    failed = [t for t in run.output if t['status'] == 'failed']
    assert [t['host'] for t in failed] == ['web2'] and failed[0]['task'].startswith("Check the role's variables against its argument spec"), failed
    assert 'missing required arguments: l7_vip_deploy_service_port' in failed[0]['result']['msg']
    assert (docroot / 'health_check.html').exists() and not [t for t in run.output if t['task'].startswith('Capacity guard')]
