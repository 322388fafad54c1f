# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How modules reach the L4: one set of options, and one provider class per kind of L4.

Internal to the l4vip.rollout collection; not a public API.

Every provider follows one protocol (``Provider``) and declares what it can do as a set of
``Capability``: tell whether a member is bound, read and set its admin state, count its sessions,
list the pool, act on a batch. The steps ask ``provider.can(Capability.X)``, never a provider's
name; which providers can do what - for error messages and the docs - is read from the classes.
The emulator's control API, HAProxy's runtime API, any REST API with a JMESPath query (or a
device's dialect, ``_presets``), the web server's access log, the host's IPVS table and an AWS
target group (``_elbv2``, which holds its class) each answer "is the member bound?" from their own
source; ``timer`` asks nothing: its wait is the timing model's worst case. The protocol itself is
in ``_provider_base``.

Over 400 lines on purpose: the six classes, the registry the lists of who can do what are derived
from, and the options they are built from stay in one file, so that each class's declared
capabilities sit beside the methods that back them (a unit test holds the two together).
"""

from __future__ import annotations

import copy
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _access_log, _claims, _elbv2, _haproxy, _ipvs, _presets
# The steps, the guard and the drain use these names from here: this module's interface, unused in it.
from ansible_collections.l4vip.rollout.plugins.module_utils._provider_base import (  # noqa: F401 pylint: disable=unused-import
    REGISTRY, REQUEST_TIMEOUT, Capability, HttpSettings, HttpStatusError, L4Unreachable, Observation, Provider, ProviderError, fetch_json,
    http_settings, providers_that_can)
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import PROFILE_ARGUMENT_SPEC, SYSTEM_CLOCK, Clock, Profile

try:
    import jmespath
    HAS_JMESPATH = True
except ImportError:
    HAS_JMESPATH = False


def provider_argument_spec() -> dict[str, t.Any]:
    """The options every module that reaches the L4 shares (documented in the provider doc fragment)."""
    return dict(
        provider=dict(type='str', choices=list(PROVIDERS), default=TimerProvider.name),
        endpoint=dict(type='str'),
        pool=dict(type='str'),
        member=dict(type='str'),
        members=dict(type='list', elements='str'),
        query=dict(type='str'),
        down_values=dict(type='list', elements='raw', default=['down']),
        up_values=dict(type='list', elements='raw', default=['up']),
        headers=dict(type='dict', default={}, no_log=True),
        preset=dict(type='str', choices=list(_presets.PRESETS)),
        username=dict(type='str'),
        password=dict(type='str', no_log=True),
        validate_certs=dict(type='bool', default=True),
        ca_path=dict(type='path'),
        health_check_uri=dict(type='str'),
        sources=dict(type='list', elements='str', default=[]),
        # aws_elbv2 only; the credentials default to boto3's own chain (environment, profile, instance role).
        region=dict(type='str'),
        target_port=dict(type='int'),
        aws_access_key=dict(type='str', no_log=True),
        aws_secret_key=dict(type='str', no_log=True),
        aws_session_token=dict(type='str', no_log=True),
        aws_profile=dict(type='str'),
        # A copy: a validator fills its default dict in place, and action plugins validate in a long-lived process.
        profile=copy.deepcopy(PROFILE_ARGUMENT_SPEC),
        poll_interval=dict(type='float', default=0.1),
    )


class TimerProvider(Provider):
    """Asks the L4 nothing: its wait is the timing model's worst case, so it follows a whole batch with one wait."""

    name = 'timer'
    capabilities = frozenset({Capability.BATCHES})

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], profile: Profile, since: float, clock: Clock) -> TimerProvider:
        return cls()

    def with_member(self, member: str) -> TimerProvider:
        return self


