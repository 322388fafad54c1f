# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The emulator's configuration: its keys checked once, into frozen dataclasses that name every value.

Internal to the l4vip.rollout collection; not a public API. Every error names the key's path
and the bad value (``vips[0].members[1].address: ...``), so that the l4_emulator module and the
command line can say exactly what to fix; nothing here opens a socket.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Profile, ProfileError, parse_profile

BALANCING = ('round_robin', 'least_sessions')
AGED_SESSION_ACTIONS = ('rst', 'drop')
DEFAULT_CHECK_SOURCE = '127.0.0.2'


class ConfigError(ValueError):
    """A configuration key has a bad value; names the key's path and the value."""

    def __init__(self, path: str, value: t.Any, expected: str) -> None:
        self.path = path
        self.value = value
        super().__init__(f'{path}: {expected}, got {value!r}')


@dataclasses.dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f'[{self.host}]:{self.port}' if ':' in self.host else f'{self.host}:{self.port}'


@dataclasses.dataclass(frozen=True)
class MemberConfig:
    name: str
    address: Endpoint


@dataclasses.dataclass(frozen=True)
class VipConfig:
    name: str
    listen: Endpoint
    members: tuple[MemberConfig, ...]
    balancing: str = 'round_robin'


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    vips: tuple[VipConfig, ...]
    profile: Profile
    control: Endpoint
    aged_session_action: str = 'rst'
    check_source: str | None = DEFAULT_CHECK_SOURCE
    seed: int | None = None

    def digest(self) -> str:
        """Identifies the configuration, so a second start with the same one can be a no-op."""
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_endpoint(path: str, value: t.Any, default_port: int | None = None) -> Endpoint:
    """``host:port`` or ``[v6]:port``; the host must be an IP address (an L4 has no resolver)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(path, value, 'expected "address:port"')
    host, sep, port_text = value.rpartition(':')
    if not sep:
        host, port_text = value, ''
    host = host.strip('[]')
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(path, value, 'expected "address:port" with an IP address') from None
    if not port_text and default_port is not None:
        return Endpoint(host, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(path, value, 'expected "address:port" with a port from 0 to 65535')
    return Endpoint(host, int(port_text))


def _require_name(path: str, value: t.Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() or c in '/?#' for c in value):
        raise ConfigError(path, value, 'expected a name without spaces or /?#')
    return value


def _require_mapping(path: str, value: t.Any, allowed: t.Iterable[str]) -> t.Mapping[str, t.Any]:
    if not isinstance(value, t.Mapping):
        raise ConfigError(path, value, 'expected a dict')
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(f'{path}.{unknown[0]}' if path else unknown[0], value[unknown[0]], f'unknown key; valid keys are {", ".join(allowed)}')
    return value


def _parse_member(path: str, raw: t.Any) -> MemberConfig:
    raw = _require_mapping(path, raw, ('name', 'address'))
    return MemberConfig(_require_name(f'{path}.name', raw.get('name')), parse_endpoint(f'{path}.address', raw.get('address')))


def _parse_vip(path: str, raw: t.Any) -> VipConfig:
    raw = _require_mapping(path, raw, ('name', 'listen', 'members', 'balancing'))
    members_raw = raw.get('members')
    if not isinstance(members_raw, list) or not members_raw:
        raise ConfigError(f'{path}.members', members_raw, 'expected a non-empty list of members')
    members = tuple(_parse_member(f'{path}.members[{i}]', m) for i, m in enumerate(members_raw))
    names = [m.name for m in members]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f'{path}.members', duplicate, 'expected unique member names')
    balancing = raw.get('balancing', 'round_robin')
    if balancing not in BALANCING:
        raise ConfigError(f'{path}.balancing', balancing, f'expected one of {", ".join(BALANCING)}')
    return VipConfig(_require_name(f'{path}.name', raw.get('name')), parse_endpoint(f'{path}.listen', raw.get('listen')), members, balancing)


def parse_config(raw: t.Any) -> EmulatorConfig:
    """Validate a configuration dict (as read from YAML or JSON), naming the first bad key."""
    raw = _require_mapping('', raw, ('vips', 'profile', 'control', 'aged_session_action', 'check_source', 'seed'))
    vips_raw = raw.get('vips')
    if not isinstance(vips_raw, list) or not vips_raw:
        raise ConfigError('vips', vips_raw, 'expected a non-empty list of VIPs')
    vips = tuple(_parse_vip(f'vips[{i}]', v) for i, v in enumerate(vips_raw))
    names = [v.name for v in vips]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError('vips', duplicate, 'expected unique VIP names')
    try:
        profile = parse_profile(raw.get('profile'))
    except ProfileError as error:
        raise ConfigError(f'profile.{error.key}', error.value, error.expected) from None
    action = raw.get('aged_session_action', 'rst')
    if action not in AGED_SESSION_ACTIONS:
        raise ConfigError('aged_session_action', action, f'expected one of {", ".join(AGED_SESSION_ACTIONS)}')
    check_source = raw.get('check_source', DEFAULT_CHECK_SOURCE)
    if check_source is not None:
        try:
            ipaddress.ip_address(check_source)
        except ValueError:
            raise ConfigError('check_source', check_source, 'expected an IP address or null') from None
    seed = raw.get('seed')
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError('seed', seed, 'expected an integer or null')
    control = parse_endpoint('control', raw.get('control', '127.0.0.1:0'))
    return EmulatorConfig(vips, profile, control, action, check_source, seed)


def control_warnings(config: EmulatorConfig) -> list[str]:
    """What to tell the user about where the control API listens: nothing on loopback (the default)."""
    host = config.control.host
    if ipaddress.ip_address(host).is_loopback:
        return []
    return [f'control: the control API listens on {host}, which is not a loopback address; it has no authentication, so '
            'anyone who can reach it can take members out of the VIP (use a 127.0.0.x address unless this is meant)']


def load_config(path: str) -> EmulatorConfig:
    """Read a configuration file: JSON, or YAML where PyYAML is installed."""
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    try:
        data = json.loads(text)
    except ValueError:
        try:
            import yaml  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise ConfigError('<file>', path, 'expected JSON (PyYAML is not installed to read YAML)') from None
        data = yaml.safe_load(text)
    return parse_config(data)
