# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Device presets of the ``http`` provider: each L4's own REST dialect, so that the user gives a base URL, a pool and a member.

Internal to the l4vip.rollout collection; not a public API.

A preset is a provider (``provider: http`` with ``preset: <name>``) that knows one device's URLs,
field names, value spellings, admin requests and login. Each declares its ``Capability`` set like
the other providers; the steps ask for capabilities, never for a preset's name.

Every preset reads the whole pool in one request where the device allows it (the pool's member
list with each member's state), so a batch costs one request per poll; session counts are one
request per member where the device keeps them in a member's statistics.

Over 400 lines on purpose: the eight dialects sit side by side with the base class they fill in,
so that the one registry the docs' table and the error messages are derived from is next to them.
"""

from __future__ import annotations

import base64
import typing as t
import urllib.parse

from ansible_collections.l4vip.rollout.plugins.module_utils import _provider_base as _providers
from ansible_collections.l4vip.rollout.plugins.module_utils._provider_base import Capability, HttpSettings, Observation, ProviderError
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Clock, Profile

ADMIN_STATES = ('enabled', 'drain', 'disabled')
FULL = frozenset({Capability.OBSERVE, Capability.ADMIN, Capability.SESSIONS, Capability.POOL, Capability.BATCHES})


class Preset(_providers.Provider):
    """One device's dialect. Subclasses give the pool's members (``entries``) and read each one."""

    name = 'http'
    preset: t.ClassVar[str] = ''
    title: t.ClassVar[str] = ''  # the device and its API, as error messages name it
    capabilities = FULL
    needs_member = True
    # 'required': username and password are needed; 'optional': basic auth when given; 'none': the API has no login.
    credentials: t.ClassVar[str] = 'required'
    # The admin states the device can be told; the others are refused naming the preset.
    settable: t.ClassVar[tuple[str, ...]] = ADMIN_STATES

    def __init__(self, endpoint: str, pool: str, member: str | None, settings: HttpSettings, username: str | None = None,
                 password: str | None = None) -> None:
        self.endpoint, self.pool, self.member, self.settings = endpoint.rstrip('/'), pool, member, settings
        self.username, self.password = username, password
        self.token: str | None = None
        self.asked: str | None = None  # the admin state this provider set last, for devices that show two states alike

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def refusal(cls, capability: Capability) -> ProviderError:
        return ProviderError(f"preset: {cls.preset!r} cannot {capability.value}; use one of {', '.join(presets_that_can(capability))}, "
                             f"or a provider that can ({', '.join(_providers.providers_that_can(capability))})")

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], profile: Profile, since: float, clock: Clock) -> Preset:
        for option in ('query', 'admin_request', 'admin_values'):
            if params.get(option):
                raise ProviderError(f'{option}: not used with preset {cls.preset!r}, which reads and sets the member itself; '
                                    f'leave it out, or leave out preset')
        endpoint = params.get('endpoint') or ''
        if urllib.parse.urlsplit(endpoint).scheme not in ('http', 'https') or not urllib.parse.urlsplit(endpoint).netloc:
            raise ProviderError(f"endpoint: {endpoint!r} is not a base URL for preset {cls.preset!r}; give the device's API as "
                                f'http(s)://host[:port]{cls.endpoint_hint()}')
        if not params.get('pool'):
            raise ProviderError(f'pool: needed with preset {cls.preset!r} ({cls.pool_hint()})')
        if cls.credentials == 'required' and not (params.get('username') and params.get('password')):
            missing = ' and '.join(o for o in ('username', 'password') if not params.get(o))
            raise ProviderError(f'{missing}: needed with preset {cls.preset!r} (the {cls.title} refuses requests without a login)')
        if cls.credentials == 'none' and (params.get('username') or params.get('password')):
            raise ProviderError(f'username, password: preset {cls.preset!r} has no login ({cls.title}); leave them out')
        members = [m for m in [params.get('member'), *(params.get('members') or [])] if m]
        for member in members:
            cls.check_member(member)
        provider = cls(endpoint, params['pool'], params.get('member') or (members[0] if members else None), _providers.http_settings(params),
                       params.get('username'), params.get('password'))
        provider.check()
        return provider

    @classmethod
    def endpoint_hint(cls) -> str:
        return ''

    @classmethod
    def pool_hint(cls) -> str:
        return 'the pool as the device names it'

    @classmethod
    def check_member(cls, member: str) -> None:
        """Refuse a member name the device could not hold (ProviderError naming the option)."""

    def check(self) -> None:
        """Refuse what only the built provider can tell (its endpoint's shape)."""

    def with_member(self, member: str) -> Preset:
        other = type(self)(self.endpoint, self.pool, member, self.settings, self.username, self.password)
        other.token = self.token
        return other

    # -- requests ---------------------------------------------------------------------------------

    def login(self) -> str | None:
        """Log in and return the token the device's requests carry; None for devices without one."""
        return None

    def auth_headers(self) -> dict[str, str]:
        if self.username is not None and self.password is not None:
            pair = base64.b64encode(f'{self.username}:{self.password}'.encode()).decode()
            return {'Authorization': f'Basic {pair}'}
        return {}

    def token_headers(self, token: str) -> dict[str, str]:
        return {}

    def call(self, method: str, path: str, body: t.Any = None, *, authenticated: bool = True) -> t.Any:
        """One request to ``endpoint + path``; a token-based login is made once, and once again when the token lapsed."""
        for attempt in (1, 2):
            headers = dict(self.settings.headers)
            if authenticated:
                headers.update(self.auth_headers())
                if type(self).login is not Preset.login:
                    if self.token is None:
                        self.token = self.login()
                    headers.update(self.token_headers(self.token or ''))
            settings = HttpSettings(headers, self.settings.validate_certs, self.settings.ca_path, self.settings.timeout)
            try:
                return _providers.fetch_json(self.endpoint + path, settings, method, body)
            except _providers.HttpStatusError as error:
                if error.status in (401, 403) and authenticated:
                    if attempt == 1 and self.token is not None:
                        self.token = None  # it lapsed: log in again, once
                        continue
                    raise ProviderError(f'the {self.title} refused the credentials (username, password): {error}') from None
                raise
        raise AssertionError('unreachable')

    def refused_login(self, error: ProviderError) -> ProviderError:
        return ProviderError(f'username, password: the {self.title} refused the login: {error}')

    # -- the pool ---------------------------------------------------------------------------------

    def entries(self) -> dict[str, t.Mapping[str, t.Any]]:
        """Every member of the pool, by the name the ``member`` option gives, as the device describes it."""
        raise NotImplementedError

    def read(self, entry: t.Mapping[str, t.Any]) -> Observation:
        """Whether the member is bound, in the device's words."""
        raise NotImplementedError

    def admin_of(self, entry: t.Mapping[str, t.Any]) -> tuple[str, ...]:
        """The admin states the device's answer may stand for, the likeliest first (some show drain and disabled alike)."""
        raise self.refusal(Capability.ADMIN)

    def write_admin(self, member: str, entry: t.Mapping[str, t.Any], state: str) -> None:
        raise self.refusal(Capability.ADMIN)

    def sessions_of(self, member: str, entry: t.Mapping[str, t.Any]) -> int:
        raise self.refusal(Capability.SESSIONS)

    def _members(self, members: t.Sequence[str]) -> dict[str, t.Mapping[str, t.Any]]:
        known = self.entries()
        unknown = [member for member in members if member not in known]
        if unknown:
            raise ProviderError(f"member: the {self.title} has no member {unknown[0]!r} in pool {self.pool!r}; "
                                f"its members are {', '.join(sorted(known)) or 'none'}")
        return {member: known[member] for member in members}

    def _me(self) -> str:
        if not self.member:
            raise ProviderError(f'member: needed with preset {self.preset!r}')
        return self.member

    def observe(self) -> Observation:
        return self.observe_members([self._me()])[self._me()]

    def observe_members(self, members: t.Sequence[str]) -> dict[str, Observation]:
        return {member: self._with_admin(self.read(entry), entry) for member, entry in self._members(members).items()}

    def _with_admin(self, observation: Observation, entry: t.Mapping[str, t.Any]) -> Observation:
        if not self.can(Capability.ADMIN):
            return observation
        return Observation(observation.bound, observation.observed, self.admin_of(entry)[0], observation.since)

    def pool_bindings(self) -> dict[str, bool]:
        return {member: self.read(entry).bound is True for member, entry in self.entries().items()}

    def session_counts(self, members: t.Sequence[str]) -> dict[str, int]:
        return {member: self.sessions_of(member, entry) for member, entry in self._members(members).items()}

    def admin_state(self) -> str:
        possible = self.admin_of(self._members([self._me()])[self._me()])
        return self.asked if self.asked in possible else possible[0]

    def set_admin(self, state: str) -> None:
        if state not in self.settable:
            raise ProviderError(f"state: {state!r} cannot be set through preset {self.preset!r} ({self.title}); "
                                f"it can set {', '.join(self.settable)}")
        member = self._me()
        self.write_admin(member, self._members([member])[member], state)
        self.asked = state


def _stat_int(value: t.Any) -> int:
    """A counter as devices send it: a number, or a number in text (NITRO, Envoy)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProviderError(f'expected a session count, the device answered {value!r}') from None


def _address_port(option: str, value: str, preset: str, what: str) -> None:
    host, sep, port = value.rpartition(':')
    if not sep or not host or not port.isdigit():
        raise ProviderError(f'{option}: {value!r} is not {what} for preset {preset!r}; write <name>:<port>, such as web1:80')


# --- F5 BIG-IP, iControl REST ---------------------------------------------------------------------

class BigIp(Preset):
    """Pool members under /mgmt/tm/ltm/pool; ``state`` is what the monitor says, ``session`` whether new connections go there."""

    preset = 'f5_bigip'
    title = 'BIG-IP (iControl REST)'

    @classmethod
    def pool_hint(cls) -> str:
        return 'the pool: web, or /Partition/web'

    @classmethod
    def check_member(cls, member: str) -> None:
        _address_port('member', member.rpartition('/')[2], cls.preset, "a pool member's name")

    @staticmethod
    def _path(name: str) -> str:
        """``web`` or ``/Common/web`` as iControl REST writes it in a URL: ``~Common~web``."""
        partition, _sep, leaf = name.strip('/').rpartition('/')
        return f"~{partition.replace('/', '~') or 'Common'}~{leaf}"

    def login(self) -> str:
        try:
            answer = self.call('POST', '/mgmt/shared/authn/login', {'username': self.username, 'password': self.password,
                                                                    'loginProviderName': 'tmos'}, authenticated=False)
        except _providers.HttpStatusError as error:
            raise self.refused_login(error) from None
        return answer['token']['token']

    def auth_headers(self) -> dict[str, str]:
        return {}

    def token_headers(self, token: str) -> dict[str, str]:
        return {'X-F5-Auth-Token': token}

    def _members_url(self) -> str:
        return f'/mgmt/tm/ltm/pool/{self._path(self.pool)}/members'

    def entries(self) -> dict[str, t.Mapping[str, t.Any]]:
        return {item['name']: item for item in self.call('GET', self._members_url()).get('items', [])}

    def read(self, entry: t.Mapping[str, t.Any]) -> Observation:
        state, session = entry.get('state'), entry.get('session')
        said = f'state {state}, session {session}'
        if session == 'user-disabled' or state in ('down', 'user-down'):
            return Observation(False, said)
        if state in ('up', 'unchecked') and session in ('monitor-enabled', 'user-enabled'):
            return Observation(True, said)
        return Observation(None, said)

    def admin_of(self, entry: t.Mapping[str, t.Any]) -> tuple[str, ...]:
        if entry.get('session') != 'user-disabled':
            return ('enabled',)
        return ('disabled',) if entry.get('state') == 'user-down' else ('drain',)

    def write_admin(self, member: str, entry: t.Mapping[str, t.Any], state: str) -> None:
        # Disabled: only persistent and active connections; forced offline: only active ones (both keep the sessions).
        body = {'enabled': {'session': 'user-enabled', 'state': 'user-up'}, 'drain': {'session': 'user-disabled', 'state': 'user-up'},
                'disabled': {'session': 'user-disabled', 'state': 'user-down'}}[state]
        self.call('PATCH', f'{self._members_url()}/{self._path(member)}', body)

    def sessions_of(self, member: str, entry: t.Mapping[str, t.Any]) -> int:
        answer = self.call('GET', f'{self._members_url()}/{self._path(member)}/stats')
        for stats in (answer.get('entries') or {}).values():
            entries = stats.get('nestedStats', {}).get('entries', {})
            if 'serverside.curConns' in entries:
                return _stat_int(entries['serverside.curConns'].get('value'))
        raise ProviderError(f"the {self.title} answered no serverside.curConns for pool member {member!r}")


# --- Citrix NetScaler / ADC, NITRO ------------------------------------------------------------------

class NetScaler(Preset):
    """Service group members through the servicegroup_servicegroupmember_binding resource; ``member`` is server:port."""

    preset = 'netscaler'
    title = 'NetScaler (NITRO)'

    @classmethod
    def pool_hint(cls) -> str:
        return 'the service group'

    @classmethod
    def check_member(cls, member: str) -> None:
        _address_port('member', member, cls.preset, 'a service group member (its server name and port)')

    def login(self) -> str:
        try:
            answer = self.call('POST', '/nitro/v1/config/login', {'login': {'username': self.username, 'password': self.password}},
                               authenticated=False)
        except _providers.HttpStatusError as error:
            raise self.refused_login(error) from None
        return answer['sessionid']

    def auth_headers(self) -> dict[str, str]:
        return {}

    def token_headers(self, token: str) -> dict[str, str]:
        return {'Cookie': f'NITRO_AUTH_TOKEN={token}'}

    def entries(self) -> dict[str, t.Mapping[str, t.Any]]:
        answer = self.call('GET', f'/nitro/v1/config/servicegroup_servicegroupmember_binding/{urllib.parse.quote(self.pool)}')
        return {f"{row['servername']}:{row['port']}": row for row in answer.get('servicegroup_servicegroupmember_binding', [])}

    def read(self, entry: t.Mapping[str, t.Any]) -> Observation:
        svrstate, state = str(entry.get('svrstate')), entry.get('state')
        said = f'svrstate {svrstate}, state {state}'
        if state == 'DISABLED' or svrstate in ('DOWN', 'OUT OF SERVICE', 'GOING OUT OF SERVICE'):
            return Observation(False, said)
        return Observation(True if svrstate == 'UP' else None, said)

    def admin_of(self, entry: t.Mapping[str, t.Any]) -> tuple[str, ...]:
        if entry.get('state') != 'DISABLED':
            return ('enabled',)
        # A graceful disable reads GOING OUT OF SERVICE while connections remain, then OUT OF SERVICE like any other.
        return ('drain',) if entry.get('svrstate') == 'GOING OUT OF SERVICE' else ('disabled', 'drain')

    def write_admin(self, member: str, entry: t.Mapping[str, t.Any], state: str) -> None:
        target = {'servicegroupname': self.pool, 'servername': entry['servername'], 'port': entry['port']}
        if state == 'drain':
            target['graceful'] = 'YES'
        action = 'enable' if state == 'enabled' else 'disable'
        self.call('POST', f'/nitro/v1/config/servicegroup?action={action}', {'servicegroup': target})

    def sessions_of(self, member: str, entry: t.Mapping[str, t.Any]) -> int:
        args = urllib.parse.quote(f"servicegroupname:{self.pool},servername:{entry['servername']},port:{entry['port']}", safe=':,')
        rows = self.call('GET', f'/nitro/v1/stat/servicegroupmember?args={args}').get('servicegroupmember') or [{}]
        return _stat_int(rows[0].get('curclntconnections'))


# --- HAProxy Data Plane API (v2 and v3) ------------------------------------------------------------

class DataPlane(Preset):
    """The runtime servers of a backend; ``endpoint`` is the API's base URL with its version, .../v2 or .../v3."""

    preset = 'haproxy_dataplane'
    title = 'HAProxy Data Plane API'

    @classmethod
    def endpoint_hint(cls) -> str:
        return '/v2 or /v3 (the Data Plane API with its version)'

    @classmethod
    def pool_hint(cls) -> str:
        return 'the backend'

    @property
    def version(self) -> str:
        return self.endpoint.rpartition('/')[2]

    def check(self) -> None:
        if self.version not in ('v2', 'v3'):
            raise ProviderError(f'endpoint: {self.endpoint!r} does not end with the API version /v2 or /v3 (preset {self.preset!r})')

    def _servers_url(self) -> str:
        backend = urllib.parse.quote(self.pool)
        if self.version == 'v2':
            return f'/services/haproxy/runtime/servers?backend={backend}'
        return f'/services/haproxy/runtime/backends/{backend}/servers'

    def _server_url(self, member: str) -> str:
        backend, server = urllib.parse.quote(self.pool), urllib.parse.quote(member)
        if self.version == 'v2':
            return f'/services/haproxy/runtime/servers/{server}?backend={backend}'
        return f'/services/haproxy/runtime/backends/{backend}/servers/{server}'

    def entries(self) -> dict[str, t.Mapping[str, t.Any]]:
        return {server['name']: server for server in self.call('GET', self._servers_url()) or []}

    def read(self, entry: t.Mapping[str, t.Any]) -> Observation:
        operational, admin = entry.get('operational_state'), entry.get('admin_state')
        said = f'operational_state {operational}, admin_state {admin}'
        if admin in ('maint', 'drain') or operational in ('down', 'stopping'):
            return Observation(False, said)
        return Observation(True if operational == 'up' and admin == 'ready' else None, said)

    def admin_of(self, entry: t.Mapping[str, t.Any]) -> tuple[str, ...]:
        return ({'ready': 'enabled', 'drain': 'drain', 'maint': 'disabled'}.get(entry.get('admin_state'), 'enabled'),)

    def write_admin(self, member: str, entry: t.Mapping[str, t.Any], state: str) -> None:
        self.call('PUT', self._server_url(member), {'admin_state': {'enabled': 'ready', 'drain': 'drain', 'disabled': 'maint'}[state]})

    def sessions_of(self, member: str, entry: t.Mapping[str, t.Any]) -> int:
        query = urllib.parse.urlencode({'type': 'server', 'parent': self.pool, 'name': member})
        answer = self.call('GET', f'/services/haproxy/stats/native?{query}')
        # v2 answers a list of runtimes, v3 one; each holds the stats rows of its processes.
        for runtime in answer if isinstance(answer, list) else [answer]:
            for row in runtime.get('stats') or []:
                if row.get('name') == member and row.get('backend_name', self.pool) == self.pool:
                    return _stat_int(row.get('stats', {}).get('scur'))
        raise ProviderError(f'the {self.title} has no stats row for server {member!r} of backend {self.pool!r}')


# --- NGINX Plus API ---------------------------------------------------------------------------------

class NginxPlus(Preset):
    """An upstream's peers; ``pool`` is an http upstream's name, or ``stream/<name>`` for a stream upstream (which has no drain)."""

    preset = 'nginx_plus'
    title = 'NGINX Plus API'
    credentials = 'optional'

    @classmethod
    def endpoint_hint(cls) -> str:
        return '/api/<version>, such as /api/9'

    @classmethod
    def pool_hint(cls) -> str:
        return 'the upstream: web, or stream/web for a stream upstream'

    def check(self) -> None:
        head, _sep, version = self.endpoint.rpartition('/')
        if not (head.endswith('/api') and version.isdigit()):
            raise ProviderError(f'endpoint: {self.endpoint!r} does not end with /api/<version>, such as /api/9 (preset {self.preset!r})')

    @property
    def stream(self) -> bool:
        return self.pool.startswith('stream/')

    @property
    def settable(self) -> tuple[str, ...]:  # type: ignore[override]
        return ('enabled', 'disabled') if self.stream else ADMIN_STATES

    def _upstream_url(self) -> str:
        kind, name = ('stream', self.pool[len('stream/'):]) if self.stream else ('http', self.pool)
        return f'/{kind}/upstreams/{urllib.parse.quote(name)}'

    def entries(self) -> dict[str, t.Mapping[str, t.Any]]:
        found: dict[str, t.Mapping[str, t.Any]] = {}
        for peer in self.call('GET', self._upstream_url()).get('peers', []):
            found[peer['server']] = peer
            found.setdefault(peer['name'], peer)  # the configured name, where it differs from the address
        return found

    def pool_bindings(self) -> dict[str, bool]:
        return {peer['server']: self.read(peer).bound is True for peer in self.call('GET', self._upstream_url()).get('peers', [])}

    def read(self, entry: t.Mapping[str, t.Any]) -> Observation:
        state = entry.get('state')
        said = f'state {state}, active {entry.get("active")}'
        if state == 'up':
            return Observation(True, said)
        return Observation(None if state == 'checking' else False, said)

    def admin_of(self, entry: t.Mapping[str, t.Any]) -> tuple[str, ...]:
        return ({'draining': 'drain', 'down': 'disabled'}.get(entry.get('state'), 'enabled'),)

    def write_admin(self, member: str, entry: t.Mapping[str, t.Any], state: str) -> None:
        body = {'enabled': {'down': False}, 'drain': {'drain': True}, 'disabled': {'down': True}}[state]
        self.call('PATCH', f"{self._upstream_url()}/servers/{entry['id']}", body)

    def sessions_of(self, member: str, entry: t.Mapping[str, t.Any]) -> int:
        return _stat_int(entry.get('active'))


# --- A10 Thunder, aXAPI v3 --------------------------------------------------------------------------

class A10(Preset):
    """Service group members under /axapi/v3/slb/service-group; ``member`` is name:port. A10 members have no drain state."""

    preset = 'a10'
    title = 'A10 (aXAPI v3)'
    settable = ('enabled', 'disabled')

    @classmethod
    def pool_hint(cls) -> str:
        return 'the service group'

    @classmethod
    def check_member(cls, member: str) -> None:
        _address_port('member', member, cls.preset, 'a service group member (its name and port)')

    def login(self) -> str:
        try:
            answer = self.call('POST', '/axapi/v3/auth', {'credentials': {'username': self.username, 'password': self.password}},
                               authenticated=False)
        except _providers.HttpStatusError as error:
            raise self.refused_login(error) from None
        return answer['authresponse']['signature']

    def auth_headers(self) -> dict[str, str]:
        return {}

    def token_headers(self, token: str) -> dict[str, str]:
        return {'Authorization': f'A10 {token}'}

    def _group_url(self) -> str:
        return f'/axapi/v3/slb/service-group/{urllib.parse.quote(self.pool)}'

    def _member_url(self, member: str) -> str:
        name, _sep, port = member.rpartition(':')
        return f'{self._group_url()}/member/{urllib.parse.quote(name)}+{port}'

    def entries(self) -> dict[str, t.Mapping[str, t.Any]]:
        group = self.call('GET', f'{self._group_url()}/oper').get('service-group', {})
        return {f"{m['name']}:{m['port']}": m for m in group.get('member-list', [])}

    def read(self, entry: t.Mapping[str, t.Any]) -> Observation:
        state = str((entry.get('oper') or {}).get('state'))
        said = f'oper state {state}'
        if state.upper() == 'UP':
            return Observation(True, said)
        return Observation(False if state.upper() in ('DOWN', 'DISABLED') else None, said)

    def admin_of(self, entry: t.Mapping[str, t.Any]) -> tuple[str, ...]:
        member = self.call('GET', self._member_url(f"{entry['name']}:{entry['port']}")).get('member', {})
        return ('enabled',) if member.get('member-state', 'enable') == 'enable' else ('disabled',)

    def _with_admin(self, observation: Observation, entry: t.Mapping[str, t.Any]) -> Observation:
        return observation  # the admin state is one more request per member: asked only by member_admin

    def write_admin(self, member: str, entry: t.Mapping[str, t.Any], state: str) -> None:
        name, _sep, port = member.rpartition(':')
        self.call('POST', self._member_url(member),
                  {'member': {'name': name, 'port': int(port), 'member-state': 'enable' if state == 'enabled' else 'disable'}})

    def sessions_of(self, member: str, entry: t.Mapping[str, t.Any]) -> int:
        return _stat_int(self.call('GET', f'{self._member_url(member)}/stats').get('member', {}).get('stats', {}).get('curr_conn'))


# --- Radware Alteon REST ----------------------------------------------------------------------------

class Alteon(Preset):
    """Real servers of a group: their operational status from SlbEnhRealServerInfoTable, sessions from SlbStatEnhRServerTable."""

    preset = 'alteon'
    title = 'Alteon (REST)'
    capabilities = frozenset({Capability.OBSERVE, Capability.SESSIONS, Capability.POOL, Capability.BATCHES})
    # SlbEnhRealServerInfoTable's State: 2 running, 3 failed, 4 disabled.
    RUNNING, FAILED, DISABLED = 2, 3, 4

    @classmethod
    def pool_hint(cls) -> str:
        return 'the real server group index'

    def entries(self) -> dict[str, t.Mapping[str, t.Any]]:
        group = [row['Index'] for row in self.call('GET', '/config/SlbEnhGroupRealServersTable').get('SlbEnhGroupRealServersTable', [])
                 if str(row.get('RealServerGroupIndex')) == self.pool]
        info = {str(row['Index']): row for row in self.call('GET', '/config/SlbEnhRealServerInfoTable').get('SlbEnhRealServerInfoTable', [])}
        return {str(index): info.get(str(index), {'Index': index}) for index in group}

    def read(self, entry: t.Mapping[str, t.Any]) -> Observation:
        state = entry.get('State')
        said = f"State {state} ({ {2: 'running', 3: 'failed', 4: 'disabled'}.get(t.cast(int, state), 'unknown') })"
        if state == self.RUNNING:
            return Observation(True, said)
        return Observation(False if state in (self.FAILED, self.DISABLED) else None, said)

    def sessions_of(self, member: str, entry: t.Mapping[str, t.Any]) -> int:
        rows = self.call('GET', f'/config/SlbStatEnhRServerTable/{urllib.parse.quote(member)}').get('SlbStatEnhRServerTable') or [{}]
        return _stat_int(rows[0].get('CurrSessions'))


# --- Kemp LoadMaster, API v2 ------------------------------------------------------------------------

class Kemp(Preset):
    """A virtual service's real servers through the JSON API (POST /accessv2); ``pool`` is the VS address:port, ``member`` the RS's."""

    preset = 'kemp'
    title = 'LoadMaster (API v2)'
    capabilities = frozenset({Capability.OBSERVE, Capability.ADMIN, Capability.POOL, Capability.BATCHES})
    settable = ('enabled', 'disabled')

    @classmethod
    def pool_hint(cls) -> str:
        return "the virtual service's address:port"

    @classmethod
    def check_member(cls, member: str) -> None:
        _address_port('member', member, cls.preset, "a real server's address:port")

    def check(self) -> None:
        _address_port('pool', self.pool, self.preset, "a virtual service's address:port")

    def auth_headers(self) -> dict[str, str]:
        return {}  # the credentials travel in each command's body

    def command(self, cmd: str, **args: t.Any) -> t.Any:
        vs, _sep, port = self.pool.rpartition(':')
        answer = self.call('POST', '/accessv2', dict(cmd=cmd, apiuser=self.username, apipass=self.password, vs=vs, port=port, prot='tcp',
                                                     **args))
        if answer.get('status') != 'ok':
            raise ProviderError(f"the {self.title} answered {cmd}: {answer.get('code')} {answer.get('message')}")
        return answer

    def entries(self) -> dict[str, t.Mapping[str, t.Any]]:
        return {f"{rs['Addr']}:{rs['Port']}": rs for rs in self.command('showvs').get('Rs', [])}

    def read(self, entry: t.Mapping[str, t.Any]) -> Observation:
        status, enabled = entry.get('Status'), entry.get('Enable')
        said = f'Status {status}, Enable {enabled}'
        if status == 'Up' and enabled:
            return Observation(True, said)
        return Observation(False if status in ('Down', 'Disabled') or not enabled else None, said)

    def admin_of(self, entry: t.Mapping[str, t.Any]) -> tuple[str, ...]:
        return ('enabled',) if entry.get('Enable') else ('disabled',)

    def write_admin(self, member: str, entry: t.Mapping[str, t.Any], state: str) -> None:
        self.command('modrs', rs=entry['Addr'], rsport=entry['Port'], enable='y' if state == 'enabled' else 'n')


# --- Envoy admin ------------------------------------------------------------------------------------

class Envoy(Preset):
    """A cluster's hosts from the admin interface's /clusters?format=json; observe only (the admin API sets nothing)."""

    preset = 'envoy'
    title = 'Envoy admin interface'
    capabilities = frozenset({Capability.OBSERVE, Capability.SESSIONS, Capability.POOL, Capability.BATCHES})
    credentials = 'none'
    # The health flags that take a host out of load balancing.
    FAILURES = ('failed_active_health_check', 'failed_outlier_check', 'failed_eds_health', 'pending_dynamic_removal',
                'excluded_via_immediate_hc_fail', 'active_hc_timeout')

    @classmethod
    def pool_hint(cls) -> str:
        return 'the cluster'

    @classmethod
    def check_member(cls, member: str) -> None:
        _address_port('member', member, cls.preset, "a host's address:port")

    def entries(self) -> dict[str, t.Mapping[str, t.Any]]:
        for cluster in self.call('GET', '/clusters?format=json').get('cluster_statuses', []):
            if cluster.get('name') == self.pool:
                return {self._address(host): host for host in cluster.get('host_statuses', [])}
        raise ProviderError(f"pool: the {self.title} has no cluster {self.pool!r}")

    @staticmethod
    def _address(host: t.Mapping[str, t.Any]) -> str:
        socket_address = host.get('address', {}).get('socket_address', {})
        return f"{socket_address.get('address')}:{socket_address.get('port_value')}"

    def read(self, entry: t.Mapping[str, t.Any]) -> Observation:
        health = entry.get('health_status', {})
        failed = [flag for flag in self.FAILURES if health.get(flag)]
        eds = health.get('eds_health_status', 'HEALTHY')
        said = f"eds_health_status {eds}{', ' + ', '.join(failed) if failed else ''}"
        if failed or eds in ('UNHEALTHY', 'DRAINING', 'TIMEOUT'):
            return Observation(False, said)
        return Observation(True if eds in ('HEALTHY', 'DEGRADED') else None, said)

    def sessions_of(self, member: str, entry: t.Mapping[str, t.Any]) -> int:
        stats = {stat.get('name'): stat.get('value', 0) for stat in entry.get('stats', [])}
        return _stat_int(stats.get('cx_active', 0))


# Every preset, in the order the docs list them.
PRESET_CLASSES: dict[str, type[Preset]] = {cls.preset: cls for cls in (BigIp, NetScaler, DataPlane, NginxPlus, A10, Alteon, Kemp, Envoy)}
PRESETS = tuple(PRESET_CLASSES)


def presets_that_can(*capabilities: Capability) -> tuple[str, ...]:
    return tuple(name for name, cls in PRESET_CLASSES.items() if all(cls.can(capability) for capability in capabilities))


def preset_class(name: str) -> type[Preset]:
    try:
        return PRESET_CLASSES[name]
    except KeyError:
        raise ProviderError(f"preset: {name!r} is not a preset; use one of {', '.join(PRESETS)}") from None