class EmulatorProvider(Provider):
    """The embedded emulator's control API; the emulator balances VIPs, so the module's ``pool`` is a VIP's name."""

    name = 'emulator'
    capabilities = frozenset(Capability)
    required_options = ('endpoint', 'pool')
    needs_member = True

    def __init__(self, endpoint: str, vip: str, member: str | None, settings: HttpSettings) -> None:
        self.endpoint, self.vip, self.member = endpoint, vip, member
        self.vip_url = f'{endpoint.rstrip("/")}/api/vips/{vip}'
        self.url = f'{self.vip_url}/members/{member}'
        self.settings = settings

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], profile: Profile, since: float, clock: Clock) -> EmulatorProvider:
        return cls(params['endpoint'], params['pool'], params['member'], http_settings(params))

    @staticmethod
    def _observation(member: t.Mapping[str, t.Any]) -> Observation:
        return Observation(member['bound'], f"{member['state']}, admin {member['admin_state']}", member['admin_state'], since=member.get('since'))

    def observe(self) -> Observation:
        return self._observation(fetch_json(self.url, self.settings))

    def with_member(self, member: str) -> EmulatorProvider:
        return EmulatorProvider(self.endpoint, self.vip, member, self.settings)

    def _vip_members(self, members: t.Sequence[str]) -> dict[str, t.Mapping[str, t.Any]]:
        known = {member['name']: member for member in fetch_json(self.vip_url, self.settings)['members']}
        unknown = [member for member in members if member not in known]
        if unknown:
            raise ProviderError(f"the emulator has no member {unknown[0]!r} in VIP {self.vip!r}; its members are {', '.join(sorted(known))}")
        return {member: known[member] for member in members}

    def observe_members(self, members: t.Sequence[str]) -> dict[str, Observation]:
        return {name: self._observation(member) for name, member in self._vip_members(members).items()}

    def session_counts(self, members: t.Sequence[str]) -> dict[str, int]:
        return {name: member['sessions'] for name, member in self._vip_members(members).items()}

    def admin_state(self) -> str:
        return self.observe().admin_state or 'enabled'

    def set_admin(self, state: str) -> None:
        fetch_json(f'{self.url}/admin', self.settings, 'PUT', {'state': state})

    def pool_bindings(self) -> dict[str, bool]:
        return {member['name']: member['bound'] for member in fetch_json(self.vip_url, self.settings)['members']}

    def claims_store(self) -> _claims.Store:
        url = f'{self.endpoint.rstrip("/")}/api/claims/'

        def read(pool: str) -> tuple[int, dict[str, t.Any]]:
            answer = fetch_json(url + pool, self.settings)
            return answer['version'], answer['claims']

        def write(pool: str, version: int, claims: dict[str, t.Any]) -> bool:
            return bool(fetch_json(url + pool, self.settings, 'PUT', {'version': version, 'claims': claims})['stored'])

        return _claims.CompareAndSetStore(f'the L4 (the emulator at {self.endpoint})', read, write)


class HAProxyProvider(Provider):
    """HAProxy's runtime API; the module's ``pool`` is a backend's name."""

    name = 'haproxy'
    capabilities = frozenset(Capability) - {Capability.CLAIMS}  # its runtime API has nowhere to keep a claim
    required_options = ('endpoint', 'pool')
    needs_member = True

    def __init__(self, endpoint: str, backend: str, member: str | None, timeout: float = REQUEST_TIMEOUT) -> None:
        _haproxy.parse_endpoint(endpoint)  # fail early on a malformed endpoint
        self.endpoint, self.backend, self.member, self.timeout = endpoint, backend, member, timeout

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], profile: Profile, since: float, clock: Clock) -> HAProxyProvider:
        try:
            return cls(params['endpoint'], params['pool'], params['member'])
        except ValueError as error:
            raise ProviderError(str(error)) from None

    def _call(self, function: t.Callable[..., t.Any], *args: t.Any) -> t.Any:
        try:
            return function(self.endpoint, self.backend, *args, timeout=self.timeout)
        except _haproxy.RuntimeApiError as error:
            if error.__cause__ is not None:
                raise L4Unreachable(self.endpoint, error.__cause__) from None
            raise ProviderError(str(error)) from None

    def with_member(self, member: str) -> HAProxyProvider:
        return HAProxyProvider(self.endpoint, self.backend, member, self.timeout)

    def observe(self) -> Observation:
        return self.observe_members([self.member])[self.member]

    def observe_members(self, members: t.Sequence[str]) -> dict[str, Observation]:
        states = self._call(_haproxy.backend_states, members)
        return {member: Observation(states[member].bound, states[member].describe(), states[member].admin_state) for member in members}

    def admin_state(self) -> str:
        return self._call(_haproxy.backend_states, [self.member])[self.member].admin_state

    def set_admin(self, state: str) -> None:
        self._call(_haproxy.set_admin_state, self.member, state)

    def session_counts(self, members: t.Sequence[str]) -> dict[str, int]:
        return self._call(_haproxy.current_sessions, members)

    def pool_bindings(self) -> dict[str, bool]:
        return {state.name: state.bound for state in self._call(_haproxy.backend_states, ()).values()}


def matches(value: t.Any, candidates: t.Sequence[t.Any]) -> bool:
    """Equal, or equal as case-insensitive text (REST APIs mix ``"UP"``, ``"up"`` and ``true``)."""
    return any(value == c or str(value).lower() == str(c).lower() for c in candidates)


