"""The emulator behaves like the reference L4 (docs/how-it-works.md): its scenarios, on real sockets.

Intervals are 0.2 s so that the timing windows are short; limits come from the timing model.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import down_window, parse_profile, up_window
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab, get, raw_get, wait_for

# Loopback, threads and a 2-core machine: a check result lands late by up to ~0.1 s under the full suite's load
# (the emulator thread shares the GIL with this test's polling), as in test_emulator_vs_haproxy.py.
TOLERANCE = 0.1


def detection_trials(tmp_path, profile, members=4, rounds=5):
    """Fail every member's health check, round after round; return (down, up, events) per trial."""
    trials = []
    with Lab(tmp_path, count=members, profile=profile) as lab:
        lab.wait_all_bound()
        for round_no in range(rounds):
            started = {name: lab.fail_health_check(name) for name in lab.servers}
            for name in lab.servers:
                lab.wait_state(name, 'down')
            restored = {name: lab.pass_health_check(name) for name in lab.servers}
            lab.wait_all_bound()
            for name in lab.servers:
                events = [e for e in lab.events(name) if e['at'] > started[name]]
                down_at = next(e['at'] for e in events if e['to'] == 'down')
                up_at = next(e['at'] for e in events if e['to'] == 'up' and e['at'] > restored[name])
                trials.append({'round': round_no, 'down': down_at - started[name], 'up': up_at - restored[name],
                               'sequence': [e['to'] for e in events]})
    return trials


@pytest.mark.parametrize('retry', [1, 2])
def test_detection_time_spans_the_models_window(tmp_path, retry):
    profile = parse_profile(dict(interval=0.2, retry=retry, check_timeout=0.1))
    window = down_window(profile)
    trials = detection_trials(tmp_path, profile.as_dict())
    assert len(trials) >= 20
    downs = [trial['down'] for trial in trials]
    assert all(d in window.widened(TOLERANCE) for d in downs), (window, sorted(downs))
    # Phased checks spread the detection over the whole window, as on a real device.
    middle = (window.low + window.high) / 2
    assert any(d < middle for d in downs) and any(d > middle for d in downs), sorted(downs)
    # Suspect (still bound) comes between up and down, for retry more failed checks.
    for trial in trials:
        assert trial['sequence'][:2] == ['suspect', 'down'], trial
    ups = [trial['up'] for trial in trials]
    assert all(u in up_window(profile).widened(TOLERANCE) for u in ups), sorted(ups)


def test_rise_two_binds_after_two_passes(tmp_path):
    profile = parse_profile(dict(interval=0.2, rise=2, check_timeout=0.1))
    trials = detection_trials(tmp_path, profile.as_dict(), members=4, rounds=3)
    ups = [trial['up'] for trial in trials]
    assert all(u in up_window(profile).widened(TOLERANCE) for u in ups), sorted(ups)
    assert min(ups) > profile.interval - TOLERANCE  # never on the first pass


def test_keepalive_trap_down_member_keeps_serving_its_sessions(tmp_path):
    with Lab(tmp_path, count=2) as lab:
        lab.wait_all_bound()
        connection = lab.keepalive()
        status, pinned, _body = get(connection)
        assert status == 200
        other = next(name for name in lab.servers if name != pinned)
        lab.fail_health_check(pinned)
        lab.wait_state(pinned, 'down')
        assert lab.member(pinned)['sessions'] == 1
        # The session table, not the binding list, forwards this request: the down member answers.
        for _request in range(5):
            status, served_by, _body = get(connection)
            assert (status, served_by) == (200, pinned)
        # No new connection reaches the down member.
        fresh = [get(lab.keepalive())[1] for _connection in range(10)]
        assert fresh == [other] * 10
        connection.close()


def test_member_fin_clears_its_sessions_and_reaches_the_client(tmp_path):
    with Lab(tmp_path, count=1) as lab:
        lab.wait_all_bound()
        sock = lab.open_raw()
        assert b'X-Served-By: web1' in raw_get(sock)
        assert lab.member('web1')['sessions'] == 1
        sock.settimeout(1.0)
        stopped = time.monotonic()
        lab.run(lab.servers['web1'].stop(graceful=True, timeout=1.0))
        assert sock.recv(1) == b''  # FIN passed on to the client
        client_saw_close = time.monotonic() - stopped
        wait_for('web1 sessions cleared', lambda: lab.member('web1')['sessions'] == 0, timeout=0.1)
        assert client_saw_close < 0.1
        sock.close()


