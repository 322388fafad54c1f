# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The emulator's control API: JSON over HTTP/1.1, one request per connection.

Internal to the l4vip.rollout collection; not a public API.

    GET  /api/status                              ready, pid, control URL, config digest, VIP addresses
    GET  /api/vips                                every VIP with its members
    GET  /api/vips/<vip>                          one VIP
    GET  /api/vips/<vip>/members/<member>         one member: state, admin_state, bound, since, checks, sessions
    PUT  /api/vips/<vip>/members/<member>/admin   body {"state": "enabled" | "drain" | "disabled"}
    GET  /api/sessions[?vip=&member=]             the session table
    GET  /api/events[?since=<epoch>]              transitions, oldest first
    GET  /api/claims/<vip>                        the rollouts' claims on the VIP's members, with their version
    PUT  /api/claims/<vip>                        body {"version": n, "claims": {...}}: stored only while n is the version
    GET  /metrics                                 Prometheus text format

It reads and changes the emulator only through ``EmulatorView``, so it imports nothing of the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import typing as t
import urllib.parse

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import Endpoint

MAX_BODY = 64 * 1024
REQUEST_TIMEOUT = 5.0


@t.runtime_checkable
class MemberView(t.Protocol):
    """A member, as the API shows it."""

    def as_dict(self) -> dict[str, t.Any]: ...  # noqa: E704


@t.runtime_checkable
class VipView(t.Protocol):
    """A VIP, as the API shows it and finds its members in."""

    @property
    def by_name(self) -> t.Mapping[str, MemberView]: ...  # noqa: E704

    def as_dict(self) -> dict[str, t.Any]: ...  # noqa: E704


@t.runtime_checkable
class EmulatorView(t.Protocol):
    """Exactly what the control API uses of the emulator (the core's Emulator has it all; a unit test holds both to it)."""

    api_requests: int  # counted here, one per answer
    # Per VIP: (version, document) of the rollouts' claims; the API compares and sets, the emulator only keeps them.
    claim_tables: dict[str, tuple[int, dict[str, t.Any]]]

    @property
    def vips(self) -> t.Mapping[str, VipView]: ...  # noqa: E704

    @property
    def events(self) -> t.Iterable[t.Mapping[str, t.Any]]: ...  # noqa: E704

    def status(self) -> dict[str, t.Any]: ...  # noqa: E704

    def session_rows(self, vip: str | None = None, member: str | None = None) -> list[dict[str, t.Any]]: ...  # noqa: E704

    def metrics(self) -> str: ...  # noqa: E704

    # ``member`` is always one this API took from ``vips[...].by_name``: the emulator's own kind of member.
    def set_admin(self, member: t.Any, state: str) -> bool: ...  # noqa: E704


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


