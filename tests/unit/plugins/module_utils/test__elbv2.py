"""The aws_elbv2 provider's readings of DescribeTargetHealth, from canned answers in AWS's own shape.

These show what the moto server of tests/integration/test_aws_elbv2_provider.py cannot: moto answers ``healthy``
for every registered target and forgets a deregistered one at once, while AWS moves a target through ``initial``,
``healthy``, ``unhealthy``, ``draining`` (the deregistration delay) and ``unused``. A fake client answers here as
AWS documents it; no request leaves the process.
"""

from __future__ import annotations

import sys

import botocore.exceptions
import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _elbv2, _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile

ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef'
PROFILE = parse_profile({})


class FakeElbv2:
    """describe_target_health / register_targets / deregister_targets over a dict of target -> TargetHealth."""

    def __init__(self, targets):
        self.targets = dict(targets)  # (id, port) -> TargetHealth
        self.calls = []

    def describe_target_health(self, TargetGroupArn):  # noqa: N803  # boto3's own argument names
        self.calls.append(('describe', TargetGroupArn))
        return {'TargetHealthDescriptions': [{'Target': {'Id': i, 'Port': p}, 'TargetHealth': h} for (i, p), h in self.targets.items()]}

    def deregister_targets(self, TargetGroupArn, Targets):  # noqa: N803
        self.calls.append(('deregister', Targets))
        for target in Targets:
            self.targets[(target['Id'], target['Port'])] = {'State': 'draining', 'Reason': 'Target.DeregistrationInProgress',
                                                            'Description': 'Target deregistration is in progress'}

    def register_targets(self, TargetGroupArn, Targets):  # noqa: N803
        self.calls.append(('register', Targets))
        for target in Targets:
            self.targets[(target['Id'], target.get('Port', 80))] = {'State': 'initial', 'Reason': 'Elb.RegistrationInProgress',
                                                                    'Description': 'Target registration is in progress'}


def provider(client, member='i-0aaaaaaaaaaaaaaa1', port=None):
    return _elbv2.Elbv2Provider(client, botocore.exceptions, ARN, member, port, 'the fake ELBv2')


HEALTHY = {'State': 'healthy'}


@pytest.mark.parametrize(('health', 'bound', 'said'), [
    (HEALTHY, True, 'healthy'),
    ({'State': 'initial', 'Reason': 'Elb.InitialHealthChecking', 'Description': 'Initial health checks in progress'}, False,
     'initial (Elb.InitialHealthChecking: Initial health checks in progress)'),
    ({'State': 'unhealthy', 'Reason': 'Target.ResponseCodeMismatch', 'Description': 'Health checks failed with these codes: [404]'}, False,
     'unhealthy (Target.ResponseCodeMismatch: Health checks failed with these codes: [404])'),
    ({'State': 'draining', 'Reason': 'Target.DeregistrationInProgress', 'Description': 'Target deregistration is in progress'}, False,
     'draining (Target.DeregistrationInProgress: Target deregistration is in progress)'),
    ({'State': 'unused', 'Reason': 'Target.NotInUse', 'Description': 'Target group is not configured to receive traffic from the load balancer'},
     False, 'unused (Target.NotInUse: Target group is not configured to receive traffic from the load balancer)'),
    ({'State': 'unavailable', 'Reason': 'Target.HealthCheckDisabled', 'Description': 'Health checks are disabled'}, None,
     'unavailable (Target.HealthCheckDisabled: Health checks are disabled)'),
    (None, False, 'not registered in the target group'),
])
def test_each_target_health_state_reads_as_aws_documents_it(health, bound, said):
    assert _elbv2.describe(health) == (bound, said)


