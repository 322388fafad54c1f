# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""AWS Elastic Load Balancing v2 (ALB, NLB) target groups as an L4, through boto3.

Internal to the l4vip.rollout collection; not a public API.

The pool is a target group (its ARN), a member a registered target (an instance id, an IP address
or an ARN) on a port. ``DescribeTargetHealth`` answers for the whole group in one request: a target
is bound while its state is ``healthy``; ``initial`` (registering, or its first checks not passed),
``unhealthy``, ``draining`` (deregistered, its connections given the group's deregistration delay
to finish) and ``unused`` (not registered, or not in use) take no new connection. AWS has one admin
lever, registration: deregister is both ``drain`` and ``disabled`` (the deregistration delay is the
drain), register is ``enabled``.

boto3 is imported only when this provider is built: every module run would pay for it otherwise,
and only the hosts that run the L4 steps of an ELBv2 pool need it.
"""

from __future__ import annotations

import ipaddress
import re
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._provider_base import (
    REQUEST_TIMEOUT, Capability, L4Unreachable, Observation, Provider, ProviderError)
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Clock, Profile

TARGET_GROUP_ARN = re.compile(r'^arn:aws[a-z-]*:elasticloadbalancing:(?P<region>[a-z0-9-]+):\d{12}:targetgroup/[A-Za-z0-9-]+/[0-9a-f]+$')
INSTANCE_ID = re.compile(r'^i-[0-9a-f]{8,17}$')
# DescribeTargetHealth's TargetHealth.State: does the load balancer give the target new connections?
BOUND_BY_STATE: dict[str, bool | None] = {
    'healthy': True,
    'initial': False,
    'unhealthy': False,  # but when every target of a group is unhealthy, ELB routes to all of them (fail open)
    'unhealthy.draining': False,
    'draining': False,
    'unused': False,
    'unavailable': None,  # health checks disabled, or ELB cannot tell: neither up nor down
}
# Errors that mean the credentials, not the request, were refused.
REFUSED_CREDENTIALS = ('AccessDenied', 'AccessDeniedException', 'InvalidClientTokenId', 'UnrecognizedClientException',
                       'SignatureDoesNotMatch', 'AuthFailure', 'ExpiredToken', 'ExpiredTokenException')
CREDENTIAL_OPTIONS = 'aws_access_key, aws_secret_key, aws_session_token, aws_profile'


def region_of(arn: str) -> str:
    """The target group's region, from its ARN; ProviderError naming ``pool`` when it is no target group ARN."""
    match = TARGET_GROUP_ARN.match(arn or '')
    if match is None:
        raise ProviderError(f"pool: {arn!r} is not a target group's ARN "
                            '(arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID)')
    return match.group('region')


def check_target_id(member: str) -> None:
    """An instance id, an IP address, or an ARN (a Lambda function, an ALB behind an NLB)."""
    if INSTANCE_ID.match(member) or member.startswith('arn:'):
        return
    try:
        ipaddress.ip_address(member)
    except ValueError:
        raise ProviderError(f"member: {member!r} is not a target id (an instance id such as i-0123456789abcdef0, an IP address, "
                            "or an ARN)") from None


def describe(health: t.Mapping[str, t.Any] | None) -> tuple[bool | None, str]:
    """Whether a target with this TargetHealth is bound, and how to say what ELB answered."""
    if health is None:
        return False, 'not registered in the target group'
    state = health.get('State', '')
    said = state + (f" ({health['Reason']}: {health.get('Description', '')})" if health.get('Reason') else '')
    return BOUND_BY_STATE.get(state), said


def admin_states_of(health: t.Mapping[str, t.Any] | None) -> tuple[str, ...]:
    """The admin states a target's registration can mean, likeliest first (AWS shows drain and disabled alike)."""
    if health is None:
        return ('disabled', 'drain')
    if health.get('State') == 'draining':
        return ('drain', 'disabled')
    return ('enabled',)