@pytest.mark.parametrize('action', ['rst', 'drop'])
def test_idle_session_ages_out(tmp_path, action):
    with Lab(tmp_path, count=1, profile={'idle_timeout': 0.4}, aged_session_action=action) as lab:
        lab.wait_all_bound()
        sock = lab.open_raw()
        sent = time.time()
        raw_get(sock)
        answered = time.time()
        assert lab.member('web1')['sessions'] == 1
        wait_for('session aged out', lambda: lab.member('web1')['sessions'] == 0, timeout=2.0)
        aged = lab.events('web1', kind='session')
        assert [e['to'] for e in aged] == ['aged']
        # Not before idle_timeout of silence since the request went through, and soon after: the table is swept every
        # idle_timeout / 5 (0.08 s), plus the tolerance of a loaded machine.
        assert aged[0]['at'] - sent >= 0.4, (aged[0]['at'] - sent)
        assert aged[0]['at'] - answered <= 0.4 + 0.08 + TOLERANCE, (aged[0]['at'] - answered)
        sock.settimeout(0.5)
        sock.sendall(b'GET / HTTP/1.1\r\nHost: vip\r\n\r\n')
        if action == 'rst':
            with pytest.raises(ConnectionResetError):
                sock.recv(1)
        else:
            with pytest.raises(socket.timeout):
                sock.recv(1)
        sock.close()


def test_reset_on_port_fail_resets_clients_and_leaves_a_zombie(tmp_path):
    with Lab(tmp_path, count=2, profile={'reset_on_port_fail': True}) as lab:
        lab.wait_all_bound()
        sock = lab.open_raw()
        head = raw_get(sock)
        pinned = 'web1' if b'X-Served-By: web1' in head else 'web2'
        server = lab.servers[pinned]
        assert lab.call(lambda: server.open_connections) == 1
        lab.fail_health_check(pinned)
        sock.settimeout(2.0)
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
        reset_seen = time.time()
        down_at = next(e['at'] for e in lab.events(pinned) if e['to'] == 'down')
        assert 0 <= reset_seen - down_at < 0.1
        assert lab.member(pinned)['sessions'] == 0
        # Only the client was reset: the server still holds its side of the connection.
        assert lab.call(lambda: server.open_connections) == 1
        sock.close()


def test_l4_health_check_marks_down_when_the_port_closes(tmp_path):
    # Checks half a second apart: a busy machine delays a check by a tenth of a second or two, not a whole interval.
    profile = parse_profile(dict(interval=0.5, check_timeout=0.25, health_check='l4'))
    with Lab(tmp_path, count=2, profile=profile.as_dict()) as lab:
        lab.wait_all_bound()
        renamed = lab.fail_health_check('web1')  # an L4 check does not look at the file

        def checks_since() -> list[dict] | None:
            checks = [check for check in lab.member('web1')['checks'] if check['at'] > renamed]
            return checks if len(checks) >= profile.fall else None
        # As many checks as would take an L7-checked member down, and every one passed.
        checks = wait_for(f'{profile.fall} checks of web1 since the rename', checks_since, timeout=down_window(profile).high + 1.0)
        assert all(check['ok'] for check in checks), checks
        assert lab.member('web1')['state'] == 'up'
        stopped = time.time()
        lab.run(lab.servers['web1'].stop(graceful=True))
        member = lab.wait_state('web1', 'down')
        assert member['since'] - stopped in down_window(profile).widened(TOLERANCE)
        assert member['checks'][-1]['detail'] == 'connection refused'


def test_new_connection_to_a_gone_member_is_reset_not_hung(tmp_path):
    # A long interval: the member stays bound long after its server is gone.
    with Lab(tmp_path, count=2, profile={'interval': 5.0}) as lab:
        lab.wait_all_bound(timeout=6)
        lab.run(lab.servers['web2'].stop(graceful=False))
        outcomes = []
        for _attempt in range(4):  # round robin: half of them go to web2
            started = time.monotonic()
            try:
                # The reset can come before a timed connect() has read its outcome: it reports it then.
                with lab.open_raw() as sock:
                    outcomes.append(b'web1' if b'web1' in raw_get(sock) else b'?')
            except ConnectionError:
                outcomes.append(b'reset')
                assert time.monotonic() - started < 0.5
        assert outcomes.count(b'reset') == 2 and outcomes.count(b'web1') == 2, outcomes
        assert lab.member('web2')['bound']
        assert lab.api('/api/vips/web')['rejected_total'] == {'member_refused': 2}


def test_admin_drain_and_disable_stop_new_sessions_only(tmp_path):
    with Lab(tmp_path, count=2) as lab:
        lab.wait_all_bound()
        connection = lab.keepalive()
        _status, pinned, _body = get(connection)
        other = next(name for name in lab.servers if name != pinned)
        for state in ('drain', 'disabled'):
            answer = lab.api(f'/api/vips/web/members/{pinned}/admin', 'PUT', {'state': state})
            assert answer['changed'] and answer['admin_state'] == state and not answer['bound']
            assert lab.api(f'/api/vips/web/members/{pinned}/admin', 'PUT', {'state': state})['changed'] is False
            assert get(connection)[1] == pinned  # existing session carries on
            assert {get(lab.keepalive())[1] for _connection in range(4)} == {other}
        assert lab.api(f'/api/vips/web/members/{pinned}/admin', 'PUT', {'state': 'enabled'})['bound']
        bad = lab.api(f'/api/vips/web/members/{pinned}/admin', 'PUT', {'state': 'offline'})
        assert bad['status'] == 400 and "'offline'" in bad['error'] and 'enabled, drain, disabled' in bad['error']
        assert [e['to'] for e in lab.events(pinned, kind='admin')] == ['drain', 'disabled', 'enabled']
        connection.close()


