"""capacity_guard through real ansible-playbook against real HAProxy + nginx: the count is HAProxy's own."""

from __future__ import annotations

import json

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile
from ansible_collections.l4vip.rollout.tests.harness.ansible import run_playbook
from ansible_collections.l4vip.rollout.tests.harness.fixtures import haproxy_factory, nginx_factory  # noqa: F401  pylint: disable=unused-import

MEMBERS = [(f'web{n}', f'127.0.0.23{n}', 22230 + n) for n in (1, 2, 3)]


def guard(endpoint: str, **args):
    return [{'name': 'guard', 'l4vip.rollout.capacity_guard': dict(provider='haproxy', endpoint=endpoint, pool='web', member='web1', **args)}]


@pytest.mark.real
def test_guard_counts_what_haproxy_binds(tmp_path, nginx_factory, haproxy_factory):  # noqa: F811  pylint: disable=redefined-outer-name
    for name, address, port in MEMBERS:
        nginx_factory(name, address, port)
    haproxy = haproxy_factory(parse_profile({'interval': 0.2, 'retry': 1}), ('127.0.0.230', 22230), MEMBERS, backend='web',
                              check_source='127.0.0.239')
    endpoint = str(haproxy.socket_path)

    allowed = run_playbook(tmp_path, guard(endpoint, leaving=['web1', 'web2'], min_bound=1)).task('guard')
    assert not allowed['failed'] and allowed['remaining'] == ['web3'] and allowed['bound_members'] == ['web1', 'web2', 'web3']

    refused = run_playbook(tmp_path, guard(endpoint, leaving=['web1', 'web2'], min_bound=2)).task('guard')
    assert refused['failed'] and refused['msg'] == (
        "capacity guard: taking out web1, web2 leaves 1 of 3 bound member(s) in pool 'web' (web3); min_bound is 2")

    # A member HAProxy holds in maintenance is not capacity, whatever the inventory says.
    haproxy.runtime('set server web/web3 state maint')
    refused = run_playbook(tmp_path, guard(endpoint, min_bound=2)).task('guard')
    assert refused['failed'] and refused['remaining'] == ['web2']

    unknown = run_playbook(tmp_path, guard(endpoint, leaving=['web9'])).task('guard')
    assert unknown['failed'] and unknown['msg'] == "leaving: the L4 has no member 'web9' in pool 'web'; its members are web1, web2, web3"


def test_guard_without_a_pool_listing_warns_and_passes(tmp_path):
    result = run_playbook(tmp_path, [{'name': 'guard', 'l4vip.rollout.capacity_guard': {'provider': 'timer', 'min_bound': 3}}]).task('guard')
    assert not result['failed'] and result['checked'] is False
    assert "capacity not checked: provider 'timer' cannot list the pool" in ' '.join(result['warnings'])


def test_bad_min_bound_names_the_option(tmp_path):
    result = run_playbook(tmp_path, [{'name': 'guard', 'l4vip.rollout.capacity_guard': {'provider': 'timer', 'min_bound': -1}}]).task('guard')
    assert result['failed'] and result['msg'] == 'min_bound: must be 0 or more, got -1'


@pytest.mark.parametrize('in_process', [True, False], ids=['in-process', 'module'])
def test_claims_belong_to_the_ansible_playbook_run_and_pass_on_when_it_is_gone(tmp_path, in_process):
    """In the controller's process or as a module run: the claim's owner is the run, not the task or the module's process."""
    claims_dir = tmp_path / 'claims'
    args = {'provider': 'timer', 'pool': 'web', 'pool_members': ['web1', 'web2', 'web3'], 'members': ['web1'], 'min_bound': 2,
            'claims_dir': str(claims_dir)}
    task = {'name': 'guard', 'l4vip.rollout.capacity_guard': args, 'vars': {'l4vip_rollout_in_process': in_process}}
    predicted = run_playbook(tmp_path, [task], check=True).task('guard')
    assert not predicted['failed'] and predicted['changed'] and predicted['claimed'] == ['web1'] and not claimed(claims_dir)
    # One run claims, then renews its own claim without a change.
    run = run_playbook(tmp_path, [task, dict(task, name='again')])
    first, again = run.task('guard'), run.task('again')
    assert not first['failed'] and first['changed'] and first['claimed'] == ['web1'] and claimed(claims_dir) == ['web1']
    assert not again['failed'] and not again['changed'] and again['claimed'] == [], again
    # The next run finds that run's process gone from this machine and takes its claim over, saying so.
    later = run_playbook(tmp_path, [task]).task('guard')
    assert later['changed'] and later['taken_over'] == ['web1'], later
    assert any('took over the claim of web1: its owner' in warning and 'is gone' in warning for warning in later['warnings']), later
    released = run_playbook(tmp_path, [dict(task, **{'l4vip.rollout.capacity_guard': dict(args, release=True, force=True)})]).task('guard')
    assert released['changed'] and released['released'] == ['web1'] and not claimed(claims_dir)


def claimed(directory) -> list[str]:
    """The members the pool's claims file holds (none when there is no file yet)."""
    path = directory / 'web.claims.json'
    return sorted(json.loads(path.read_text())['claims']) if path.exists() else []
