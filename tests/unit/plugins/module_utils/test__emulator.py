"""The emulator's pure parts: configuration and the member state machine."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import (
    ConfigError,
    Endpoint,
    MemberConfig,
    load_config,
    parse_config,
    parse_endpoint,
)
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.core import Emulator
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.datapath import ClientSide, Session
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.health import CheckResult, Member, check
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile

GOOD = {
    'vips': [{'name': 'web', 'listen': '127.0.0.10:8080', 'members': [
        {'name': 'web1', 'address': '127.0.0.11:8080'}, {'name': 'web2', 'address': '[::1]:8081'}]}],
    'profile': {'interval': 0.2},
}


def test_good_config_parses_with_defaults():
    config = parse_config(GOOD)
    assert config.vips[0].members[1].address == Endpoint('::1', 8081)
    assert str(config.vips[0].members[1].address) == '[::1]:8081'
    assert config.profile.interval == 0.2 and config.profile.retry == 1
    assert config.control == Endpoint('127.0.0.1', 0)  # loopback unless told otherwise
    assert config.aged_session_action == 'rst'
    assert config.check_source == '127.0.0.2'
    assert config.digest() == parse_config(json.loads(json.dumps(GOOD))).digest()
    assert config.digest() != parse_config(dict(GOOD, profile={'interval': 0.3})).digest()


def with_vip(**changes):
    vip = dict(GOOD['vips'][0], **changes)
    return dict(GOOD, vips=[vip])


@pytest.mark.parametrize(
    ('raw', 'path', 'needle'),
    [
        ({}, 'vips', 'non-empty list'),
        (dict(GOOD, vips=[]), 'vips', 'non-empty list'),
        (dict(GOOD, colour='red'), 'colour', 'unknown key'),
        (with_vip(listen='localhost:80'), 'vips[0].listen', 'IP address'),
        (with_vip(listen='127.0.0.1:99999'), 'vips[0].listen', 'port from 0 to 65535'),
        (with_vip(listen=8080), 'vips[0].listen', 'address:port'),
        (with_vip(members=[]), 'vips[0].members', 'non-empty list'),
        (with_vip(members=[{'name': 'a b', 'address': '127.0.0.1:1'}]), 'vips[0].members[0].name', 'without spaces'),
        (with_vip(members=[{'name': 'a', 'address': '127.0.0.1:1'}, {'name': 'a', 'address': '127.0.0.1:2'}]), 'vips[0].members', 'unique'),
        (with_vip(members=[{'name': 'a', 'address': '127.0.0.1:1', 'weight': 3}]), 'vips[0].members[0].weight', 'unknown key'),
        (with_vip(balancing='random'), 'vips[0].balancing', 'round_robin, least_sessions'),
        (dict(GOOD, profile={'interval': -1}), 'profile.interval', 'greater than 0'),
        (dict(GOOD, profile={'health_check': 'l3'}), 'profile.health_check', 'l7, l4'),
        (dict(GOOD, aged_session_action='ignore'), 'aged_session_action', 'rst, drop'),
        (dict(GOOD, check_source='self'), 'check_source', 'IP address'),
        (dict(GOOD, seed='x'), 'seed', 'integer'),
        (dict(GOOD, control='0.0.0.0:http'), 'control', 'port'),
    ],
)
def test_bad_config_names_the_key(raw, path, needle):
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert caught.value.path == path
    assert str(caught.value).startswith(f'{path}: ')
    assert needle in str(caught.value)


def test_endpoint_default_port():
    assert parse_endpoint('x', '127.0.0.1', default_port=80) == Endpoint('127.0.0.1', 80)


def test_load_config_reads_json_and_yaml(tmp_path):
    (tmp_path / 'a.json').write_text(json.dumps(GOOD))
    (tmp_path / 'b.yml').write_text(
        'vips:\n  - name: web\n    listen: 127.0.0.10:8080\n    members:\n      - {name: web1, address: "127.0.0.11:8080"}\n'
        'profile: {interval: 0.5, retry: 2}\n')
    assert load_config(str(tmp_path / 'a.json')).vips[0].name == 'web'
    assert load_config(str(tmp_path / 'b.yml')).profile.retry == 2


def feed(member, profile, results):
    """Feed pass/fail results; return the health after each one."""
    seen = []
    for ok in results:
        changed = member.observe(CheckResult(0.0, ok, ''), profile)
        if changed:
            member.health = changed
            if changed != 'down':
                member.passes = 0
        seen.append(member.health)
    return seen


@pytest.mark.parametrize(
    ('profile', 'results', 'expected'),
    [
        # A new member starts down; one pass (rise 1) binds it.
        ({}, [True], ['up']),
        # First failure: Suspect (still bound); retry (1) more: down.
        ({}, [True, False, False], ['up', 'suspect', 'down']),
        # A pass while Suspect clears it.
        ({}, [True, False, True, False], ['up', 'suspect', 'up', 'suspect']),
        ({'retry': 2}, [True, False, False, False], ['up', 'suspect', 'suspect', 'down']),
        ({'retry': 0}, [True, False], ['up', 'down']),
        # rise 2: a single pass while down is not enough, and a failure restarts the count.
        ({'rise': 2}, [True, True, False, False, True, False, True, True], ['down', 'up', 'suspect', 'down', 'down', 'down', 'down', 'up']),
    ],
)
def test_member_state_machine(profile, results, expected):
    member = Member('web', MemberConfig('web1', Endpoint('127.0.0.11', 80)), 0.0)
    assert feed(member, parse_profile(profile), results) == expected


def test_bound_follows_health_and_admin():
    member = Member('web', MemberConfig('web1', Endpoint('127.0.0.11', 80)), 0.0)
    assert not member.bound
    member.health = 'suspect'
    assert member.bound  # Suspect still takes new connections
    for admin in ('drain', 'disabled'):
        member.admin = admin
        assert not member.bound
    member.admin = 'enabled'
    assert member.as_dict()['bound'] is True


# --- one health check, against a small server on loopback ------------------------------------------

async def check_against(answer: bytes | None, profile) -> tuple[bool, str, float]:
    """One check of a server that answers every request with ``answer`` (None: never answers); (ok, detail, seconds)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b'\r\n\r\n')
            if answer is not None:
                writer.write(answer + b'\r\nContent-Length: 0\r\n\r\n')
                await writer.drain()
            else:
                await reader.read()  # silent until the check gives up and closes
        writer.close()

    server = await asyncio.start_server(serve, '127.0.0.1', 0)
    async with server:
        started = time.monotonic()
        ok, detail = await check(Endpoint('127.0.0.1', server.sockets[0].getsockname()[1]), profile, None)
        return ok, detail, time.monotonic() - started


