# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How modules reach the L4: one set of options, and one provider class per kind of L4.

Internal to the l4vip.rollout collection; not a public API.

Every provider follows one protocol (``Provider``) and declares what it can do as a set of
``Capability``: tell whether a member is bound, read and set its admin state, count its sessions,
list the pool, act on a batch. The steps ask ``provider.can(Capability.X)``, never a provider's
name; which providers can do what - for error messages and the docs - is read from the classes.
The emulator's control API, HAProxy's runtime API, any REST API with a JMESPath query and the web
server's access log each answer "is the member bound?" from their own source; ``timer`` asks
nothing: its wait is the timing model's worst case.

Somewhat over 400 lines, on purpose: the protocol, the five classes that implement it, the registry
the lists of who can do what are derived from, and the options they are built from stay in one file,
so that each class's declared capabilities sit beside the methods that back them (a unit test holds
the two together).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils import _access_log, _claims, _haproxy
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import PROFILE_ARGUMENT_SPEC, SYSTEM_CLOCK, Clock, Profile

from urllib.error import HTTPError, URLError

try:
    import jmespath
    HAS_JMESPATH = True
except ImportError:
    HAS_JMESPATH = False

REQUEST_TIMEOUT = 5.0


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
        preset=dict(type='str', choices=list(_preset_names())),
        username=dict(type='str'),
        password=dict(type='str', no_log=True),
        validate_certs=dict(type='bool', default=True),
        ca_path=dict(type='path'),
        health_check_uri=dict(type='str'),
        sources=dict(type='list', elements='str', default=[]),
        # A copy: a validator fills its default dict in place, and action plugins validate in a long-lived process.
        profile=copy.deepcopy(PROFILE_ARGUMENT_SPEC),
        poll_interval=dict(type='float', default=0.1),
    )


class ProviderError(Exception):
    """The L4 answered, but not with something usable (unknown member, bad query...)."""


class HttpStatusError(ProviderError):
    """The L4's API answered an HTTP error; ``status`` tells a refused login (401, 403) from the rest."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class L4Unreachable(ProviderError):
    """The L4 could not be asked at all; ``fallback: timer`` may take over."""

    def __init__(self, endpoint: str, error: t.Any) -> None:
        super().__init__(f'cannot reach the L4 at {endpoint}: {error}')
        self.endpoint = endpoint


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the L4 said: whether the member takes new connections (None: in between, or not known yet)."""

    bound: bool | None
    observed: str
    admin_state: str | None = None
    sessions: int | None = None
    # When the L4 says the member's health last changed (epoch seconds), where it tells.
    since: float | None = None


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    validate_certs: bool = True
    ca_path: str | None = None
    timeout: float = REQUEST_TIMEOUT


def fetch_json(url: str, settings: HttpSettings, method: str = 'GET', body: t.Any = None) -> t.Any:
    """One JSON request; connection failures are L4Unreachable, error answers ProviderError."""
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    headers = dict(settings.headers)
    if data is not None:
        headers.setdefault('Content-Type', 'application/json')
    # Imported here: only the HTTP providers need it, and it costs every module run tens of ms.
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel
    try:
        answer = open_url(url, data=data, method=method, headers=headers, validate_certs=settings.validate_certs,
                          ca_path=settings.ca_path, timeout=settings.timeout, follow_redirects='safe')
        text = answer.read()
    except HTTPError as error:
        raise HttpStatusError(f'{method} {url} answered {error.code}: {_error_text(error)}', error.code) from None
    except (URLError, OSError) as error:
        raise L4Unreachable(url, getattr(error, 'reason', error)) from None
    try:
        return json.loads(text) if text else None
    except ValueError:
        raise ProviderError(f'{method} {url} did not answer JSON: {text[:200]!r}') from None


def _error_text(error: HTTPError) -> str:
    try:
        text = error.read().decode('utf-8', errors='replace')
    except Exception:  # pylint: disable=broad-except
        return str(error.reason)
    try:
        return json.loads(text).get('error', text)
    except (ValueError, AttributeError):
        return text[:200]


class Capability(enum.Enum):
    """What a provider can do with the L4; each step asks for the ones it needs. The value says it as an error message does."""

    OBSERVE = 'observe the L4'  # say whether a member is bound (member_wait polls it)
    ADMIN = 'set an admin state'  # read and set a member's admin state (member_admin)
    SESSIONS = "count the L4's sessions"  # per member (session_drain)
    POOL = 'list the pool'  # every member of the pool and whether it is bound (capacity_guard)
    BATCHES = 'follow several members in one task'  # ``members``, one request for all where the L4 answers for its pool
    CLAIMS = "hold the rollouts' claims"  # the L4 keeps them, so every rollout of the VIP sees them (capacity_guard)


