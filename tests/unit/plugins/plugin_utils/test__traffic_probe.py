"""The traffic generator as a probe of a real VIP: URLs, https verified by default, a Host header,
chunked answers, and a run that ends with the process that started it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import ssl
import subprocess
import sys
import time
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._http_client import CAUSE_TLS, target_from_url, tls_context
from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic import Traffic, WHILE_PID_POLL

TLS_HOST = '127.0.0.41'
NAME = 'vip.l4vip.test'
MODULE = 'ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._traffic'


@pytest.fixture(scope='module')
def certificate(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate for NAME: the probe's own authority in these tests."""
    where = tmp_path_factory.mktemp('tls')
    cert, key = where / 'cert.pem', where / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', f'/CN={NAME}',
                    '-addext', f'subjectAltName=DNS:{NAME}', '-keyout', str(key), '-out', str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@contextlib.asynccontextmanager
async def chunked_https(certificate: tuple[pathlib.Path, pathlib.Path], hosts_seen: list[str]) -> t.AsyncIterator[int]:
    """An https server that answers every request 200 with a chunked body, keeping the connection unless asked not to."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b'\r\n\r\n')).decode('latin-1')
                hosts_seen.append(next(line.split(':', 1)[1].strip() for line in head.split('\r\n') if line.lower().startswith('host:')))
                writer.write(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Served-By: tls1\r\n\r\n'
                             b'8\r\nversion=\r\n2;ext=1\r\n7\n\r\n0\r\n\r\n')
                await writer.drain()
                if 'connection: close' in head.lower():
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, TLS_HOST, 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def probe(certificate, host_header: str | None, context: ssl.SSLContext, seconds: float = 0.6) -> tuple[t.Any, list[str], str]:
    hosts_seen: list[str] = []

    async def scenario():
        async with chunked_https(certificate, hosts_seen) as port:
            url = f'https://{TLS_HOST}:{port}/health'
            traffic = Traffic(None, None, keepalive_clients=2, new_connection_rate=10, request_interval=0.05, timeout=1.0,
                              targets=[target_from_url(url, host_header, context)], source='probe')
            await traffic.start()
            await asyncio.sleep(seconds)
            return await traffic.stop(), url

    summary, url = asyncio.run(asyncio.wait_for(scenario(), 15))
    return summary, hosts_seen, url


def test_https_verified_against_its_authority_with_the_host_header_and_chunked_answers(certificate):
    summary, hosts_seen, url = probe(certificate, NAME, tls_context(ca_path=str(certificate[0])))
    assert summary.failed == 0 and summary.ok > 10, summary.line()
    # Every chunked body read whole (its two chunks, one with an extension), on kept and on fresh connections.
    assert {record.version for record in summary.requests} == {'7'}
    assert {record.kind for record in summary.requests} == {'keepalive', 'new'}
    assert set(hosts_seen) == {NAME}
    data = summary.as_dict(records=True)
    assert data['source'] == 'probe' and data['targets'] == [url]
    assert {record['target'] for record in data['requests']} == {url}


@pytest.mark.parametrize(('host_header', 'verify', 'authority'), [
    (NAME, True, False),  # the system's authorities do not know the test's own
    ('other.l4vip.test', True, True),  # the certificate does not carry the name asked for
])
def test_a_certificate_that_does_not_verify_fails_every_request_as_tls(certificate, host_header, verify, authority):
    context = tls_context(verify=verify, ca_path=str(certificate[0]) if authority else None)
    summary, hosts_seen, _url = probe(certificate, host_header, context, seconds=0.3)
    assert summary.ok == 0 and summary.failed > 0 and summary.failed_by_cause == {CAUSE_TLS: summary.failed}
    assert hosts_seen == []  # nothing was sent


def test_insecure_does_not_verify(certificate):
    summary, _hosts, _url = probe(certificate, None, tls_context(verify=False), seconds=0.3)
    assert summary.failed == 0 and summary.ok > 0


@pytest.mark.parametrize(('url', 'says'), [
    ('ftp://vip/', 'http:// or https://'),
    ('http:///path', 'with a host'),
    ('http://vip:99999/', 'port'),
])
def test_a_bad_url_is_refused_naming_it(url, says):
    with pytest.raises(ValueError, match=says) as raised:
        target_from_url(url)
    assert repr(url) in str(raised.value)


def test_the_cli_names_a_bad_url_and_writes_nothing(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.environ['ANSIBLE_COLLECTIONS_PATH'])
    run = subprocess.run([sys.executable, '-m', MODULE, '--url', 'ftp://vip/', '--json', str(tmp_path / 'out.json')],
                         env=env, capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 2 and "--url: expected an http:// or https:// URL with a host, got 'ftp://vip/'" in run.stderr
    assert not (tmp_path / 'out.json').exists()


def test_the_probe_stops_with_the_process_it_watches_and_writes_its_summary(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.environ['ANSIBLE_COLLECTIONS_PATH'])
    watched = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=subprocess.PIPE)
    out = tmp_path / 'probe.json'
    pidfile = tmp_path / 'probe.pid'
    # Nothing listens there: every request fails fast (refused), which is what a dead VIP looks like to the probe.
    argv = [sys.executable, '-m', MODULE, '--url', 'http://127.0.0.42:9/', '--keepalive', '1', '--rate', '2',
            '--while-pid', str(watched.pid), '--source', 'probe', '--records', 'failed', '--json', str(out), '--pidfile', str(pidfile)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pidfile.exists(), proc.stderr.read() if proc.poll() is not None else 'no pidfile in 10 s'
        gone_at = time.monotonic()
        watched.stdin.close()
        watched.wait(timeout=10)
        proc.wait(timeout=10)
        stopped_after = time.monotonic() - gone_at
    finally:
        for process in (watched, proc):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert proc.returncode == 0, proc.stderr.read()
    # It looks every WHILE_PID_POLL, then lets requests in flight end within the request timeout (2 s) and a grace.
    assert stopped_after < WHILE_PID_POLL + 2.0 + 1.5, stopped_after
    data = json.loads(out.read_text())
    assert data['source'] == 'probe' and data['targets'] == ['http://127.0.0.42:9/']
    assert data['failed'] == data['total'] == len(data['requests']) > 0 and set(data['failed_by_cause']) == {'refused'}