def test_a_batch_and_the_pool_are_one_request():
    client = FakeElbv2({('i-0aaaaaaaaaaaaaaa1', 80): HEALTHY, ('i-0aaaaaaaaaaaaaaa2', 80): {'State': 'unhealthy'}})
    seen = provider(client).observe_members(['i-0aaaaaaaaaaaaaaa1', 'i-0aaaaaaaaaaaaaaa2', 'i-0aaaaaaaaaaaaaaa3'])
    assert {m: (o.bound, o.admin_state) for m, o in seen.items()} == {
        'i-0aaaaaaaaaaaaaaa1': (True, 'enabled'), 'i-0aaaaaaaaaaaaaaa2': (False, 'enabled'), 'i-0aaaaaaaaaaaaaaa3': (False, 'disabled')}
    assert provider(client).pool_bindings() == {'i-0aaaaaaaaaaaaaaa1': True, 'i-0aaaaaaaaaaaaaaa2': False}
    assert len(client.calls) == 2


def test_deregistration_is_the_drain_and_registration_brings_it_back_through_initial():
    client = FakeElbv2({('i-0aaaaaaaaaaaaaaa1', 8080): HEALTHY})
    web1 = provider(client)
    web1.set_admin('disabled')
    # Deregistered with the port it was registered on; draining for the group's deregistration delay.
    assert client.calls[-1] == ('deregister', [{'Id': 'i-0aaaaaaaaaaaaaaa1', 'Port': 8080}])
    assert (web1.observe().bound, web1.admin_state()) == (False, 'disabled')
    # A fresh run reads the draining target as drain, and a drain asked of it changes nothing.
    again = provider(client)
    assert again.admin_state() == 'drain'
    again.set_admin('drain')
    assert client.calls[-1][0] == 'describe'
    web1.set_admin('enabled')
    assert client.calls[-1] == ('register', [{'Id': 'i-0aaaaaaaaaaaaaaa1', 'Port': 8080}])
    assert (web1.observe().bound, web1.observe().observed, web1.admin_state()) == (
        False, 'initial (Elb.RegistrationInProgress: Target registration is in progress)', 'enabled')


def test_the_same_target_on_two_ports_needs_target_port():
    client = FakeElbv2({('198.18.0.11', 80): HEALTHY, ('198.18.0.11', 8080): {'State': 'draining'}})
    with pytest.raises(_providers.ProviderError, match=r"member: '198.18.0.11' is registered on ports 80, 8080 of .*; give target_port"):
        provider(client, '198.18.0.11').observe()
    assert provider(client, '198.18.0.11', 8080).observe().observed == 'draining'
    assert provider(client, '198.18.0.11', 80).pool_bindings() == {'198.18.0.11': True}


@pytest.mark.parametrize(('change', 'message'), [
    ({'pool': 'web'}, "pool: 'web' is not a target group's ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID)"),
    ({'region': 'us-east-1'}, "region: 'us-east-1' is not the target group's region (eu-west-1, from its ARN); leave region out"),
    ({'member': 'web1'}, "member: 'web1' is not a target id (an instance id such as i-0123456789abcdef0, an IP address, or an ARN)"),
    ({'members': ['198.18.0.11', 'i-xyz']}, "member: 'i-xyz' is not a target id"),
    ({'target_port': 0}, 'target_port: expected a port from 1 to 65535, got 0'),
])
def test_a_bad_option_is_named_with_its_value_before_any_request(change, message):
    params = dict({'provider': 'aws_elbv2', 'pool': ARN, 'member': '198.18.0.11'}, **change)
    with pytest.raises(_providers.ProviderError) as error:
        _providers.build_provider(params, PROFILE)
    assert str(error.value).startswith(message)


def test_without_boto3_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, 'boto3', None)  # import boto3 now raises ImportError
    with pytest.raises(_providers.ProviderError, match=r'provider: aws_elbv2 needs the boto3 Python library on the host that runs the L4 steps'):
        _providers.build_provider({'provider': 'aws_elbv2', 'pool': ARN, 'member': '198.18.0.11'}, PROFILE)


def test_boto3_is_imported_only_by_this_provider():
    """Every module run imports _providers; boto3 costs a module run a second, so it waits until aws_elbv2 is built."""
    source = (_elbv2.__file__, _providers.__file__)
    for path in source:
        with open(path, encoding='utf-8') as handle:
            top_level = [line for line in handle if line.startswith(('import boto', 'from boto'))]
        assert not top_level, path
