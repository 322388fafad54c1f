from __future__ import annotations

import asyncio
import os
import pathlib
import re
import select
import signal
import subprocess
import sys
import time
import typing as t
import urllib.request

import pytest

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import RealServer, docroot_file, parse_head, BadRequest

HOST = '127.0.0.31'
CLI_HOST = '127.0.0.32'
MODULE = 'ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver'
COMBINED = re.compile(
    r'^(?P<addr>127\.\d+\.\d+\.\d+) - - \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$'
)
from ansible_collections.l4vip.rollout.tests.harness import embedded_server
from ansible_collections.l4vip.rollout.tests.harness.embedded_server import run


def serving(docroot: pathlib.Path, name: str = 'web1', **options: t.Any) -> t.AsyncContextManager[RealServer]:
    return embedded_server.serving(docroot, name, HOST, **options)


class Client:
    """A raw HTTP client on one connection, so that tests see exactly what goes over it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: RealServer) -> Client:
        return cls(*await asyncio.open_connection(server.host, server.port))

    def send(self, path: str, method: str = 'GET', version: str = 'HTTP/1.1', headers: dict[str, str] | None = None) -> None:
        lines = [f'{method} {path} {version}', 'Host: test'] + [f'{name}: {value}' for name, value in (headers or {}).items()]
        self.writer.write(('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1'))

    async def read_head(self) -> tuple[int, dict[str, str]]:
        head = await asyncio.wait_for(self.reader.readuntil(b'\r\n\r\n'), 2.0)
        lines = head.decode('latin-1').split('\r\n')[:-2]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(':')
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split(' ')[1]), headers

    async def response(self, method: str = 'GET') -> tuple[int, dict[str, str], bytes]:
        status, headers = await self.read_head()
        length = 0 if method == 'HEAD' else int(headers['content-length'])
        body = await asyncio.wait_for(self.reader.readexactly(length), 2.0)
        return status, headers, body

    async def get(self, path: str, **options: t.Any) -> tuple[int, dict[str, str], bytes]:
        self.send(path, **options)
        return await self.response(options.get('method', 'GET'))

    async def closed_by_server(self, timeout: float = 1.0) -> bool:
        """True when the server closed with FIN: EOF and nothing else (an RST raises ConnectionResetError)."""
        return await asyncio.wait_for(self.reader.read(), timeout) == b''

    def close(self) -> None:
        self.writer.close()


def test_serves_several_requests_on_one_keepalive_connection(docroot):
    async def scenario():
        async with serving(docroot) as server:
            assert server.port != 0 and server.address == f'{HOST}:{server.port}'
            client = await Client.connect(server)
            answers = [await client.get('/') for i in range(5)]
            assert server.open_connections == 1
            head_status, head_headers, head_body = await client.get('/', method='HEAD')
            client.close()
            return answers, (head_status, head_headers, head_body)

    answers, head = run(scenario())
    for status, headers, body in answers:
        assert status == 200
        assert body == b'server=web1 version=1.0\n'
        assert headers['x-served-by'] == 'web1'
        assert headers['content-length'] == str(len(body))
        assert headers['content-type'] == 'text/plain'
        assert headers['connection'] == 'keep-alive'
    assert head[0] == 200 and head[2] == b'' and head[1]['content-length'] == str(len(answers[0][2]))


def test_health_check_follows_the_file(docroot):
    health = docroot / 'health_check.html'

    async def scenario():
        async with serving(docroot) as server:
            client = await Client.connect(server)
            seen = [await client.get('/health_check.html')]
            health.rename(docroot / 'health_check.html.disabled')
            seen.append(await client.get('/health_check.html'))
            (docroot / 'health_check.html.disabled').rename(health)
            seen.append(await client.get('/health_check.html?from=l4'))  # query strings do not change the file
            client.close()
            return seen

    (up, down, up_again) = run(scenario())
    assert (up[0], up[2], up[1]['content-type']) == (200, b'OK\n', 'text/html')
    assert down[0] == 404 and down[1]['x-served-by'] == 'web1'
    assert up_again[0] == 200 and up_again[2] == b'OK\n'


def test_version_is_read_at_each_request(docroot):
    async def scenario():
        async with serving(docroot, name='web7') as server:
            client = await Client.connect(server)
            bodies = [(await client.get('/'))[2]]
            (docroot / 'VERSION').write_text('2.0\n')
            bodies.append((await client.get('/'))[2])
            (docroot / 'VERSION').unlink()
            bodies.append((await client.get('/'))[2])
            client.close()
            return bodies

    assert run(scenario()) == [b'server=web7 version=1.0\n', b'server=web7 version=2.0\n', b'server=web7 version=unknown\n']


@pytest.mark.parametrize(
    ('version', 'headers', 'stays_open'),
    [
        ('HTTP/1.1', {}, True),
        ('HTTP/1.1', {'Connection': 'close'}, False),
        ('HTTP/1.0', {}, False),
        ('HTTP/1.0', {'Connection': 'keep-alive'}, True),
    ],
)
def test_connection_persistence_follows_http_rules(docroot, version, headers, stays_open):
    async def scenario():
        async with serving(docroot) as server:
            client = await Client.connect(server)
            status, response_headers, body = await client.get('/', version=version, headers=headers)
            if stays_open:
                second = await client.get('/', version=version, headers=headers)
                closed = False
            else:
                second = None
                closed = await client.closed_by_server()
            client.close()
            return status, response_headers['connection'], second, closed

    status, connection, second, closed = run(scenario())
    assert status == 200
    assert connection == ('keep-alive' if stays_open else 'close')
    assert closed is not stays_open
    assert (second is not None and second[0] == 200) is stays_open


@pytest.mark.parametrize('raw', [b'NONSENSE\r\n\r\n', b'GET / HTTP/2.0\r\n\r\n', b'GET / HTTP/1.1\r\nno colon here\r\n\r\n'])
def test_bad_request_gets_400_and_a_close(docroot, raw):
    async def scenario():
        async with serving(docroot) as server:
            client = await Client.connect(server)
            client.writer.write(raw)
            status, headers, body = await client.response()
            closed = await client.closed_by_server()
            client.close()
            return status, headers, closed

    status, headers, closed = run(scenario())
    assert status == 400 and headers['connection'] == 'close' and headers['x-served-by'] == 'web1'
    assert closed


@pytest.mark.parametrize('path', ['/../secret.txt', '/%2e%2e/secret.txt', '/sub/../../secret.txt', '/..%2fsecret.txt'])
def test_docroot_escape_is_refused(docroot, path):
    (docroot.parent / 'secret.txt').write_text('top secret\n')
    (docroot / 'sub').mkdir()

    async def scenario():
        async with serving(docroot) as server:
            client = await Client.connect(server)
            answer = await client.get(path)
            client.close()
            return answer

    status, headers, body = run(scenario())
    assert status == 400
    assert b'secret' not in body


def test_docroot_mapping_stays_inside():
    assert docroot_file('/srv/www', '/a/./b.html') == '/srv/www/a/b.html'
    assert docroot_file('/srv/www', '/a%20b.html') == '/srv/www/a b.html'
    for path in ('/..', '/a/../../etc/passwd', '/%2E%2E/x', '/a%00b'):
        with pytest.raises(BadRequest):
            docroot_file('/srv/www', path)


def test_parse_head_reads_request_line_and_headers():
    request = parse_head(b'GET /x?y=1 HTTP/1.0\r\nUser-Agent: a b\r\nConnection: Keep-Alive')
    assert (request.method, request.path, request.query, request.version) == ('GET', '/x', {'y': ['1']}, 'HTTP/1.0')
    assert request.headers['user-agent'] == 'a b' and request.keep_alive


def test_graceful_stop_fins_idle_connections_and_finishes_requests_in_flight(docroot):
    async def scenario():
        loop = asyncio.get_running_loop()
        async with serving(docroot) as server:
            idle = await Client.connect(server)
            await idle.get('/')
            busy = await Client.connect(server)
            busy.send('/slow?seconds=0.6')
            status, headers = await busy.read_head()  # the head comes at once, the body slowly
            begun = loop.time()
            stopping = asyncio.ensure_future(server.stop(graceful=True, timeout=5.0))
            idle_fin = await idle.closed_by_server(timeout=1.0)
            idle_closed_after = loop.time() - begun
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(server.host, server.port)
            body = await asyncio.wait_for(busy.reader.readexactly(int(headers['content-length'])), 2.0)
            busy_fin = await busy.closed_by_server(timeout=1.0)
            await stopping
            stopped_after = loop.time() - begun
            left = server.open_connections
            idle.close()
            busy.close()
            return status, idle_fin, idle_closed_after, body, busy_fin, stopped_after, left

    status, idle_fin, idle_closed_after, body, busy_fin, stopped_after, left = run(scenario())
    assert idle_fin and idle_closed_after < 0.5
    assert status == 200 and body.endswith(b'\n') and len(body) == 6
    assert busy_fin
    assert 0.4 < stopped_after < 3.0  # it waited for the slow response, not for the 5 s bound
    assert left == 0


@pytest.mark.parametrize('graceful', [True, False])
def test_stop_bound_closes_what_is_still_busy(docroot, graceful):
    async def scenario():
        loop = asyncio.get_running_loop()
        async with serving(docroot) as server:
            busy = await Client.connect(server)
            busy.send('/slow?seconds=5')
            status, headers = await busy.read_head()
            begun = loop.time()
            await server.stop(graceful=graceful, timeout=0.3)
            took = loop.time() - begun
            with pytest.raises(asyncio.IncompleteReadError):
                await asyncio.wait_for(busy.reader.readexactly(int(headers['content-length'])), 1.0)
            busy.close()
            return took

    took = run(scenario())
    assert took < 2.0
    if graceful:
        assert took >= 0.3


def test_keepalive_timeout_closes_idle_connections(docroot):
    async def scenario():
        loop = asyncio.get_running_loop()
        async with serving(docroot, keepalive_timeout=0.2) as server:
            client = await Client.connect(server)
            await client.get('/')
            begun = loop.time()
            fin = await client.closed_by_server(timeout=2.0)
            client.close()
            return fin, loop.time() - begun

    fin, waited = run(scenario())
    assert fin and 0.1 < waited < 1.5


def test_access_log_is_combined_format(docroot, tmp_path):
    log = tmp_path / 'access.log'

    async def scenario():
        async with serving(docroot, access_log=str(log)) as server:
            client = await Client.connect(server)
            await client.get('/', headers={'User-Agent': 'probe/1.0', 'Referer': 'http://vip.example/'})
            await client.get('/missing.html')
            await client.get('/health_check.html', method='HEAD', headers={'User-Agent': 'say "hi"'})
            lines_while_running = log.read_text().splitlines()  # flushed per line, readable at once
            client.close()
            return lines_while_running

    lines = run(scenario())
    assert len(lines) == 3
    matches = [COMBINED.match(line) for line in lines]
    assert all(matches), lines
    first, missing, head = (match.groupdict() for match in matches if match)
    assert first['addr'].startswith('127.')
    assert (first['request'], first['status'], first['bytes']) == ('GET / HTTP/1.1', '200', str(len('server=web1 version=1.0\n')))
    assert (first['referer'], first['agent']) == ('http://vip.example/', 'probe/1.0')
    assert (missing['status'], missing['referer'], missing['agent']) == ('404', '-', '-')
    assert (head['request'], head['bytes'], head['agent']) == ('HEAD /health_check.html HTTP/1.1', '0', 'say \\x22hi\\x22')
    logged = time.mktime(time.strptime(first['time'][:20], '%d/%b/%Y:%H:%M:%S'))
    assert abs(logged - time.time()) < 3600 * 24  # a real timestamp, in the local calendar


@pytest.fixture
def cli(docroot, tmp_path):
    """The command line server as a child process; killed and reaped whatever the test did."""
    pidfile = tmp_path / 'web9.pid'
    env = dict(os.environ, PYTHONPATH=os.environ['ANSIBLE_COLLECTIONS_PATH'])
    argv = [sys.executable, '-m', MODULE, '--name', 'web9', '--listen', f'{CLI_HOST}:0', '--docroot', str(docroot),
            '--pidfile', str(pidfile), '--access-log', str(tmp_path / 'access.log')]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc, pidfile
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGQUIT, signal.SIGINT])
def test_cli_serves_and_exits_cleanly_on_signal(cli, signum):
    proc, pidfile = cli
    ready, unused_w, unused_x = select.select([proc.stdout], [], [], 10)
    assert ready, 'the server did not say it was listening'
    line = proc.stdout.readline().strip()
    match = re.fullmatch(rf'listening on {re.escape(CLI_HOST)}:(\d+)', line)
    assert match, line
    assert pidfile.read_text().strip() == str(proc.pid)
    with urllib.request.urlopen(f'http://{CLI_HOST}:{match.group(1)}/', timeout=5) as answer:
        assert answer.status == 200
        assert answer.headers['X-Served-By'] == 'web9'
        assert answer.read() == b'server=web9 version=1.0\n'
    proc.send_signal(signum)
    assert proc.wait(timeout=10) == 0, proc.stderr.read()
    assert not pidfile.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)  # exited and reaped: nothing left running