REASONS = {200: 'OK', 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large'}


async def serve_control(emulator: EmulatorView, endpoint: Endpoint) -> asyncio.AbstractServer:
    """Listen for the control API on ``endpoint`` (loopback unless the configuration says otherwise)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, content_type, body = await asyncio.wait_for(_answer(emulator, reader), REQUEST_TIMEOUT)
        except asyncio.TimeoutError:
            status, content_type, body = 400, 'application/json', _json({'error': 'request not complete in time'})
        emulator.api_requests += 1
        head = (f'HTTP/1.1 {status} {REASONS.get(status, "Error")}\r\nContent-Type: {content_type}\r\n'
                f'Content-Length: {len(body)}\r\nConnection: close\r\n\r\n')
        writer.write(head.encode() + body)
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return await asyncio.start_server(handle, endpoint.host, endpoint.port, reuse_address=True)


def _json(data: t.Any) -> bytes:
    return json.dumps(data, indent=1).encode()


async def _answer(emulator: EmulatorView, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
    try:
        method, target, body = await _read_request(reader)
        if target.path == '/metrics':
            _require_method(method, 'GET')
            return 200, 'text/plain; version=0.0.4', emulator.metrics().encode()
        return 200, 'application/json', _json(_route(emulator, method, target, body))
    except ApiError as error:
        return error.status, 'application/json', _json({'error': str(error)})


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, urllib.parse.SplitResult, bytes]:
    request_line = (await reader.readline()).decode('latin-1').split()
    if len(request_line) != 3:
        raise ApiError(400, 'expected an HTTP request line')
    length = 0
    while True:
        line = (await reader.readline()).decode('latin-1')
        if line in ('\r\n', '\n', ''):
            break
        name, _sep, value = line.partition(':')
        if name.strip().lower() == 'content-length':
            if not value.strip().isdigit():
                raise ApiError(400, f'bad Content-Length {value.strip()!r}')
            length = int(value)
    if length > MAX_BODY:
        raise ApiError(413, f'body over {MAX_BODY} bytes')
    body = await reader.readexactly(length) if length else b''
    return request_line[0].upper(), urllib.parse.urlsplit(request_line[1]), body


def _require_method(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError(405, f'{method} not allowed here; use {" or ".join(allowed)}')


def _route(emulator: EmulatorView, method: str, target: urllib.parse.SplitResult, body: bytes) -> t.Any:
    parts = [urllib.parse.unquote(p) for p in target.path.strip('/').split('/')]
    query = dict(urllib.parse.parse_qsl(target.query))
    if parts[:1] != ['api'] or len(parts) < 2:
        raise ApiError(404, f'no such resource {target.path}')
    resource = parts[1:]
    if resource == ['status']:
        _require_method(method, 'GET')
        return emulator.status()
    if resource == ['sessions']:
        _require_method(method, 'GET')
        return emulator.session_rows(query.get('vip'), query.get('member'))
    if resource == ['events']:
        _require_method(method, 'GET')
        since = _float_param(query, 'since')
        return [e for e in emulator.events if since is None or e['at'] > since]
    if resource[0] == 'vips':
        return _route_vips(emulator, method, resource[1:], body)
    if resource[0] == 'claims' and len(resource) == 2:
        return _route_claims(emulator, method, resource[1], body)
    raise ApiError(404, f'no such resource {target.path}')


def _route_vips(emulator: EmulatorView, method: str, rest: list[str], body: bytes) -> t.Any:
    if not rest:
        _require_method(method, 'GET')
        return [vip.as_dict() for vip in emulator.vips.values()]
    vip = emulator.vips.get(rest[0])
    if vip is None:
        raise ApiError(404, f'no VIP named {rest[0]!r}; VIPs are {", ".join(emulator.vips)}')
    if len(rest) == 1:
        _require_method(method, 'GET')
        return vip.as_dict()
    if rest[1] != 'members' or len(rest) not in (3, 4):
        raise ApiError(404, f'no such resource under VIP {rest[0]!r}')
    member = vip.by_name.get(rest[2])
    if member is None:
        raise ApiError(404, f'no member named {rest[2]!r} in VIP {rest[0]!r}; members are {", ".join(vip.by_name)}')
    if len(rest) == 3:
        _require_method(method, 'GET')
        return member.as_dict()
    if rest[3] != 'admin':
        raise ApiError(404, f'no such resource {rest[3]!r} on a member')
    _require_method(method, 'PUT', 'POST')
    try:
        state = json.loads(body or b'{}').get('state')
    except (ValueError, AttributeError):
        raise ApiError(400, 'expected a JSON body such as {"state": "drain"}') from None
    try:
        changed = emulator.set_admin(member, state)
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    return dict(member.as_dict(), changed=changed)


def _route_claims(emulator: EmulatorView, method: str, vip: str, body: bytes) -> t.Any:
    """Compare and set: a writer names the version it read, and a newer one refuses the write (the writer reads again)."""
    if vip not in emulator.vips:
        raise ApiError(404, f'no VIP named {vip!r}; VIPs are {", ".join(emulator.vips)}')
    version, claims = emulator.claim_tables.get(vip, (0, {}))
    if method == 'GET':
        return {'vip': vip, 'version': version, 'claims': claims}
    _require_method(method, 'GET', 'PUT')
    try:
        wanted = json.loads(body or b'{}')
        expected, document = wanted['version'], wanted['claims']
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, 'expected a JSON body such as {"version": 3, "claims": {...}}') from None
    if not isinstance(expected, int) or not isinstance(document, dict):
        raise ApiError(400, f'version: expected a number and claims an object, got {expected!r} and {type(document).__name__}')
    if expected != version:
        return {'vip': vip, 'stored': False, 'version': version}
    emulator.claim_tables[vip] = (version + 1, document)
    return {'vip': vip, 'stored': True, 'version': version + 1}


def _float_param(query: dict[str, str], name: str) -> float | None:
    if name not in query:
        return None
    try:
        return float(query[name])
    except ValueError:
        raise ApiError(400, f'{name}: expected a number, got {query[name]!r}') from None
