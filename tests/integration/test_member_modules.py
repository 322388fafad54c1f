"""member_wait and member_admin through real ansible-playbook, against the emulator and real HAProxy + nginx.

member_wait must return within poll_interval + 0.3 s of the L4's own transition: the module is
started first, the member's health check is failed once the module is seen polling, and the
module's ``ended_at`` is compared with the transition time the L4 itself reports.
"""

from __future__ import annotations

import contextlib
import pathlib
import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _haproxy, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import down_window, parse_profile
from ansible_collections.l4vip.rollout.tests.harness.ansible import Background, module_running, run_playbook
from ansible_collections.l4vip.rollout.tests.harness.fixtures import haproxy_factory, nginx_factory  # noqa: F401  pylint: disable=unused-import
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab, wait_for
from ansible_collections.l4vip.rollout.tests.harness.module_looks import questions_to

POLL = 0.05
REACTION = POLL + 0.3
# One interval of a second: long enough that the module is surely polling before the L4 can act.
PROFILE = {'interval': 1.0, 'retry': 1, 'check_timeout': 0.5}


def wait_task(**args: t.Any) -> list[dict[str, t.Any]]:
    # As a module even on the controller: the tests watch for its process to know the wait has begun.
    return [{'name': 'wait', 'l4vip.rollout.member_wait': dict(poll_interval=POLL, profile=PROFILE, timeout=10, **args),
             'vars': {'l4vip_rollout_in_process': False}}]


def start_waiting(tmp_path: pathlib.Path, asked: t.Callable[[], int] | None = None, **args: t.Any) -> Background:
    """The wait, started in a playbook; back once it has asked the L4 (``asked`` counts the L4's answers; by default
    they are counted where the provider asks, see questions_to)."""
    with contextlib.ExitStack() as stack:
        asked = asked or questions_to(args['provider'], args['endpoint'], stack)
        before = asked()
        run = Background(tmp_path, wait_task(**args))
        wait_for('member_wait running', lambda: module_running('member_wait'), timeout=30, poll=0.02)
        wait_for("member_wait's first question to the L4", lambda: asked() > before, timeout=30, poll=0.01)
    return run


# -- member_wait ----------------------------------------------------------------------------


def test_member_wait_emulator_returns_right_after_the_transition(tmp_path):
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound(timeout=3)
        for state, act in (('down', lab.fail_health_check), ('up', lab.pass_health_check)):
            run = start_waiting(tmp_path, asked=lambda: lab.call(lambda: lab.emulator.api_requests), state=state, provider='emulator',
                                endpoint=lab.emulator.control_url, pool='web', member='web1')
            acted = act('web1')
            result = run.join().task('wait')
            assert not result['failed'], result
            transition = next(e['at'] for e in lab.events('web1') if e['to'] == state and e['at'] > acted)
            assert 0 <= result['ended_at'] - transition <= REACTION, (result, transition)
            assert result['bound'] is (state == 'up') and result['polls'] > 1


def test_member_wait_haproxy_and_access_log(tmp_path, nginx_factory, haproxy_factory):  # noqa: F811  pylint: disable=redefined-outer-name
    profile = parse_profile(PROFILE)
    web1 = nginx_factory('web1', '127.0.0.121', 18121)
    web2 = nginx_factory('web2', '127.0.0.122', 18122)
    haproxy = haproxy_factory(profile, ('127.0.0.120', 18120), [('web1', '127.0.0.121', 18121), ('web2', '127.0.0.122', 18122)],
                              backend='web', check_source='127.0.0.129')
    common = dict(state='down', pool='web', member='web1')
    for provider, endpoint in (('haproxy', str(haproxy.socket_path)), ('access_log', str(web1.access_log_path))):
        extra = {'sources': ['127.0.0.129'], 'since': time.time()} if provider == 'access_log' else {}
        run = start_waiting(tmp_path, provider=provider, endpoint=endpoint, **common, **extra)
        web1.disable_health_check()
        haproxy.wait_member_state('web1', 'down', timeout=5, poll=0.005)
        transition = time.time()
        result = run.join().task('wait')
        assert not result['failed'], result
        assert -0.05 <= result['ended_at'] - transition <= REACTION, (provider, result, transition)
        web1.enable_health_check()
        haproxy.wait_member_state('web1', 'up', timeout=5, poll=0.005)
    assert web2.is_running