@pytest.mark.parametrize(
    ('answer', 'passed', 'detail'),
    [
        (b'HTTP/1.1 200 OK', True, 'HTTP 200'),
        (b'HTTP/1.1 404 Not Found', False, 'HTTP 404'),
        (b'HTTP/1.1 503 Service Unavailable', False, 'HTTP 503'),
        (b'HTTP/1.0 204 No Content', False, 'HTTP 204'),
        (b'SSH-2.0-OpenSSH_9.2', False, "not an HTTP answer: b'SSH-2.0-OpenSSH_9.2\\r\\n'"),
    ],
)
def test_an_l7_check_passes_on_200_only(answer, passed, detail):
    ok, seen, _seconds = asyncio.run(check_against(answer, parse_profile({'interval': 0.2, 'check_timeout': 0.1})))
    assert (ok, seen) == (passed, detail)


def test_an_unanswered_check_fails_when_the_next_one_is_due_however_long_its_timeout():
    ok, seen, seconds = asyncio.run(check_against(None, parse_profile({'interval': 0.2, 'check_timeout': 5})))
    assert (ok, seen) == (False, 'no answer within 0.2s')
    # Given up at the interval, not at the 5 s timeout; the margin is for a loaded machine.
    assert 0.19 <= seconds < 1.5, seconds


def test_an_l4_check_passes_on_an_open_port_and_fails_on_a_closed_one():
    profile = parse_profile({'interval': 0.2, 'check_timeout': 0.1, 'health_check': 'l4'})
    assert asyncio.run(check_against(None, profile))[:2] == (True, 'port open')
    with socket.socket() as closed:
        closed.bind(('127.0.0.1', 0))
        port = closed.getsockname()[1]  # bound, not listening: a connection is refused
        assert asyncio.run(check(Endpoint('127.0.0.1', port), profile, None)) == (False, 'connection refused')


