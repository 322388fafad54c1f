"""Test doubles of the L4 devices the presets speak to, answering from the embedded emulator's real state.

Test only. Each double is an HTTP server on loopback that speaks one device's REST dialect - its
URLs, field names, nesting, value spellings and login - and answers every request from the
emulator's control API: a member's health (up, suspect, down, moved by the emulator's own checks
with its interval, retry and rise), its admin state and its session count. An admin request is
translated into the emulator's admin state, so "a BIG-IP" forcing a member offline takes it out of
the emulator's binding list, and a disabled member keeps its sessions as the devices do.

    with DEVICES['f5_bigip'](emulator_control_url, 'web') as device:
        options = device.options('web1')   # provider: http, preset, endpoint, pool, member, credentials

Addresses: 127.0.0.170-179, an ephemeral port each. Wrong credentials are refused the way the device
refuses them (401 with its own error body).
"""

from __future__ import annotations

import base64
import http.server
import json
import pathlib
import secrets
import sys
import threading
import typing as t
import urllib.error
import urllib.parse
import urllib.request

USERNAME, PASSWORD = 'rollout', 'pw-' + 'x' * 8  # the doubles' one account
DEVICE_ADDRESS = '127.0.0.170'


class Refused(Exception):
    """An answer with an HTTP error status and the device's own error body."""

    def __init__(self, status: int, body: t.Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class Device:
    """One device's API over the emulator's VIP ``vip``; subclasses answer requests in its dialect."""

    preset = ''
    base_path = ''  # what the endpoint adds to http://host:port

    def __init__(self, control_url: str, vip: str, address: str = DEVICE_ADDRESS, credentials: bool = True) -> None:
        self.control_url, self.vip, self.credentials = control_url.rstrip('/'), vip, credentials
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # method and path of every request, to prove who asked what
        device = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args: t.Any) -> None:  # quiet: the tests read self.requests
                pass

            def _serve(self) -> None:
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                split = urllib.parse.urlsplit(self.path)
                device.requests.append((self.command, split.path))
                try:
                    body = json.loads(raw) if raw else None
                    status, answer = 200, device.answer(self.command, split.path, dict(urllib.parse.parse_qsl(split.query)),
                                                        self.headers, body)
                except Refused as refused:
                    status, answer = refused.status, refused.body
                except json.JSONDecodeError:
                    status, answer = 400, {'error': 'body is not JSON'}
                except Exception as error:  # pylint: disable=broad-exception-caught  # a double's bug answers 500, not a hang
                    status, answer = 500, {'error': f'{type(error).__name__}: {error}'}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

        self.http = http.server.ThreadingHTTPServer((address, 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, name=f'{self.preset}-double', daemon=True)

    def __enter__(self) -> Device:
        self.start()
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        self.stop()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for serve_forever, which a double never started does not run
            self.http.shutdown()
            self.thread.join(5)
        self.http.server_close()

    @property
    def endpoint(self) -> str:
        host, port = self.http.server_address[:2]
        return f'http://{host}:{port}{self.base_path}'

    # -- what the rollout's options are for this device -------------------------------------------

    def pool(self) -> str:
        return self.vip

    def member_name(self, member: t.Mapping[str, t.Any]) -> str:
        """The emulator's member as this device names it."""
        return member['name']

    def options(self, emulator_member: str, **more: t.Any) -> dict[str, t.Any]:
        found = next(m for m in self.members() if m['name'] == emulator_member)
        options = {'provider': 'http', 'preset': self.preset, 'endpoint': self.endpoint, 'pool': self.pool(), 'member': self.member_name(found)}
        if self.credentials:
            options.update(username=USERNAME, password=PASSWORD)
        return dict(options, **more)

    # -- the emulator underneath ------------------------------------------------------------------

    def _control(self, path: str, method: str = 'GET', body: t.Any = None) -> t.Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.control_url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer)

    def vip_state(self, vip: str | None = None) -> dict[str, t.Any]:
        try:
            return self._control(f'/api/vips/{urllib.parse.quote(vip or self.vip)}')
        except urllib.error.HTTPError:
            raise Refused(404, self.not_found(vip or self.vip)) from None

    def members(self, vip: str | None = None) -> list[dict[str, t.Any]]:
        return self.vip_state(vip)['members']

    def set_admin(self, member: t.Mapping[str, t.Any], state: str) -> None:
        self._control(f"/api/vips/{urllib.parse.quote(member['vip'])}/members/{urllib.parse.quote(member['name'])}/admin", 'PUT', {'state': state})

    @staticmethod
    def address(member: t.Mapping[str, t.Any]) -> tuple[str, int]:
        host, _sep, port = member['address'].rpartition(':')
        return host, int(port)

    @staticmethod
    def health_up(member: t.Mapping[str, t.Any]) -> bool:
        """A suspect member still passes for up: the device has not counted its retries yet."""
        return member['state'] in ('up', 'suspect')

    # -- the dialect ------------------------------------------------------------------------------

    def not_found(self, what: str) -> t.Any:
        return {'error': f'{what} not found'}

    def basic_auth_ok(self, headers: t.Mapping[str, str]) -> bool:
        expected = 'Basic ' + base64.b64encode(f'{USERNAME}:{PASSWORD}'.encode()).decode()
        return not self.credentials or headers.get('Authorization') == expected

    def answer(self, method: str, path: str, query: dict[str, str], headers: t.Mapping[str, str], body: t.Any) -> t.Any:
        raise NotImplementedError