def test_member_wait_timer_waits_the_models_worst_case_less_elapsed(tmp_path):
    profile = parse_profile({'interval': 1.5, 'retry': 1})
    since = time.time() - 0.5
    result = run_playbook(tmp_path, [{'name': 'wait', 'l4vip.rollout.member_wait': {
        'state': 'down', 'provider': 'timer', 'profile': profile.as_dict(), 'since': since}}]).task('wait')
    assert result['timer_wait'] == down_window(profile).high == 3.0
    # It ends when the worst case has passed since `since`, having waited only what was left of it.
    assert 3.0 <= result['ended_at'] - since <= 3.2
    assert result['elapsed'] <= 2.5


def test_member_wait_unreachable_fails_or_falls_back(tmp_path):
    args = dict(state='down', provider='emulator', endpoint='http://127.0.0.1:9', pool='web', member='web1')
    failed = run_playbook(tmp_path, wait_task(**args)).task('wait')
    assert failed['failed'] and failed['msg'].startswith('cannot reach the L4 at http://127.0.0.1:9/api/vips/web')
    fast = {'interval': 0.2, 'retry': 1}
    run = run_playbook(tmp_path, [{'name': 'wait', 'l4vip.rollout.member_wait': dict(args, fallback='timer', profile=fast)}])
    result = run.task('wait')
    assert not result['failed'] and result['fallback_used'] and result['timer_wait'] == pytest.approx(0.4)
    assert 0.4 <= result['elapsed'] < 1.0
    assert "falling back to the timer: waiting 0.4s, the timing model's worst case" in ' '.join(result['warnings'])


def test_member_wait_gives_up_saying_what_it_saw(tmp_path):
    with Lab(tmp_path, count=1) as lab:
        lab.wait_all_bound()
        result = run_playbook(tmp_path, [{'name': 'wait', 'l4vip.rollout.member_wait': dict(
            state='down', provider='emulator', endpoint=lab.emulator.control_url, pool='web', member='web1', timeout=0.5)}]).task('wait')
    assert result['failed'] and result['msg'] == 'web1 was not down within 0.5s; the L4 last said: up, admin enabled'
    assert result['bound'] is True and result['elapsed'] >= 0.5


def test_member_wait_check_mode_skips(tmp_path):
    tasks = wait_task(state='down', provider='emulator', endpoint='http://127.0.0.1:9', pool='web', member='web1')
    run = run_playbook(tmp_path, tasks, check=True)
    result = run.task('wait')
    assert result['waited'] is False and result['elapsed'] == 0 and not result['failed']
    assert result['msg'] == 'check mode: the wait for down was skipped'


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        ({'state': 'sideways'}, 'state'),
        ({'state': 'down', 'provider': 'carrier-pigeon'}, 'provider'),
        ({'state': 'down', 'provider': 'emulator'}, 'endpoint, pool'),
        ({'state': 'down', 'profile': {'interval': -1}}, 'profile.interval: expected a number of seconds greater than 0, got -1.0'),
        ({'state': 'down', 'profile': {'retry': 'many'}}, 'retry'),
        ({'state': 'down', 'timeout': 0}, 'timeout: expected a number of seconds greater than 0, got 0.0'),
        ({'state': 'down', 'provider': 'http', 'endpoint': 'http://127.0.0.1:9', 'query': 'a[?'}, "query: not a valid JMESPath expression: 'a[?'"),
        ({'state': 'down', 'provider': 'haproxy', 'endpoint': 'nowhere', 'pool': 'p', 'member': 'm'},
         "endpoint: expected a unix socket path or host:port, got 'nowhere'"),
    ],
)
def test_member_wait_bad_values_name_the_option(tmp_path, args, message):
    result = run_playbook(tmp_path, [{'name': 'wait', 'l4vip.rollout.member_wait': args}]).task('wait')
    assert result['failed'] and message in result['msg'], result['msg']