def test_control_api_views(tmp_path):
    with Lab(tmp_path, count=2) as lab:
        lab.wait_all_bound()
        connection = lab.keepalive()
        get(connection)
        status = lab.api('/api/status')
        assert status['ready'] and status['pid'] == os.getpid() and status['vips']['web'].startswith('127.0.0.60:')
        sessions = lab.api('/api/sessions')
        assert len(sessions) == 1 and sessions[0]['member'] in lab.servers and sessions[0]['client'].startswith('127.')
        assert lab.api('/api/sessions?member=nobody') == []
        member = lab.member('web1')
        assert member['state'] == 'up' and member['checks'][-1] == {'at': member['checks'][-1]['at'], 'ok': True, 'detail': 'HTTP 200'}
        missing = lab.api('/api/vips/web/members/web9')
        assert missing['status'] == 404 and 'web1, web2' in missing['error']
        assert lab.api('/api/vips/nope')['status'] == 404
        later = time.time()
        assert lab.api(f'/api/events?since={later}') == []
        import urllib.request
        with urllib.request.urlopen(lab.emulator.control_url + '/metrics', timeout=5) as answer:
            metrics = answer.read().decode()
        assert 'l4vip_member_bound{vip="web",member="web1"} 1' in metrics
        assert 'l4vip_sessions{vip="web",member="' in metrics
        connection.close()


def test_health_checks_leave_from_the_check_source(tmp_path):
    log = tmp_path / 'access.log'
    with Lab(tmp_path, count=1, check_source='127.0.0.9') as lab:
        lab.run(lab.servers['web1'].stop())
        from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import RealServer
        server = RealServer('web1', '127.0.0.61', lab.servers['web1'].port, str(lab.docroots['web1']), access_log=str(log))
        lab.servers['web1'] = server
        lab.run(server.start())
        lab.wait_all_bound()
        connection = lab.keepalive()
        get(connection)
        connection.close()
    sources = {line.split()[0]: line for line in log.read_text().splitlines()}
    assert '127.0.0.9' in sources and '/health_check.html' in sources['127.0.0.9']
    assert any(source != '127.0.0.9' for source in sources)  # the data path uses another address


def test_command_line_runs_until_sigterm(tmp_path):
    config = {'vips': [{'name': 'web', 'listen': '127.0.0.60:0', 'members': [{'name': 'web1', 'address': '127.0.0.61:9'}]}],
              'profile': {'interval': 0.2, 'check_timeout': 0.1}}
    (tmp_path / 'emulator.json').write_text(json.dumps(config))
    pidfile, state = tmp_path / 'emulator.pid', tmp_path / 'state.json'
    env = dict(os.environ, PYTHONPATH=os.environ['ANSIBLE_COLLECTIONS_PATH'])
    process = subprocess.Popen(
        [sys.executable, '-m', 'ansible_collections.l4vip.rollout.plugins.module_utils._emulator.daemon',
         '--config', str(tmp_path / 'emulator.json'), '--pidfile', str(pidfile), '--state-file', str(state)],
        env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith('l4vip emulator ready: control http://127.0.0.1:')
        assert int(pidfile.read_text()) == process.pid
        assert json.loads(state.read_text())['control_url'] in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()
    assert not pidfile.exists() and not state.exists()


def test_command_line_rejects_bad_config_naming_the_key(tmp_path):
    (tmp_path / 'bad.json').write_text(json.dumps({'vips': [{'name': 'web', 'listen': '127.0.0.60:0', 'members': []}]}))
    env = dict(os.environ, PYTHONPATH=os.environ['ANSIBLE_COLLECTIONS_PATH'])
    result = subprocess.run(
        [sys.executable, '-m', 'ansible_collections.l4vip.rollout.plugins.module_utils._emulator.daemon', '--config', str(tmp_path / 'bad.json')],
        env=env, capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 2
    assert 'vips[0].members: expected a non-empty list of members, got []' in result.stderr


def test_stop_closes_the_zombies_it_left_open(tmp_path):
    with Lab(tmp_path, count=1, profile={'reset_on_port_fail': True}) as lab:
        lab.wait_all_bound()
        sock = lab.open_raw()
        raw_get(sock)
        server = lab.servers['web1']
        lab.fail_health_check('web1')
        lab.wait_state('web1', 'down')
        assert lab.call(lambda: server.open_connections) == 1  # the zombie
        lab.thread.stop()
        wait_for('zombie closed by the stop', lambda: lab.call(lambda: server.open_connections) == 0, timeout=1.0)
        sock.close()