class Elbv2Provider(Provider):
    """An ELBv2 target group through boto3: ``pool`` its ARN, ``member`` a target id, ``target_port`` its port where it matters."""

    name = 'aws_elbv2'
    capabilities = frozenset({Capability.OBSERVE, Capability.ADMIN, Capability.POOL, Capability.BATCHES})
    required_options = ('pool',)
    needs_member = True

    def __init__(self, client: t.Any, errors: t.Any, arn: str, member: str | None, port: int | None, where: str) -> None:
        self.client, self.errors, self.arn, self.member, self.port, self.where = client, errors, arn, member, port, where
        self.asked: str | None = None  # the admin state this provider set last: deregistered reads as drain and disabled alike

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], profile: Profile, since: float, clock: Clock) -> Elbv2Provider:
        arn_region = region_of(params.get('pool') or '')
        region = params.get('region') or arn_region
        if region != arn_region:
            raise ProviderError(f"region: {region!r} is not the target group's region ({arn_region}, from its ARN); leave region out")
        for member in [params.get('member'), *(params.get('members') or [])]:
            if member:
                check_target_id(member)
        port = params.get('target_port')
        if port is not None and not 1 <= port <= 65535:
            raise ProviderError(f'target_port: expected a port from 1 to 65535, got {port!r}')
        client, errors = _client(params, region)
        where = params.get('endpoint') or f'the ELBv2 API in {region}'
        return cls(client, errors, params['pool'], params.get('member') or None, port, where)

    def with_member(self, member: str) -> Elbv2Provider:
        return Elbv2Provider(self.client, self.errors, self.arn, member, self.port, self.where)

    # -- requests ---------------------------------------------------------------------------------

    def _call(self, operation: str, **arguments: t.Any) -> t.Any:
        try:
            return getattr(self.client, operation)(TargetGroupArn=self.arn, **arguments)
        except self.errors.ClientError as error:
            code = error.response.get('Error', {}).get('Code', '')
            if code in ('TargetGroupNotFound', 'TargetGroupNotFoundException'):
                raise ProviderError(f'pool: no target group {self.arn!r} at {self.where}') from None
            if code in REFUSED_CREDENTIALS:
                raise ProviderError(f'AWS refused the credentials ({CREDENTIAL_OPTIONS}, or the environment\'s): {code}') from None
            raise ProviderError(f'{operation} of {self.arn} failed: {error}') from None
        except self.errors.NoCredentialsError:
            raise ProviderError(f'no AWS credentials: give {CREDENTIAL_OPTIONS}, or set them in the environment (AWS_ACCESS_KEY_ID...) '
                                'or an instance role') from None
        except (self.errors.ConnectionError, self.errors.HTTPClientError) as error:  # refused, timed out, cut
            raise L4Unreachable(self.where, error) from None

    def targets(self) -> dict[str, tuple[int | None, t.Mapping[str, t.Any]]]:
        """Every registered target (draining ones too) on ``target_port`` when given: id -> (its port, its TargetHealth)."""
        found: dict[str, tuple[int | None, t.Mapping[str, t.Any]]] = {}
        for entry in self._call('describe_target_health')['TargetHealthDescriptions']:
            target = entry['Target']
            if self.port is not None and target.get('Port') != self.port:
                continue
            if target['Id'] in found:
                ports = sorted(str(port) for port in (found[target['Id']][0], target.get('Port')))
                raise ProviderError(f"member: {target['Id']!r} is registered on ports {', '.join(ports)} of {self.arn}; "
                                    'give target_port to say which')
            found[target['Id']] = (target.get('Port'), entry.get('TargetHealth', {}))
        return found

    def _me(self) -> str:
        if not self.member:
            raise ProviderError('member: needed with provider aws_elbv2 (the target id), and not given')
        return self.member

    # -- capabilities -----------------------------------------------------------------------------

    def observe(self) -> Observation:
        return self.observe_members([self._me()])[self._me()]

    def observe_members(self, members: t.Sequence[str]) -> dict[str, Observation]:
        targets = self.targets()
        seen = {}
        for member in members:
            health = targets[member][1] if member in targets else None
            bound, said = describe(health)
            seen[member] = Observation(bound, said, admin_states_of(health)[0])
        return seen

    def pool_bindings(self) -> dict[str, bool]:
        return {member: describe(health)[0] is True for member, (_port, health) in self.targets().items()}

    def admin_state(self) -> str:
        target = self.targets().get(self._me())
        possible = admin_states_of(target[1] if target else None)
        return self.asked if self.asked in possible else possible[0]

    def set_admin(self, state: str) -> None:
        member = self._me()
        registered = self.targets().get(member)
        if state == 'enabled':
            port = self.port if self.port is not None else (registered[0] if registered else None)
            self._call('register_targets', Targets=[dict({'Id': member}, **({'Port': port} if port is not None else {}))])
        elif registered is not None and registered[1].get('State') != 'draining':
            # Drain and disabled alike: ELB stops sending new connections at once, and gives the member's open ones the
            # target group's deregistration delay to finish (deregistration_delay.timeout_seconds).
            self._call('deregister_targets', Targets=[dict({'Id': member}, **({'Port': registered[0]} if registered[0] is not None else {}))])
        self.asked = state


def _client(params: t.Mapping[str, t.Any], region: str) -> tuple[t.Any, t.Any]:
    """An ELBv2 client and botocore's exceptions module; credentials from the options, else boto3's own chain."""
    try:
        import boto3  # pylint: disable=import-outside-toplevel
        import botocore.config  # pylint: disable=import-outside-toplevel
        import botocore.exceptions  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ProviderError('provider: aws_elbv2 needs the boto3 Python library on the host that runs the L4 steps (pip install boto3; '
                            "the collection's execution environment has it)") from None
    try:
        session = boto3.session.Session(aws_access_key_id=params.get('aws_access_key'), aws_secret_access_key=params.get('aws_secret_key'),
                                        aws_session_token=params.get('aws_session_token'), profile_name=params.get('aws_profile'),
                                        region_name=region)
    except botocore.exceptions.ProfileNotFound:
        raise ProviderError(f"aws_profile: no profile {params.get('aws_profile')!r} in the AWS configuration of this host") from None
    # Each request gives up after REQUEST_TIMEOUT, with one retry, so every wait keeps its own limit.
    config = botocore.config.Config(connect_timeout=REQUEST_TIMEOUT, read_timeout=REQUEST_TIMEOUT, retries={'max_attempts': 2, 'mode': 'standard'})
    return session.client('elbv2', endpoint_url=params.get('endpoint') or None, config=config), botocore.exceptions