# --- F5 BIG-IP ---------------------------------------------------------------------------------------

class BigIpDouble(Device):
    preset = 'f5_bigip'
    POOL_PREFIX = '/mgmt/tm/ltm/pool/'

    def member_name(self, member: t.Mapping[str, t.Any]) -> str:
        return f"{member['name']}:{self.address(member)[1]}"

    def not_found(self, what: str) -> t.Any:
        return {'code': 404, 'message': f'01020036:3: The requested Pool Member ({what}) was not found.', 'errorStack': [], 'apiError': 3}

    def item(self, member: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        name = self.member_name(member)
        admin = member['admin_state']
        return {'kind': 'tm:ltm:pool:members:membersstate', 'name': name, 'partition': 'Common', 'fullPath': f'/Common/{name}',
                'address': self.address(member)[0], 'monitor': 'default', 'ratio': 1,
                'session': 'monitor-enabled' if admin == 'enabled' else 'user-disabled',
                'state': 'user-down' if admin == 'disabled' else ('up' if self.health_up(member) else 'down')}

    def answer(self, method: str, path: str, query: dict[str, str], headers: t.Mapping[str, str], body: t.Any) -> t.Any:
        if path == '/mgmt/shared/authn/login' and method == 'POST':
            if (body or {}).get('username') != USERNAME or body.get('password') != PASSWORD:
                raise Refused(401, {'code': 401, 'message': 'Authentication failed.', 'errorStack': [], 'apiError': 1})
            token = secrets.token_hex(13).upper()
            self.tokens.add(token)
            token_info = {'token': token, 'name': token, 'userName': USERNAME, 'timeout': 1200}
            return {'username': USERNAME, 'loginProviderName': 'tmos', 'token': token_info}
        if headers.get('X-F5-Auth-Token') not in self.tokens:
            raise Refused(401, {'code': 401, 'message': 'X-F5-Auth-Token does not exist.', 'errorStack': []})
        parts = path[len(self.POOL_PREFIX):].split('/') if path.startswith(self.POOL_PREFIX) else []
        if len(parts) < 2 or parts[1] != 'members' or not parts[0].startswith('~Common~'):
            raise Refused(404, {'code': 404, 'message': f'Public URI path not registered: {path}', 'errorStack': []})
        members = self.members(parts[0][len('~Common~'):])
        if len(parts) == 2 and method == 'GET':
            return {'kind': 'tm:ltm:pool:members:memberscollectionstate', 'items': [self.item(m) for m in members]}
        member = next((m for m in members if f'~Common~{self.member_name(m)}' == parts[2]), None)
        if member is None:
            raise Refused(404, self.not_found(parts[2].replace('~', '/')))
        if len(parts) == 3 and method == 'GET':
            return self.item(member)
        if len(parts) == 4 and parts[3] == 'stats' and method == 'GET':
            link = f'https://localhost{path[:-len("/stats")]}/{parts[2]}/stats'
            return {'kind': 'tm:ltm:pool:members:membersstats', 'entries': {link: {'nestedStats': {'entries': {
                'addr': {'description': self.address(member)[0]},
                'serverside.curConns': {'value': member['sessions']},
                'status.availabilityState': {'description': 'available' if self.health_up(member) else 'offline'},
                'status.enabledState': {'description': 'enabled' if member['admin_state'] == 'enabled' else 'disabled'}}}}}}
        if len(parts) == 3 and method == 'PATCH':
            current = self.item(member)
            session, state = (body or {}).get('session', current['session']), (body or {}).get('state', current['state'])
            if session not in ('user-enabled', 'user-disabled', 'monitor-enabled') or state not in ('user-up', 'user-down', 'up', 'down'):
                raise Refused(400, {'code': 400, 'message': f'invalid property value "session":"{session}" "state":"{state}"', 'errorStack': []})
            self.set_admin(member, 'disabled' if state == 'user-down' else ('drain' if session == 'user-disabled' else 'enabled'))
            return self.item(self.members()[[m['name'] for m in self.members()].index(member['name'])])
        raise Refused(405, {'code': 405, 'message': f'{method} not allowed on {path}', 'errorStack': []})


# --- NetScaler / ADC (NITRO) --------------------------------------------------------------------------

class NetScalerDouble(Device):
    preset = 'netscaler'

    def member_name(self, member: t.Mapping[str, t.Any]) -> str:
        return f"{member['name']}:{self.address(member)[1]}"

    def not_found(self, what: str) -> t.Any:
        return {'errorcode': 258, 'message': f'No such resource [servicegroupName, {what}]', 'severity': 'ERROR'}

    @staticmethod
    def svrstate(member: t.Mapping[str, t.Any]) -> str:
        admin = member['admin_state']
        if admin == 'drain':
            return 'GOING OUT OF SERVICE' if member['sessions'] else 'OUT OF SERVICE'
        if admin == 'disabled':
            return 'OUT OF SERVICE'
        return 'UP' if Device.health_up(member) else 'DOWN'

    def binding(self, member: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        host, port = self.address(member)
        return {'servicegroupname': member['vip'], 'ip': host, 'port': port, 'servername': member['name'], 'weight': '1',
                'svrstate': self.svrstate(member), 'state': 'ENABLED' if member['admin_state'] == 'enabled' else 'DISABLED'}

    def _find(self, group: str, servername: t.Any, port: t.Any) -> dict[str, t.Any]:
        for member in self.members(group):
            if member['name'] == servername and self.address(member)[1] == int(port):
                return member
        raise Refused(404, {'errorcode': 258, 'message': f'No such resource [serverName, {servername}]', 'severity': 'ERROR'})

    def answer(self, method: str, path: str, query: dict[str, str], headers: t.Mapping[str, str], body: t.Any) -> t.Any:
        done = {'errorcode': 0, 'message': 'Done', 'severity': 'NONE'}
        if path == '/nitro/v1/config/login' and method == 'POST':
            login = (body or {}).get('login', {})
            if login.get('username') != USERNAME or login.get('password') != PASSWORD:
                raise Refused(401, {'errorcode': 354, 'message': 'Invalid username or password', 'severity': 'ERROR'})
            token = secrets.token_hex(16)
            self.tokens.add(token)
            return dict(done, sessionid=token)
        cookie = dict(part.strip().partition('=')[::2] for part in (headers.get('Cookie') or '').split(';') if part.strip())
        by_headers = headers.get('X-NITRO-USER') == USERNAME and headers.get('X-NITRO-PASS') == PASSWORD
        if cookie.get('NITRO_AUTH_TOKEN') not in self.tokens and not by_headers:
            raise Refused(401, {'errorcode': 444, 'message': 'Session expired or killed. Please login again', 'severity': 'ERROR'})
        prefix = '/nitro/v1/config/servicegroup_servicegroupmember_binding/'
        if path.startswith(prefix) and method == 'GET':
            return dict(done, servicegroup_servicegroupmember_binding=[self.binding(m) for m in self.members(path[len(prefix):])])
        if path == '/nitro/v1/config/servicegroup' and method == 'POST' and query.get('action') in ('enable', 'disable'):
            target = (body or {}).get('servicegroup', {})
            member = self._find(target.get('servicegroupname'), target.get('servername'), target.get('port'))
            graceful = str(target.get('graceful', 'NO')).upper() == 'YES'
            self.set_admin(member, 'enabled' if query['action'] == 'enable' else ('drain' if graceful else 'disabled'))
            return done
        if path == '/nitro/v1/stat/servicegroupmember' and method == 'GET':
            args = dict(pair.partition(':')[::2] for pair in query.get('args', '').split(','))
            member = self._find(args.get('servicegroupname'), args.get('servername'), args.get('port', 0))
            host, port = self.address(member)
            return dict(done, servicegroupmember=[{'primaryipaddress': host, 'primaryport': port, 'svrstate': self.svrstate(member),
                                                   'curclntconnections': str(member['sessions']), 'totalrequests': '0'}])
        raise Refused(404, {'errorcode': 1092, 'message': f'Invalid resource or action {path}', 'severity': 'ERROR'})


# --- HAProxy Data Plane API ----------------------------------------------------------------------------

class DataPlaneDouble(Device):
    preset = 'haproxy_dataplane'
    ADMIN = {'enabled': 'ready', 'drain': 'drain', 'disabled': 'maint'}

    def __init__(self, *args: t.Any, version: str = 'v3', **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.version = version
        self.base_path = f'/{version}'

    def server(self, member: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        host, port = self.address(member)
        return {'name': member['name'], 'address': host, 'port': port, 'id': str(member['name'][3:] or 1),
                'admin_state': self.ADMIN[member['admin_state']], 'operational_state': 'up' if self.health_up(member) else 'down'}

    def answer(self, method: str, path: str, query: dict[str, str], headers: t.Mapping[str, str], body: t.Any) -> t.Any:
        if not self.basic_auth_ok(headers):
            raise Refused(401, {'code': 401, 'message': 'invalid username/password'})
        parts = path.strip('/').split('/')
        if parts[:1] != [self.version]:
            raise Refused(404, {'code': 404, 'message': f'path {path} was not found'})
        rest = parts[1:]
        if rest == ['services', 'haproxy', 'stats', 'native'] and method == 'GET':
            member = self._server(query.get('parent', ''), query.get('name', ''))
            rows = [{'type': 'server', 'name': member['name'], 'backend_name': member['vip'],
                     'stats': {'scur': member['sessions'], 'status': 'UP' if self.health_up(member) else 'DOWN'}}]
            runtime = {'runtimeAPI': '/run/haproxy/admin.sock', 'stats': rows}
            return [runtime] if self.version == 'v2' else runtime
        if self.version == 'v2' and rest[:4] == ['services', 'haproxy', 'runtime', 'servers']:
            backend, server = query.get('backend', ''), (rest[4] if len(rest) > 4 else None)
        elif self.version == 'v3' and rest[:4] == ['services', 'haproxy', 'runtime', 'backends'] and len(rest) >= 6 and rest[5] == 'servers':
            backend, server = rest[4], (rest[6] if len(rest) > 6 else None)
        else:
            raise Refused(404, {'code': 404, 'message': f'path {path} was not found'})
        if server is None and method == 'GET':
            return [self.server(m) for m in self.members(backend)]
        member = self._server(backend, server or '')
        if method == 'GET':
            return self.server(member)
        if method == 'PUT':
            wanted = {v: k for k, v in self.ADMIN.items()}.get((body or {}).get('admin_state'))
            if wanted is None:
                raise Refused(422, {'code': 422, 'message': f"admin_state: must be one of ready, maint, drain, got {(body or {}).get('admin_state')!r}"})
            self.set_admin(member, wanted)
            return self.server(self._server(backend, member['name']))
        raise Refused(405, {'code': 405, 'message': f'{method} not allowed'})

    def _server(self, backend: str, name: str) -> dict[str, t.Any]:
        try:
            members = self.members(backend)
        except Refused:
            raise Refused(404, {'code': 404, 'message': f'backend {backend} not found'}) from None
        member = next((m for m in members if m['name'] == name), None)
        if member is None:
            raise Refused(404, {'code': 404, 'message': f'server {name} not found in backend {backend}'})
        return member


# --- NGINX Plus API ----------------------------------------------------------------------------------

class NginxPlusDouble(Device):
    preset = 'nginx_plus'
    base_path = '/api/9'

    def __init__(self, *args: t.Any, stream: bool = False, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = stream

    def pool(self) -> str:
        return f'stream/{self.vip}' if self.stream else self.vip

    def member_name(self, member: t.Mapping[str, t.Any]) -> str:
        return member['address']

    @staticmethod
    def state(member: t.Mapping[str, t.Any]) -> str:
        return {'drain': 'draining', 'disabled': 'down'}.get(member['admin_state']) or ('up' if Device.health_up(member) else 'unhealthy')

    def peer(self, number: int, member: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        return {'id': number, 'server': member['address'], 'name': member['address'], 'backup': False, 'weight': 1,
                'state': self.state(member), 'active': member['sessions'], 'health_checks': {'checks': len(member.get('checks', []))}}

    @staticmethod
    def error(status: int, text: str, code: str) -> Refused:
        return Refused(status, {'error': {'status': status, 'text': text, 'code': code}, 'request_id': secrets.token_hex(16),
                                'href': 'https://nginx.org/en/docs/http/ngx_http_api_module.html'})

    def answer(self, method: str, path: str, query: dict[str, str], headers: t.Mapping[str, str], body: t.Any) -> t.Any:
        if not self.basic_auth_ok(headers):
            raise Refused(401, {'error': {'status': 401, 'text': 'authorization required'}})  # nginx's auth_basic
        parts = path.strip('/').split('/')
        if parts[:2] != ['api', '9'] or len(parts) < 5 or parts[3] != 'upstreams' or parts[2] not in ('http', 'stream'):
            raise self.error(404, 'path not found', 'PathNotFound')
        try:
            members = self.members(parts[4])
        except Refused:
            raise self.error(404, 'upstream not found', 'UpstreamNotFound') from None
        if len(parts) == 5 and method == 'GET':
            return {'peers': [self.peer(n, m) for n, m in enumerate(members)], 'keepalive': 0, 'zombies': 0, 'zone': parts[4]}
        if len(parts) == 7 and parts[5] == 'servers' and method == 'PATCH':
            if not parts[6].isdigit() or int(parts[6]) >= len(members):
                raise self.error(404, 'server not found', 'UpstreamServerNotFound')
            member, body = members[int(parts[6])], body or {}
            unknown = [key for key in body if key not in ('down', 'weight') + (('drain',) if parts[2] == 'http' else ())]
            if unknown:
                raise self.error(400, f'unknown parameter "{unknown[0]}"', 'UpstreamConfFormatError')
            if body.get('drain') is True:
                self.set_admin(member, 'drain')
            elif 'down' in body:
                self.set_admin(member, 'disabled' if body['down'] else 'enabled')
            return {'id': int(parts[6]), 'server': member['address'], 'weight': 1, 'down': bool(body.get('down'))}
        raise self.error(405, 'method not supported', 'MethodNotSupported')


# --- A10 aXAPI v3 ------------------------------------------------------------------------------------

class A10Double(Device):
    preset = 'a10'
    GROUP = '/axapi/v3/slb/service-group/'

    def member_name(self, member: t.Mapping[str, t.Any]) -> str:
        return f"{member['name']}:{self.address(member)[1]}"

    def oper(self, member: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        return {'name': member['name'], 'port': self.address(member)[1],
                'oper': {'state': 'DISABLED' if member['admin_state'] != 'enabled' else ('UP' if self.health_up(member) else 'DOWN')}}

    def config(self, member: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        return {'member': {'name': member['name'], 'port': self.address(member)[1],
                           'member-state': 'enable' if member['admin_state'] == 'enabled' else 'disable'}}

    def answer(self, method: str, path: str, query: dict[str, str], headers: t.Mapping[str, str], body: t.Any) -> t.Any:
        if path == '/axapi/v3/auth' and method == 'POST':
            credentials = (body or {}).get('credentials', {})
            if credentials.get('username') != USERNAME or credentials.get('password') != PASSWORD:
                raise Refused(401, {'authorizationschema': {'code': 401, 'error': 'Invalid username or password'}})
            signature = secrets.token_hex(16)
            self.tokens.add(signature)
            return {'authresponse': {'signature': signature, 'description': 'the signature should be set in Authorization header'}}
        scheme, _sep, signature = (headers.get('Authorization') or '').partition(' ')
        if scheme != 'A10' or signature not in self.tokens:
            raise Refused(401, {'authorizationschema': {'code': 401, 'error': 'Invalid session ID or signature'}})
        parts = path[len(self.GROUP):].split('/') if path.startswith(self.GROUP) else []
        if not parts:
            raise Refused(404, {'response': {'status': 'fail', 'err': {'code': 1023460352, 'msg': 'Object specified does not exist'}}})
        members = self.members(parts[0])
        if parts[1:] == ['oper'] and method == 'GET':
            return {'service-group': {'name': parts[0], 'protocol': 'tcp', 'oper': {'state': 'All Up'},
                                      'member-list': [self.oper(m) for m in members]}}
        if len(parts) >= 3 and parts[1] == 'member':
            name, _sep, port = parts[2].partition('+')
            member = next((m for m in members if m['name'] == name and str(self.address(m)[1]) == port), None)
            if member is None:
                raise Refused(404, {'response': {'status': 'fail', 'err': {'code': 1023460352, 'msg': 'Object specified does not exist'}}})
            if len(parts) == 3 and method == 'GET':
                return self.config(member)
            if len(parts) == 3 and method in ('POST', 'PUT'):
                state = ((body or {}).get('member') or {}).get('member-state')
                if state not in ('enable', 'disable', 'disable-with-health-check'):
                    raise Refused(400, {'response': {'status': 'fail', 'err': {'code': 1023, 'msg': f'Invalid member-state {state!r}'}}})
                self.set_admin(member, 'enabled' if state == 'enable' else 'disabled')
                return self.config(self._again(member))
            if parts[3:] == ['stats'] and method == 'GET':
                return {'member': {'name': name, 'port': int(port), 'stats': {'curr_conn': member['sessions'], 'total_conn': 0}}}
        raise Refused(404, {'response': {'status': 'fail', 'err': {'code': 1023460352, 'msg': 'Object specified does not exist'}}})

    def _again(self, member: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        return next(m for m in self.members(member['vip']) if m['name'] == member['name'])


# --- Radware Alteon REST ------------------------------------------------------------------------------

class AlteonDouble(Device):
    preset = 'alteon'

    def answer(self, method: str, path: str, query: dict[str, str], headers: t.Mapping[str, str], body: t.Any) -> t.Any:
        if not self.basic_auth_ok(headers):
            raise Refused(401, {'status': 'err', 'message': 'Authentication failed'})
        if method != 'GET':
            raise Refused(405, {'status': 'err', 'message': f'{method} not allowed here'})
        members = self.members()
        if path == '/config/SlbEnhGroupRealServersTable':
            return {'SlbEnhGroupRealServersTable': [{'RealServerGroupIndex': self.vip, 'Index': m['name']} for m in members]}
        if path == '/config/SlbEnhRealServerInfoTable':
            return {'SlbEnhRealServerInfoTable': [{'Index': m['name'], 'IpAddr': self.address(m)[0], 'HealthLayer': 4,
                                                   'State': 4 if m['admin_state'] != 'enabled' else (2 if self.health_up(m) else 3)}
                                                  for m in members]}
        if path.startswith('/config/SlbStatEnhRServerTable/'):
            index = urllib.parse.unquote(path.rpartition('/')[2])
            found = [m for m in members if m['name'] == index]
            if not found:
                raise Refused(404, {'status': 'err', 'message': f'Index {index} does not exist'})
            return {'SlbStatEnhRServerTable': [{'Index': index, 'CurrSessions': found[0]['sessions'], 'TotalSessions': 0}]}
        raise Refused(404, {'status': 'err', 'message': f'{path}: no such table'})


# --- Kemp LoadMaster API v2 ---------------------------------------------------------------------------

class KempDouble(Device):
    preset = 'kemp'

    def pool(self) -> str:
        return self.vip_state()['listen']

    def member_name(self, member: t.Mapping[str, t.Any]) -> str:
        return member['address']

    def answer(self, method: str, path: str, query: dict[str, str], headers: t.Mapping[str, str], body: t.Any) -> t.Any:
        body = body or {}
        if path != '/accessv2' or method != 'POST':
            raise Refused(404, {'code': 404, 'message': 'Unknown command', 'status': 'fail'})
        if body.get('apiuser') != USERNAME or body.get('apipass') != PASSWORD:
            raise Refused(401, {'code': 401, 'message': 'Authorization failure', 'status': 'fail'})
        if f"{body.get('vs')}:{body.get('port')}" != self.pool() or body.get('prot') != 'tcp':
            raise Refused(422, {'code': 422, 'message': 'Unknown VS', 'status': 'fail'})
        members = self.members()
        ok = {'code': 200, 'message': 'Command completed ok', 'status': 'ok'}
        if body.get('cmd') == 'showvs':
            rs = [{'RsIndex': n, 'VSIndex': 1, 'Addr': self.address(m)[0], 'Port': self.address(m)[1], 'Forward': 'route', 'Weight': 1000,
                   'Enable': m['admin_state'] == 'enabled',
                   'Status': 'Disabled' if m['admin_state'] != 'enabled' else ('Up' if self.health_up(m) else 'Down')}
                  for n, m in enumerate(members, 1)]
            return dict(ok, VSAddress=body['vs'], VSPort=body['port'], Protocol='tcp', Index=1, Status='Up', Rs=rs)
        if body.get('cmd') == 'modrs':
            member = next((m for m in members if self.address(m) == (body.get('rs'), int(body.get('rsport') or 0))), None)
            if member is None or body.get('enable') not in ('y', 'n'):
                raise Refused(422, {'code': 422, 'message': 'Unknown RS or bad enable value', 'status': 'fail'})
            self.set_admin(member, 'enabled' if body['enable'] == 'y' else 'disabled')
            return ok
        raise Refused(400, {'code': 400, 'message': f"Unknown command {body.get('cmd')!r}", 'status': 'fail'})


# --- Envoy admin ---------------------------------------------------------------------------------------

class EnvoyDouble(Device):
    preset = 'envoy'

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        kwargs['credentials'] = False  # Envoy's admin interface has no login; it must listen where only the L4 host reaches it
        super().__init__(*args, **kwargs)

    def member_name(self, member: t.Mapping[str, t.Any]) -> str:
        return member['address']

    def host(self, member: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        host, port = self.address(member)
        health: dict[str, t.Any] = {'eds_health_status': 'HEALTHY'}
        if not self.health_up(member):
            health['failed_active_health_check'] = True
        return {'address': {'socket_address': {'address': host, 'port_value': port}}, 'weight': 1,
                'stats': [{'name': 'cx_active', 'type': 'GAUGE', 'value': str(member['sessions'])}, {'name': 'rq_total', 'value': '0'}],
                'health_status': health}

    def answer(self, method: str, path: str, query: dict[str, str], headers: t.Mapping[str, str], body: t.Any) -> t.Any:
        if path != '/clusters' or query.get('format') != 'json' or method != 'GET':
            raise Refused(404, {'error': f'invalid path: {path}'})
        return {'cluster_statuses': [{'name': self.vip, 'added_via_api': False, 'host_statuses': [self.host(m) for m in self.members()]}]}


DEVICES: dict[str, type[Device]] = {
    cls.preset: cls for cls in (BigIpDouble, NetScalerDouble, DataPlaneDouble, NginxPlusDouble, A10Double, AlteonDouble, KempDouble, EnvoyDouble)}


# --- IPVS: a stand-in ipvsadm -----------------------------------------------------------------------

IPVSADM = '''#!{python}
"""A stand-in ipvsadm over the emulator's VIP {vip!r}: keepalived's view of it (a failing member is out of the table)."""
import json, pathlib, sys, urllib.request
CONTROL, VIP, WEIGHTS = {control!r}, {vip!r}, pathlib.Path({weights!r})

def api(path, method='GET', body=None):
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(CONTROL + path, data=data, method=method), timeout=5) as answer:
        return json.load(answer)

def fail(message):
    sys.stderr.write(message + '\\n')
    sys.exit(1)

weights = json.loads(WEIGHTS.read_text()) if WEIGHTS.exists() else {{}}
vip = api('/api/vips/' + VIP)
listed = {{m['address']: m for m in vip['members'] if m['admin_state'] != 'disabled' and m['state'] in ('up', 'suspect')}}
args = sys.argv[1:]
option = lambda flag: args[args.index(flag) + 1] if flag in args else None
if args[0] != '-Ln' and option('-t') != vip['listen']:
    fail('Service not defined' if args[0] != '-Ln' else 'No such service')
if args[0] == '-Ln':
    print('IP Virtual Server version 1.2.1 (size=4096)')
    print('Prot LocalAddress:Port Scheduler Flags')
    print('  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn')
    print('TCP  ' + vip['listen'] + ' wlc')
    for address, m in listed.items():
        weight = 0 if m['admin_state'] == 'drain' else weights.get(address, 1)
        print('  -> %-28s %-7s %-6d %-10d %d' % (address, 'Route', weight, m['sessions'], 0))
    sys.exit(0)
member = next((m for m in vip['members'] if m['address'] == option('-r')), None)
if member is None:
    fail('No such destination')
admin = lambda state: api('/api/vips/%s/members/%s/admin' % (VIP, member['name']), 'PUT', {{'state': state}})
if args[0] == '-d':
    if member['address'] not in listed:
        fail('No such destination')
    admin('disabled')
elif args[0] in ('-e', '-a'):
    if (args[0] == '-a') == (member['address'] in listed):
        fail('Destination already exists' if args[0] == '-a' else 'No such destination')
    weight = int(option('-w') or 1)
    if weight:
        weights[member['address']] = weight
    WEIGHTS.write_text(json.dumps(weights))
    admin('enabled' if weight else 'drain')
else:
    fail('unsupported: ' + ' '.join(args))
'''


def write_ipvsadm(directory: t.Any, control_url: str, vip: str) -> str:
    """An executable stand-in ``ipvsadm`` in ``directory`` that reads and changes the emulator's VIP; returns its path."""
    path = pathlib.Path(directory) / 'ipvsadm'
    path.write_text(IPVSADM.format(python=sys.executable, control=control_url.rstrip('/'), vip=vip, weights=str(path.with_suffix('.weights'))),
                    encoding='utf-8')
    path.chmod(0o755)
    return str(path)