class HttpProvider(Provider):
    """Any REST API: a JMESPath ``query`` over its JSON answer, compared with ``down_values``/``up_values``."""

    name = 'http'
    capabilities = frozenset({Capability.OBSERVE, Capability.ADMIN})
    # query reads the answer; member_admin may write without it (admin_request), so each use checks it (value()).
    required_options = ('endpoint',)

    def __init__(self, endpoint: str, query: str | None, down_values: t.Sequence[t.Any], up_values: t.Sequence[t.Any], settings: HttpSettings,
                 admin_values: t.Mapping[str, t.Sequence[t.Any]] | None = None, admin_request: t.Mapping[str, t.Any] | None = None) -> None:
        if not HAS_JMESPATH:
            raise ProviderError('the http provider needs the jmespath Python library on the host that runs the module')
        try:
            # member_admin may write without reading: then there is no query.
            self.query = jmespath.compile(query) if query else None
        except jmespath.exceptions.JMESPathError as error:
            raise ProviderError(f'query: not a valid JMESPath expression: {query!r} ({error})') from None
        self.endpoint, self.down_values, self.up_values, self.settings = endpoint, down_values, up_values, settings
        self.admin_values = admin_values or {}
        self.admin_request = admin_request or {}

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], profile: Profile, since: float, clock: Clock) -> HttpProvider:
        return cls(params['endpoint'], params['query'], params['down_values'], params['up_values'], http_settings(params),
                   params.get('admin_values'), params.get('admin_request'))

    def value(self) -> t.Any:
        if self.query is None:
            raise ProviderError('query: needed to read the L4\'s answer, and not given')
        return self.query.search(fetch_json(self.endpoint, self.settings))

    def observe(self) -> Observation:
        value = self.value()
        if matches(value, self.down_values):
            return Observation(False, f'{value!r} (a down value)')
        if matches(value, self.up_values):
            return Observation(True, f'{value!r} (an up value)')
        return Observation(None, f'{value!r} (neither an up nor a down value)')

    def admin_state(self) -> str | None:
        """The admin state whose values match the query's answer; None when it cannot be told."""
        if not self.admin_values:
            return None
        value = self.value()
        return next((state for state, values in self.admin_values.items() if matches(value, values)), None)

    def set_admin(self, state: str) -> None:
        request = self.admin_request
        fetch_json(request.get('url') or self.endpoint, self.settings, request.get('method', 'PATCH'), request.get('body'))


class AccessLogProvider(Provider):
    """The web server's access log: the L4 has marked the member down once it was answered ``retry + 1`` failures in a row."""

    name = 'access_log'
    capabilities = frozenset({Capability.OBSERVE})
    required_options = ('endpoint',)

    def __init__(self, path: str, uri: str, sources: t.Sequence[str], since: float, profile: Profile) -> None:
        self.path, self.uri, self.sources, self.since, self.profile = path, uri, list(sources), since, profile

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], profile: Profile, since: float, clock: Clock) -> AccessLogProvider:
        return cls(params['endpoint'], params.get('health_check_uri') or profile.health_check_path, params.get('sources') or [], since, profile)

    def observe(self) -> Observation:
        try:
            lines = _access_log.read_tail(self.path)
        except OSError as error:
            raise L4Unreachable(self.path, error.strerror or error) from None
        checks = _access_log.health_checks(lines, self.uri, self.sources, self.since)
        passed, count = _access_log.streak(checks)
        if passed is None:
            return Observation(None, f'no health check of {self.uri} answered since the start')
        said = f"{count} {'passing' if passed else 'failing'} answer(s) in a row to {self.uri}, last {checks[-1].status} to {checks[-1].source}"
        if passed and count >= self.profile.rise:
            return Observation(True, said)
        if not passed and count >= self.profile.fall:
            return Observation(False, said)
        return Observation(None, said)


