# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The provider protocol every kind of L4 follows, and the HTTP request the REST providers share.

Internal to the l4vip.rollout collection; not a public API.

``_providers`` holds the providers and their registry, ``_presets`` the device dialects of ``http``;
both build on this file, which imports neither: the registry is filled in by ``_providers`` when it
is imported (``REGISTRY``), so that a refusal can name the providers that can.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import typing as t

from urllib.error import HTTPError, URLError

from ansible_collections.l4vip.rollout.plugins.module_utils import _claims
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Clock, Profile

REQUEST_TIMEOUT = 5.0
# Every provider by name, in the order the docs list them; _providers fills it in.
REGISTRY: dict[str, type[Provider]] = {}


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
    from ansible.module_utils.urls import Request  # pylint: disable=import-outside-toplevel
    try:
        answer = Request().open(method, url, data=data, headers=headers, validate_certs=settings.validate_certs, ca_path=settings.ca_path,
                                timeout=settings.timeout, follow_redirects='safe', context=tls_context(settings))
        text = answer.read()
    except HTTPError as error:
        raise HttpStatusError(f'{method} {url} answered {error.code}: {_error_text(error)}', error.code) from None
    except (URLError, OSError) as error:
        raise L4Unreachable(url, getattr(error, 'reason', error)) from None
    try:
        return json.loads(text) if text else None
    except ValueError:
        raise ProviderError(f'{method} {url} did not answer JSON: {text[:200]!r}') from None


# One TLS context per certificate settings, for the process: open_url would build one per request, and a new context
# loads the system's CA bundle (30-40 ms of CPU here) - every poll of a wait would pay it, plain HTTP included.
_TLS_CONTEXTS: dict[tuple[bool, str | None], t.Any] = {}


def tls_context(settings: HttpSettings) -> t.Any:
    """The TLS context for these certificate settings, built once per process (or inherited: see plugin_utils/_in_process)."""
    key = (settings.validate_certs, settings.ca_path)
    if key not in _TLS_CONTEXTS:
        from ansible.module_utils.urls import make_context  # pylint: disable=import-outside-toplevel
        _TLS_CONTEXTS[key] = make_context(cafile=settings.ca_path, validate_certs=settings.validate_certs)
    return _TLS_CONTEXTS[key]


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


def providers_that_can(*capabilities: Capability) -> tuple[str, ...]:
    """The names of the providers that have every one of ``capabilities``."""
    return tuple(name for name, cls in REGISTRY.items() if all(cls.can(capability) for capability in capabilities))


def http_settings(params: t.Mapping[str, t.Any]) -> HttpSettings:
    return HttpSettings(params.get('headers') or {}, params.get('validate_certs', True), params.get('ca_path'))
