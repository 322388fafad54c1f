"""Every module given bad option values (hypothesis draws them): a clear error that names the
option, and neither the files nor the L4 changed.

The modules run in-process (their real main(), with patched arguments) against a live
emulator; a bad value that slipped past validation would act on it (disable a member, move the
health-check file) or wait, and be caught here.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import typing as t

import pytest
from ansible.module_utils.testing import patch_module_args
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.l4vip.rollout.tests.harness.lab import Lab

NOT_A_NUMBER = st.sampled_from(['soon', 'ten seconds', '', '1s', [], {}])
NOT_POSITIVE = st.one_of(st.floats(max_value=0, allow_nan=False), st.sampled_from([-1, 0, math.inf, -math.inf]))
NOT_A_CHOICE = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() and s not in {
    'down', 'up', 'timer', 'emulator', 'haproxy', 'http', 'access_log', 'fast', 'timeout', 'fail', 'disabled', 'drain', 'enabled',
    'in_service', 'out_of_service', 'query'})
BAD_PROFILE = st.one_of(
    st.builds(lambda v: {'interval': v}, st.one_of(NOT_POSITIVE, NOT_A_NUMBER)),
    st.builds(lambda v: {'retry': v}, st.one_of(st.integers(max_value=-1), NOT_A_NUMBER)),
    st.builds(lambda v: {'rise': v}, st.one_of(st.integers(max_value=0), NOT_A_NUMBER)),
    st.builds(lambda v: {'health_check': v}, NOT_A_CHOICE),
    st.builds(lambda k: {k: 1}, st.sampled_from(['intervall', 'retries', 'fall', 'timeout'])),
)
COMMON = {
    'provider': NOT_A_CHOICE,
    'poll_interval': st.one_of(NOT_POSITIVE, NOT_A_NUMBER),
    'profile': BAD_PROFILE,
}
BAD = {
    'member_wait': dict(COMMON, state=NOT_A_CHOICE, failure=NOT_A_CHOICE, fallback=NOT_A_CHOICE, timeout=st.one_of(NOT_POSITIVE, NOT_A_NUMBER),
                        since=NOT_A_NUMBER),
    'member_admin': dict(COMMON, state=NOT_A_CHOICE, admin_values=st.builds(lambda k: {k: ['x']}, NOT_A_CHOICE)),
    'session_drain': dict(COMMON, port=st.one_of(st.integers(max_value=0), st.integers(min_value=65536), NOT_A_NUMBER),
                          threshold=st.integers(max_value=-1), timeout=st.one_of(st.floats(max_value=-0.001, allow_nan=False), NOT_A_NUMBER),
                          address=st.sampled_from(['not-an-ip', '300.1.1.1', '127.0.0', 'localhost:80'])),
    'capacity_guard': dict(COMMON, min_bound=st.one_of(st.integers(max_value=-1), NOT_A_NUMBER),
                           claim_lease=st.one_of(NOT_POSITIVE, NOT_A_NUMBER)),
    'health_check': {'state': NOT_A_CHOICE, 'path': st.sampled_from(['health_check.html', '../x', 'relative/dir/file']),
                     'verify_timeout': st.one_of(NOT_POSITIVE, NOT_A_NUMBER), 'verify_url': st.sampled_from(['ftp://h/x', 'no scheme', 'http://'])},
}


def run_module(name: str, args: dict[str, t.Any]) -> dict[str, t.Any]:
    module = importlib.import_module(f'ansible_collections.l4vip.rollout.plugins.modules.{name}')
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main()
    return json.loads(out.getvalue())


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp('bad-input'), count=2, profile={'interval': 0.2, 'retry': 1}) as running:
        running.wait_all_bound()
        yield running


def valid_args(lab: Lab, name: str) -> dict[str, t.Any]:
    l4 = {'provider': 'emulator', 'endpoint': lab.emulator.control_url, 'pool': 'web', 'member': 'web1', 'poll_interval': 0.05}
    return {
        'member_wait': dict(l4, state='down', timeout=0.3),
        'member_admin': dict(l4, state='disabled'),
        'session_drain': dict(l4, port=lab.servers['web1'].port, timeout=0.2),
        'capacity_guard': dict(l4, min_bound=1),
        'health_check': {'path': str(lab.docroots['web1'] / 'health_check.html'), 'state': 'out_of_service'},
    }[name]


def snapshot(lab: Lab) -> tuple[t.Any, ...]:
    """What a module could change: the files (health-check renames) and each member's admin state on the L4.

    Not whether the L4 binds a member: that follows the L4's own health checks, which a module reaches only
    through those two (on a loaded machine a late check can flip it with no module involved).
    """
    files = sorted((str(p.relative_to(lab.tmp_path)), p.stat().st_mode) for p in lab.tmp_path.rglob('*'))
    members = [(m['name'], m['admin_state']) for m in lab.api('/api/vips/web')['members']]
    return files, members


@pytest.mark.parametrize('name', sorted(BAD))
def test_bad_values_name_the_option_and_change_nothing(lab, name):
    before = snapshot(lab)
    tried: list[str] = []

    # Derandomized: the same 40 examples every run, so whether they cover every option does not hang on the draw.
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None)
    @given(data=st.data())
    def check(data):
        option = data.draw(st.sampled_from(sorted(BAD[name])), label='option')
        value = data.draw(BAD[name][option], label='value')
        result = run_module(name, dict(valid_args(lab, name), **{option: value}))
        assert result.get('failed'), (option, value, result)
        assert option in result['msg'], (option, value, result['msg'])
        assert snapshot(lab) == before, (option, value)
        tried.append(option)

    check()  # pylint: disable=no-value-for-parameter
    # Hypothesis really tried many bad values, over every option of the module.
    assert len(tried) >= 40 and set(tried) == set(BAD[name]), sorted(set(tried))