# --- session aging: a sweep looks at the keys past the idle timeout, not at the whole table --------

def table(emulator: Emulator, last_activities: list[float]) -> list[Session]:
    """Sessions in the table as connect_member puts them there, with these last activities."""
    vip = emulator.vips['web']
    sessions = []
    for last in last_activities:
        session = Session(emulator, vip, ClientSide(emulator, vip))
        session.last_activity, session.in_table = last, True
        emulator.sessions[session.id] = session
        heapq.heappush(emulator.aging, (last, session.id))
        sessions.append(session)
    return sessions


def test_a_sweep_ages_the_idle_sessions_and_looks_at_nothing_else():
    emulator = Emulator(parse_config(dict(GOOD, profile={'idle_timeout': 600})))
    busy = table(emulator, [1000.0 + i * 0.001 for i in range(5000)])
    idle = table(emulator, [100.0, 200.0, 300.0])
    assert emulator.sweep(now=1000.0) == 3
    assert emulator.last_sweep['looked_at'] == 3 and emulator.last_sweep['aged'] == 3
    assert all(session.cut and session.id not in emulator.sessions for session in idle)
    assert len(emulator.sessions) == len(busy) and not any(session.cut for session in busy)
    assert [event['detail'] for event in emulator.events][-1].endswith('idle past 600s')


def test_a_session_active_since_its_key_goes_back_once_and_a_gone_one_is_dropped():
    emulator = Emulator(parse_config(dict(GOOD, profile={'idle_timeout': 10})))
    active, gone = table(emulator, [0.0, 0.0])
    active.last_activity = 95.0  # traffic since it entered the table
    gone.forget()  # the member's FIN
    assert emulator.sweep(now=100.0) == 0
    assert emulator.last_sweep['looked_at'] == 2 and emulator.aging == [(95.0, active.id)]
    # Not looked at again before its new key is past the timeout, then aged if nothing came.
    assert (emulator.sweep(now=104.0), emulator.last_sweep['looked_at']) == (0, 0)
    assert (emulator.sweep(now=105.5), emulator.last_sweep['looked_at']) == (1, 1) and active.cut


# Imports the daemon's entry point as `python -m` does (under another name, so main() does not run) and lists
# every module of the collection that came with it.
IMPORTS_OF_THE_DAEMON = '''
import json, runpy, sys
ran = runpy.run_module(sys.argv[1], run_name='imported')
loaded = [m.__file__ for n, m in sys.modules.items() if n.startswith('ansible_collections.') and getattr(m, '__file__', None)]
print(json.dumps(sorted(set(loaded + [ran['__file__']]))))
'''


def test_the_daemon_gets_every_module_utils_file_it_imports(tmp_path):
    """What the l4_emulator module installs on the target for its daemon: the emulator package and its imports, found by
    reading them (a list kept by hand missed the option checks once they moved to a file of their own). From that copy
    alone, the daemon finds every module it imports, and nothing of it is left out or comes from elsewhere."""
    from ansible_collections.l4vip.rollout.plugins.module_utils import _emulator_service as service
    assert sorted(service.sources()) == [
        '_emulator/__init__.py', '_emulator/api.py', '_emulator/config.py', '_emulator/core.py',
        '_emulator/daemon.py', '_emulator/datapath.py', '_emulator/health.py', '_emulator/metrics.py', '_options.py', '_timing.py',
    ]
    service._install_sources(str(tmp_path))  # pylint: disable=protected-access
    env = {key: value for key, value in os.environ.items() if key != 'PYTHONPATH'}
    run = subprocess.run([sys.executable, '-s', '-c', IMPORTS_OF_THE_DAEMON, service.ENTRY_POINT], env=dict(env, PYTHONPATH=str(tmp_path)),
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    module_utils = tmp_path.joinpath(*service.PACKAGE.split('.'))
    loaded = [pathlib.Path(path) for path in json.loads(run.stdout.splitlines()[-1])]
    assert all(module_utils in path.parents for path in loaded), loaded
    assert sorted(path.relative_to(module_utils).as_posix() for path in loaded) == sorted(service.sources())