class Provider:
    """The protocol every provider follows: its name, the options it needs, what it can do, and one method per capability.

    A method of a capability the provider does not declare raises ProviderError, naming the providers that have it.
    """

    name: t.ClassVar[str] = ''
    capabilities: t.ClassVar[frozenset[Capability]] = frozenset()
    # The options it cannot work without, and whether it needs ``member`` or ``members`` (for AnsibleModule's required_if).
    required_options: t.ClassVar[tuple[str, ...]] = ()
    needs_member: t.ClassVar[bool] = False

    @classmethod
    def can(cls, capability: Capability) -> bool:
        return capability in cls.capabilities

    @classmethod
    def refusal(cls, capability: Capability) -> ProviderError:
        """The error for asking this provider what it cannot do: the option, its value, and the providers that can."""
        return ProviderError(f'provider: {cls.name!r} cannot {capability.value}; use one of {", ".join(providers_that_can(capability))}')

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], profile: Profile, since: float, clock: Clock) -> Provider:
        """The provider the validated module options describe."""
        raise NotImplementedError

    def observe(self) -> Observation:
        """What the L4 says of the member: is it bound? (Capability.OBSERVE)"""
        raise self.refusal(Capability.OBSERVE)

    def for_members(self, members: t.Sequence[str]) -> t.Iterator[tuple[str, Provider]]:
        """Each member of a batch and the provider that asks about it: this one for a lone member, else ``with_member``."""
        if len(members) == 1:
            yield members[0], self
            return
        for member in members:
            yield member, self.with_member(member)

    def observe_members(self, members: t.Sequence[str]) -> dict[str, Observation]:
        """What the L4 says of each member of a batch; the providers that can batch ask once for all."""
        return {member: provider.observe() for member, provider in self.for_members(members)}

    def with_member(self, member: str) -> Provider:
        """The same provider, asking about ``member`` of the same pool (Capability.BATCHES)."""
        raise self.refusal(Capability.BATCHES)

    def admin_state(self) -> str | None:
        """The member's admin state; None when it cannot be told (Capability.ADMIN)."""
        raise self.refusal(Capability.ADMIN)

    def set_admin(self, state: str) -> None:
        """Set the member's admin state (Capability.ADMIN)."""
        raise self.refusal(Capability.ADMIN)

    def session_counts(self, members: t.Sequence[str]) -> dict[str, int]:
        """The sessions the L4 holds per member (Capability.SESSIONS)."""
        raise self.refusal(Capability.SESSIONS)

    def pool_bindings(self) -> dict[str, bool]:
        """Every member of the pool and whether it is bound, what the capacity guard counts (Capability.POOL)."""
        raise self.refusal(Capability.POOL)

    def claims_store(self) -> _claims.Store:
        """Where the L4 keeps the rollouts' claims on the pool (Capability.CLAIMS)."""
        raise self.refusal(Capability.CLAIMS)


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
        return Observation(member['bound'], f"{member['state']}, admin {member['admin_state']}", member['admin_state'], member['sessions'],
                           member.get('since'))

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


# Every provider, by name, in the order the docs list them: the one source of which providers exist and what each can do.
PROVIDER_CLASSES: dict[str, type[Provider]] = {cls.name: cls for cls in (TimerProvider, EmulatorProvider, HAProxyProvider, HttpProvider, AccessLogProvider)}
PROVIDERS = tuple(PROVIDER_CLASSES)


def providers_that_can(*capabilities: Capability) -> tuple[str, ...]:
    """The names of the providers that have every one of ``capabilities``."""
    return tuple(name for name, cls in PROVIDER_CLASSES.items() if all(cls.can(capability) for capability in capabilities))


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


def http_settings(params: t.Mapping[str, t.Any]) -> HttpSettings:
    return HttpSettings(params.get('headers') or {}, params.get('validate_certs', True), params.get('ca_path'))


def _preset_names() -> tuple[str, ...]:
    # Imported here: the presets build on this module's classes.
    from ansible_collections.l4vip.rollout.plugins.module_utils import _presets  # pylint: disable=import-outside-toplevel
    return _presets.PRESETS


def provider_class_for(params: t.Mapping[str, t.Any]) -> type[Provider]:
    """The class the options name: the provider's, or with ``preset`` the device preset's (a kind of V(http))."""
    # Like every http-only option, a preset means nothing to the other providers: a step that asks only the server side
    # (provider: timer) under the role's module_defaults still gets it.
    if not params.get('preset') or params['provider'] != HttpProvider.name:
        return provider_class(params['provider'])
    from ansible_collections.l4vip.rollout.plugins.module_utils import _presets  # pylint: disable=import-outside-toplevel
    return _presets.preset_class(params['preset'])


def build_provider(params: t.Mapping[str, t.Any], profile: Profile, since: float | None = None, clock: Clock = SYSTEM_CLOCK) -> Provider:
    """The provider the module's options ask for; ``since`` (epoch seconds, the start of the task when None) is when its question starts."""
    return provider_class_for(params).from_params(params, profile, clock.time() if since is None else since, clock)
