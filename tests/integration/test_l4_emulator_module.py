"""l4vip.rollout.l4_emulator through real ansible-playbook: check, start, check, start, query, stop."""

from __future__ import annotations

import json
import os
import urllib.request

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator_service import ENTRY_POINT
from ansible_collections.l4vip.rollout.tests.harness.ansible import pids_running, run_playbook

CONFIG = {
    'profile': {'interval': 0.2, 'check_timeout': 0.1},
    'vips': [{'name': 'web', 'listen': '127.0.0.70:0', 'members': [{'name': 'web1', 'address': '127.0.0.71:9'}]}],
}


def emulator_processes() -> list[int]:
    """An independent reader: every process on the machine running the emulator's entry point."""
    return pids_running(ENTRY_POINT)


def task(name, **args):
    return {'name': name, 'l4vip.rollout.l4_emulator': args, 'register': 'result'}


def test_started_twice_queried_and_stopped(tmp_path):
    pidfile = str(tmp_path / 'emulator.pid')
    before = set(emulator_processes())
    start = [task('start', pidfile=pidfile, config=CONFIG)]
    try:
        checked = run_playbook(tmp_path, start, check=True)
        assert checked.returncode == 0, checked.stderr
        assert checked.task('start')['changed'] is True
        assert set(emulator_processes()) == before  # check mode started nothing

        first = run_playbook(tmp_path, start)
        assert first.returncode == 0, first.stderr
        started = first.task('start')
        assert started['changed'] is True and started['running'] is True
        assert started['vips']['web'].startswith('127.0.0.70:')
        assert set(emulator_processes()) - before == {started['pid']}
        with urllib.request.urlopen(started['control_url'] + '/api/vips/web', timeout=5) as answer:
            assert json.load(answer)['members'][0]['name'] == 'web1'

        for check in (True, False):
            again = run_playbook(tmp_path, start, check=check)
            assert again.returncode == 0, again.stderr
            assert again.task('start')['changed'] is False
            assert again.task('start')['pid'] == started['pid']

        queried = run_playbook(tmp_path, [task('query', pidfile=pidfile, state='query')])
        assert queried.task('query') | {'invocation': None} == queried.task('query') | {
            'changed': False, 'running': True, 'pid': started['pid'], 'control_url': started['control_url'], 'invocation': None}

        changed_config = dict(CONFIG, aged_session_action='drop')
        restarted = run_playbook(tmp_path, [task('start', pidfile=pidfile, config=changed_config)])
        assert restarted.task('start')['changed'] is True
        assert restarted.task('start')['pid'] != started['pid']
        assert set(emulator_processes()) - before == {restarted.task('start')['pid']}

        stop = [task('stop', pidfile=pidfile, state='stopped')]
        checked_stop = run_playbook(tmp_path, stop, check=True)
        assert checked_stop.task('stop')['changed'] is True
        assert set(emulator_processes()) - before == {restarted.task('start')['pid']}
        stopped = run_playbook(tmp_path, stop)
        assert stopped.task('stop')['changed'] is True
        assert set(emulator_processes()) == before
        assert run_playbook(tmp_path, stop).task('stop')['changed'] is False
        assert run_playbook(tmp_path, [task('query', pidfile=pidfile, state='query')]).task('query')['running'] is False
        assert not os.path.exists(pidfile)
    finally:
        run_playbook(tmp_path, [task('stop', pidfile=pidfile, state='stopped')])


def test_bad_config_names_the_key_and_starts_nothing(tmp_path):
    before = set(emulator_processes())
    bad = dict(CONFIG, profile={'interval': 0})
    run = run_playbook(tmp_path, [task('start', pidfile=str(tmp_path / 'e.pid'), config=bad)])
    assert run.returncode != 0
    result = run.task('start')
    assert result['failed'] and result['msg'] == 'config.profile.interval: expected a number of seconds greater than 0, got 0'
    assert set(emulator_processes()) == before
    assert not (tmp_path / 'e.pid').exists()


def test_missing_config_and_bad_timeout_fail_clearly(tmp_path):
    run = run_playbook(tmp_path, [task('start', pidfile=str(tmp_path / 'e.pid'))])
    assert 'config' in run.task('start')['msg'] and run.task('start')['failed']
    run = run_playbook(tmp_path, [task('start', pidfile=str(tmp_path / 'e.pid'), config=CONFIG, startup_timeout=-1)])
    assert run.task('start')['msg'] == 'startup_timeout: expected a number of seconds greater than 0, got -1.0'


def test_port_in_use_fails_with_the_log(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(('127.0.0.70', 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = dict(CONFIG, vips=[dict(CONFIG['vips'][0], listen=f'127.0.0.70:{port}')])
        run = run_playbook(tmp_path, [task('start', pidfile=str(tmp_path / 'e.pid'), config=config)])
    result = run.task('start')
    assert result['failed'] and 'exited with status 1 before it was ready' in result['msg']
    assert any('address already in use' in line.lower() for line in result['log']), result['log']
