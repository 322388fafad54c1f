"""The aws_elbv2 provider against moto's AWS API, run as a server on 127.0.0.1: read, admin (deregister, register), the
pool, a batch, credentials from the options or the environment, and a clear error on each bad option.

What this shows: the provider's real boto3 requests (DescribeTargetHealth, DeregisterTargets, RegisterTargets) over
HTTP, its readings of the answers, and that each admin change reaches the API (checked with a client of the test's
own). What it cannot: moto's target health does not move by itself - a registered target is ``healthy`` at once and
a deregistered one is gone at once, with no health checks, no ``initial``, no ``draining`` for the deregistration
delay and no ``unhealthy``. Those readings are shown with AWS's documented answers in
tests/unit/plugins/module_utils/test__elbv2.py.

The targets are IP targets 198.18.0.11-12 of a VPC 198.18.0.0/16 that exists only inside moto: nothing connects to them.
"""

from __future__ import annotations

import itertools
import logging
import socket

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ansible_collections.l4vip.rollout.plugins.module_utils import _l4_steps, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile

REGION = 'eu-west-1'
PROFILE = parse_profile({'interval': 0.2, 'retry': 1, 'rise': 1})
WEB1, WEB2 = '198.18.0.11', '198.18.0.12'
KEYS = {'aws_access_key': 'testing', 'aws_secret_key': 'testing-secret'}
GROUPS = itertools.count(1)


@pytest.fixture(scope='module')
def moto_endpoint():
    logging.getLogger('werkzeug').setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f'http://{host}:{port}'
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_aws_of_this_machine(monkeypatch, tmp_path):
    """Only what a test gives: no credentials or configuration of this machine, and never the instance metadata service."""
    for name in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_DEFAULT_REGION', 'AWS_REGION'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'no-aws-config'))
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'no-aws-credentials'))
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')


@pytest.fixture
def group(moto_endpoint):
    """A target group of its own per test, WEB1 and WEB2 registered on port 80; (its ARN, a boto3 client of the test's)."""
    client_options = dict(endpoint_url=moto_endpoint, region_name=REGION, aws_access_key_id='testing', aws_secret_access_key='testing')
    ec2, elbv2 = boto3.client('ec2', **client_options), boto3.client('elbv2', **client_options)
    vpc = ec2.create_vpc(CidrBlock='198.18.0.0/16')['Vpc']['VpcId']
    arn = elbv2.create_target_group(Name=f'web{next(GROUPS)}', Protocol='HTTP', Port=80, VpcId=vpc, TargetType='ip')['TargetGroups'][0]['TargetGroupArn']
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{'Id': WEB1}, {'Id': WEB2}])
    return arn, elbv2


def registered(elbv2, arn):
    """What the API itself holds, asked with the test's own client."""
    return sorted((d['Target']['Id'], d['Target']['Port']) for d in elbv2.describe_target_health(TargetGroupArn=arn)['TargetHealthDescriptions'])


def params(endpoint, arn, **more):
    base = dict({key: None for key in _l4_steps.member_admin_spec()}, provider='aws_elbv2', endpoint=endpoint, pool=arn, member=WEB1,
                validate_certs=True, headers={}, poll_interval=0.05, **KEYS)
    return dict(base, **more)


def test_reads_deregisters_and_registers_again(moto_endpoint, group):
    arn, elbv2 = group
    web1 = _providers.build_provider(params(moto_endpoint, arn), PROFILE)
    seen = web1.observe()
    assert (seen.bound, seen.observed, seen.admin_state) == (True, 'healthy', 'enabled')
    assert web1.pool_bindings() == {WEB1: True, WEB2: True}

    out = _l4_steps.member_admin(params(moto_endpoint, arn, state='disabled'), _l4_steps.Context())
    assert (out['changed'], out['previous_admin_state'], out['admin_state']) == (True, 'enabled', 'disabled')
    assert registered(elbv2, arn) == [(WEB2, 80)]
    assert (web1.observe().bound, web1.observe().observed) == (False, 'not registered in the target group')
    assert web1.pool_bindings() == {WEB2: True}
    again = _l4_steps.member_admin(params(moto_endpoint, arn, state='disabled'), _l4_steps.Context())
    assert again['changed'] is False

    back = _l4_steps.member_admin(params(moto_endpoint, arn, state='enabled'), _l4_steps.Context())
    assert (back['changed'], back['previous_admin_state']) == (True, 'disabled')
    assert registered(elbv2, arn) == [(WEB1, 80), (WEB2, 80)]
    assert web1.observe().bound is True


def test_one_wait_follows_a_batch(moto_endpoint, group):
    arn, _elbv2 = group
    up = _l4_steps.member_wait(dict(params(moto_endpoint, arn, members=[WEB1, WEB2], member=None), state='up', since=None,
                                    failure='fast', timeout=2.0, fallback='fail'), _l4_steps.Context())
    assert {m: r['reached'] for m, r in up['members'].items()} == {WEB1: True, WEB2: True} and up['polls'] == 1, up
    _l4_steps.member_admin(params(moto_endpoint, arn, state='drain', members=[WEB1, WEB2], member=None), _l4_steps.Context())
    down = _l4_steps.member_wait(dict(params(moto_endpoint, arn, members=[WEB1, WEB2], member=None), state='down', since=None,
                                      failure='fast', timeout=2.0, fallback='fail'), _l4_steps.Context())
    assert down['bound'] is False and down['polls'] == 1, down


def test_credentials_come_from_the_environment_when_not_given(moto_endpoint, group, monkeypatch):
    arn, _elbv2 = group
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'from-the-environment')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'from-the-environment')
    provider = _providers.build_provider(params(moto_endpoint, arn, aws_access_key=None, aws_secret_key=None), PROFILE)
    assert provider.observe().bound is True


def test_without_any_credentials_the_error_says_where_they_come_from(moto_endpoint, group):
    arn, _elbv2 = group
    provider = _providers.build_provider(params(moto_endpoint, arn, aws_access_key=None, aws_secret_key=None), PROFILE)
    with pytest.raises(_providers.ProviderError, match=r'no AWS credentials: give aws_access_key, aws_secret_key, aws_session_token, aws_profile'):
        provider.observe()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.parametrize(('change', 'message'), [
    ({'pool': 'my-target-group'}, "pool: 'my-target-group' is not a target group's ARN"),
    ({'member': 'web1'}, "member: 'web1' is not a target id"),
    ({'region': 'us-east-1'}, "region: 'us-east-1' is not the target group's region (eu-west-1, from its ARN)"),
    ({'aws_profile': 'nobody'}, "aws_profile: no profile 'nobody' in the AWS configuration of this host"),
    ({'pool': 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/gone/0123456789abcdef'},
     "pool: no target group 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/gone/0123456789abcdef' at http://127.0.0.1:"),
    ({'endpoint': 'closed'}, 'cannot reach the L4 at http://127.0.0.1:'),
])
def test_a_bad_option_is_named_with_its_value_and_nothing_changes(moto_endpoint, group, change, message):
    arn, elbv2 = group
    change = dict(change)
    endpoint = f'http://127.0.0.1:{closed_port()}' if change.pop('endpoint', None) == 'closed' else moto_endpoint
    step = params(endpoint, arn, state='disabled', **change)
    with pytest.raises(_l4_steps.StepFailed) as error:
        _l4_steps.member_admin(step, _l4_steps.Context())
    assert str(error.value).startswith(message), str(error.value)
    assert registered(elbv2, arn) == [(WEB1, 80), (WEB2, 80)]