class IpvsProvider(Provider):
    """IPVS (LVS, keepalived) on the host the L4 steps run on; ``pool`` is the virtual service, ``member`` the real server.

    A member is bound while it is in the table with a weight above 0. Drain sets its weight to 0, disabled removes it,
    enabled puts it back with the weight and forwarding it had.
    """

    name = 'ipvs'
    capabilities = frozenset(Capability) - {Capability.CLAIMS}
    required_options = ('pool',)
    needs_member = True

    def __init__(self, ipvs: _ipvs.Ipvs, member: str | None) -> None:
        self.ipvs, self.member = ipvs, member

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], profile: Profile, since: float, clock: Clock) -> IpvsProvider:
        pool = params['pool']
        try:
            service = _ipvs.parse_address(pool)
        except ValueError:
            raise ProviderError(f"pool: {pool!r} is not a virtual service's address:port (such as 10.0.0.100:80)") from None
        for member in [params.get('member'), *(params.get('members') or [])]:
            if member:
                try:
                    _ipvs.parse_address(member)
                except ValueError:
                    raise ProviderError(f"member: {member!r} is not a real server's address:port (such as 10.0.0.11:80)") from None
        member = params.get('member')
        return cls(_ipvs.Ipvs(service, params.get('endpoint') or 'ipvsadm'), _ipvs.parse_address(member) if member else None)

    def with_member(self, member: str) -> IpvsProvider:
        return IpvsProvider(self.ipvs, _ipvs.parse_address(member))

    def _table(self) -> dict[str, _ipvs.RealServer]:
        try:
            return self.ipvs.table()
        except _ipvs.IpvsError as error:
            if error.unreachable:
                raise L4Unreachable(self.ipvs.command, error) from None
            raise ProviderError(str(error)) from None

    def _call(self, function: t.Callable[..., None], *args: t.Any) -> None:
        try:
            function(*args)
        except _ipvs.IpvsError as error:
            raise ProviderError(str(error)) from None

    @staticmethod
    def _observation(server: _ipvs.RealServer | None, remembered: bool) -> Observation:
        if server is None:
            said = 'not in the virtual service' + (' (removed by a rollout)' if remembered else '')
            return Observation(False, said, 'disabled' if remembered else None)
        said = f'weight {server.weight}, ActiveConn {server.active}, InActConn {server.inactive}'
        return Observation(server.weight > 0, said, 'enabled' if server.weight > 0 else 'drain')

    def observe(self) -> Observation:
        return self.observe_members([self.member])[self.member]

    def observe_members(self, members: t.Sequence[str]) -> dict[str, Observation]:
        table = self._table()
        return {member: self._observation(table.get(_ipvs.parse_address(member)), self.ipvs.remembered(_ipvs.parse_address(member)) is not None)
                for member in members}

    def admin_state(self) -> str:
        state = self.observe().admin_state
        if state is None:
            raise ProviderError(f"member: {self.member!r} is not in virtual service {self.ipvs.service!r}, and no rollout removed it "
                                f"(keepalived takes out a member whose check fails): nothing to put back")
        return state

    def set_admin(self, state: str) -> None:
        server = self._table().get(self.member)
        if state == 'enabled':
            self._call(self.ipvs.restore, self.member, server)
        elif server is not None:
            self._call(self.ipvs.drain if state == 'drain' else self.ipvs.remove, server)
        elif state == 'drain':
            raise ProviderError(f'member: {self.member!r} is not in virtual service {self.ipvs.service!r}: it cannot be drained')

    def session_counts(self, members: t.Sequence[str]) -> dict[str, int]:
        table = self._table()
        return {member: table[_ipvs.parse_address(member)].sessions if _ipvs.parse_address(member) in table else 0 for member in members}

    def pool_bindings(self) -> dict[str, bool]:
        return {address: server.weight > 0 for address, server in self._table().items()}


# Every provider, by name, in the order the docs list them: the one source of which providers exist and what each can do.
PROVIDER_CLASSES: dict[str, type[Provider]] = {
    cls.name: cls for cls in (TimerProvider, EmulatorProvider, HAProxyProvider, HttpProvider, AccessLogProvider, IpvsProvider,
                              _elbv2.Elbv2Provider)}
PROVIDERS = tuple(PROVIDER_CLASSES)
REGISTRY.update(PROVIDER_CLASSES)  # what a refusal names as the providers that can


def provider_class(name: str) -> type[Provider]:
    try:
        return PROVIDER_CLASSES[name]
    except KeyError:
        raise ProviderError(f"provider: {name!r} is not a provider; use one of {', '.join(PROVIDERS)}") from None


# Which options each provider needs, for AnsibleModule's required_if.
PROVIDER_REQUIRED_IF: list[tuple[t.Any, ...]] = [
    rule for name, cls in PROVIDER_CLASSES.items()
    for rule in ([('provider', name, list(cls.required_options))] if cls.required_options else [])
    + ([('provider', name, ['member', 'members'], True)] if cls.needs_member else [])]


def provider_class_for(params: t.Mapping[str, t.Any]) -> type[Provider]:
    """The class the options name: the provider's, or with ``preset`` the device preset's (a kind of V(http))."""
    # Like every http-only option, a preset means nothing to the other providers: a step that asks only the server side
    # (provider: timer) under the role's module_defaults still gets it.
    if not params.get('preset') or params['provider'] != HttpProvider.name:
        return provider_class(params['provider'])
    return _presets.preset_class(params['preset'])


def build_provider(params: t.Mapping[str, t.Any], profile: Profile, since: float | None = None, clock: Clock = SYSTEM_CLOCK) -> Provider:
    """The provider the module's options ask for; ``since`` (epoch seconds, the start of the task when None) is when its question starts."""
    return provider_class_for(params).from_params(params, profile, clock.time() if since is None else since, clock)