# -- member_admin ---------------------------------------------------------------------------


def admin_task(state: str, **args: t.Any) -> list[dict[str, t.Any]]:
    return [{'name': 'admin', 'l4vip.rollout.member_admin': dict(state=state, **args)}]


def four_times(tmp_path: pathlib.Path, state: str, read: t.Callable[[], str], check_mode: bool = True, **args: t.Any) -> None:
    """Check mode, real, check mode, real: the first two change, the last two do not; an independent reader agrees.

    Without ``check_mode`` only the real runs (check mode does not depend on the state asked for).
    """
    before = read()
    assert before != state
    if check_mode:
        first_check = run_playbook(tmp_path, admin_task(state, **args), check=True).task('admin')
        assert first_check['changed'] and read() == before
    real = run_playbook(tmp_path, admin_task(state, **args)).task('admin')
    assert real['changed'] and (real['previous_admin_state'], real['admin_state']) == (before, state)
    assert read() == state
    for check in (True, False) if check_mode else (False,):
        again = run_playbook(tmp_path, admin_task(state, **args), check=check).task('admin')
        assert not again['changed'] and not again['failed'], again
    assert read() == state


def test_member_admin_emulator(tmp_path):
    with Lab(tmp_path, count=2) as lab:
        lab.wait_all_bound()
        args = dict(provider='emulator', endpoint=lab.emulator.control_url, pool='web', member='web1')

        def read() -> str:
            return lab.call(lambda: lab.emulator.member('web', 'web1').admin)
        for state in ('disabled', 'drain', 'enabled'):
            four_times(tmp_path, state, read, check_mode=state == 'disabled', **args)
        diff = run_playbook(tmp_path, [{'name': 'admin', 'l4vip.rollout.member_admin': dict(state='drain', **args), 'diff': True}]).task('admin')
        assert diff['diff'] == {'before': 'admin_state: enabled\n', 'after': 'admin_state: drain\n'}
        assert [e['to'] for e in lab.events('web1', kind='admin')] == ['disabled', 'drain', 'enabled', 'drain']


def test_member_admin_haproxy(tmp_path, nginx_factory, haproxy_factory):  # noqa: F811  pylint: disable=redefined-outer-name
    nginx_factory('web1', '127.0.0.131', 18131)
    haproxy = haproxy_factory(parse_profile({'interval': 0.2, 'check_timeout': 0.1}), ('127.0.0.130', 18130),
                              [('web1', '127.0.0.131', 18131)], backend='web')
    args = dict(provider='haproxy', endpoint=str(haproxy.socket_path), pool='web', member='web1')

    def read() -> str:
        # Independent of the module: the harness's own parser of the same runtime answer.
        row = haproxy.server_states()['web1']
        admin = int(row['srv_admin_state'])
        return 'disabled' if admin & 0x01 else 'drain' if admin & 0x08 else 'enabled'
    for state in ('disabled', 'drain', 'enabled'):
        four_times(tmp_path, state, read, check_mode=state == 'disabled', **args)
    missing_member = {**args, 'member': 'web9'}
    missing = run_playbook(tmp_path, admin_task('disabled', **missing_member)).task('admin')
    assert missing['failed'] and "HAProxy has no server 'web9' in backend 'web'; its servers are web1" in missing['msg']
    assert _haproxy.backend_states(str(haproxy.socket_path), 'web', ['web1'])['web1'].admin_state == 'enabled'


def test_member_admin_refuses_read_only_providers(tmp_path):
    result = run_playbook(tmp_path, admin_task('disabled', provider='access_log', endpoint='/var/log/nginx/access.log')).task('admin')
    writers = ', '.join(_providers.providers_that_can(_providers.Capability.ADMIN))
    assert writers.startswith('emulator, haproxy, http, ')
    assert result['failed'] and result['msg'] == f"provider: 'access_log' cannot set an admin state; use one of {writers}"
