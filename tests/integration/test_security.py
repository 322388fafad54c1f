"""Security guarantees through real ansible-playbook (SECURITY.md).

- A secret given in ``headers`` (or in a role's ``..._l4.headers``) never appears in what a run leaves
  behind: ansible-playbook's stdout and stderr at ``-vvv``, the recorded task results, the rollout
  report, or any other file under the run's directory - on success and on failure.
- The http provider verifies TLS by default: against a local HTTPS server with a self-signed
  certificate, member_wait refuses (naming the certificate), and accepts with ``ca_path`` or
  ``validate_certs: false``.
- The emulator's control API listens on loopback by default, and says so when told otherwise.

Everything listens on 127.0.0.240-249; every server started here is stopped here.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pathlib
import selectors
import shutil
import ssl
import subprocess
import sys
import threading
import typing as t
import uuid

import pytest
import yaml

from ansible.module_utils import urls
from ansible_collections.l4vip.rollout.plugins.module_utils import _provider_base
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import control_warnings, parse_config
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator_service import ENTRY_POINT
from ansible_collections.l4vip.rollout.plugins.plugin_utils import _in_process
from ansible_collections.l4vip.rollout.tests.harness.ansible import PLAYBOOK_BIN, PlaybookRun, _playbook_env, pids_running, run_playbook
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab

# Unique per test session, so that a hit can only come from this run.
SECRET = f'l4vip-secret-{uuid.uuid4().hex}'
# Shown on purpose: proves that the scan reads what the run really printed and recorded.
CANARY = f'l4vip-canary-{uuid.uuid4().hex}'
HEADERS = {'X-Auth-Token': SECRET}
PROFILE = {'interval': 0.2, 'retry': 1, 'rise': 1}
NOOP = ['/bin/true']
TLS_ADDRESS = '127.0.0.240'


# -- running ansible-playbook verbosely, with the report callback --------------------------------------------------


class VerboseRun(PlaybookRun):
    def __init__(self, returncode: int, output: list[dict[str, t.Any]], stderr: str, report_dir: pathlib.Path, results: pathlib.Path) -> None:
        super().__init__(returncode, output, stderr)
        self.report_dir = report_dir
        self.results = results


def run_verbose(tmp_path: pathlib.Path, tasks: list[dict[str, t.Any]], timeout: float = 180, **env_extra: str) -> VerboseRun:
    """run_playbook, but at -vvv and with l4vip.rollout.rollout_report enabled (its report under tmp_path)."""
    number = len(list(tmp_path.glob('secret-playbook-*.yml')))
    playbook = tmp_path / f'secret-playbook-{number}.yml'
    playbook.write_text(yaml.safe_dump([{'name': 'test', 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], sort_keys=False))
    results = tmp_path / f'secret-results-{number}.json'
    report_dir = tmp_path / f'report-{number}'
    env = dict(_playbook_env(tmp_path, results), ANSIBLE_CALLBACKS_ENABLED='l4vip.rollout.rollout_report',
               L4VIP_ROLLOUT_REPORT_DIR=str(report_dir), **env_extra)
    command = [str(PLAYBOOK_BIN), '-vvv', '-i', 'localhost,', '-c', 'local', '-e', f'ansible_python_interpreter={sys.executable}', str(playbook)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    output = json.loads(results.read_text()) if results.exists() else []
    return VerboseRun(done.returncode, output, done.stdout + done.stderr, report_dir, results)


def assert_no_secret(tmp_path: pathlib.Path, run: VerboseRun) -> None:
    """The secret is nowhere: not in the output, not in the results, not in any file the run left (but the playbooks we wrote)."""
    assert run.output, f'nothing was recorded; output: {run.stderr[-3000:]}'
    assert CANARY in run.stderr and CANARY in run.results.read_text(), 'the canary is missing: the scan would not see a leak'
    assert SECRET not in run.stderr, _context(run.stderr)
    assert SECRET not in run.results.read_text()
    leaks = []
    for path in tmp_path.rglob('*'):
        if path.is_file() and not path.is_symlink() and not path.name.startswith('secret-playbook-'):
            if SECRET.encode() in path.read_bytes():
                leaks.append(str(path))
    assert not leaks, f'the secret is in {leaks}'


def _context(text: str) -> str:
    at = text.find(SECRET)
    return f'the secret leaked: ...{text[max(0, at - 600):at + 100]}...'


def emulator_member_url(lab: Lab, member: str = 'web1') -> str:
    return f'{lab.emulator.control_url}/api/vips/web/members/{member}'


# -- 1. secrets never in output ------------------------------------------------------------------------------------


def test_headers_never_appear_in_module_output(tmp_path):
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        url = emulator_member_url(lab)
        emulator = dict(provider='emulator', endpoint=lab.emulator.control_url, pool='web', member='web1', headers=HEADERS, profile=PROFILE)
        http = dict(provider='http', endpoint=url, query='state', headers=HEADERS, profile=PROFILE, poll_interval=0.05)
        admin = dict(provider='http', endpoint=url, headers=HEADERS, query='admin_state',
                     admin_values={'enabled': ['enabled'], 'drain': ['drain'], 'disabled': ['disabled']})
        server = lab.servers['web1']
        tasks = [
            {'name': 'canary', 'ansible.builtin.debug': {'msg': CANARY}},
            {'name': 'wait up (http)', 'l4vip.rollout.member_wait': dict(http, state='up', timeout=5)},
            {'name': 'wait up (emulator)', 'l4vip.rollout.member_wait': dict(emulator, state='up', timeout=5)},
            {'name': 'drain the member (http)', 'l4vip.rollout.member_admin': dict(
                admin, state='drain', admin_request={'method': 'PUT', 'url': f'{url}/admin', 'body': {'state': 'drain'}})},
            {'name': 'enable it again (emulator)', 'l4vip.rollout.member_admin': dict(emulator, state='enabled')},
            {'name': 'sessions (emulator)', 'l4vip.rollout.session_drain': dict(
                emulator, port=server.port, address=server.host, timeout=2)},
            # Failures: each says why, and still never shows the secret.
            {'name': 'unreachable', 'l4vip.rollout.member_wait': dict(http, endpoint='http://127.0.0.241:9/api', state='down', timeout=1),
             'ignore_errors': True},
            {'name': 'bad query', 'l4vip.rollout.member_wait': dict(http, query='state[?', state='down', timeout=1), 'ignore_errors': True},
            {'name': 'never down', 'l4vip.rollout.member_wait': dict(http, state='down', timeout=0.5), 'ignore_errors': True},
            {'name': 'admin unreachable', 'l4vip.rollout.member_admin': dict(
                admin, endpoint='http://127.0.0.241:9/api', state='disabled', admin_request={'method': 'PUT', 'body': {'state': 'disabled'}}),
             'ignore_errors': True},
            {'name': 'drain unknown member', 'l4vip.rollout.session_drain': dict(
                emulator, member='web9', port=server.port, address=server.host, timeout=1), 'ignore_errors': True},
        ]
        run = run_verbose(tmp_path, tasks)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ('wait up (http)', 'wait up (emulator)', 'drain the member (http)', 'enable it again (emulator)', 'sessions (emulator)'):
        assert not run.task(name)['failed'], run.task(name)
    assert run.task('drain the member (http)')['changed']
    # The failures really failed, for the reason they were built for.
    assert run.task('unreachable')['msg'].startswith('cannot reach the L4 at http://127.0.0.241:9/api')
    assert 'query: not a valid JMESPath expression' in run.task('bad query')['msg']
    assert run.task('never down')['msg'] == f"{url} was not down within 0.5s; the L4 last said: 'up' (an up value)"
    assert run.task('admin unreachable')['failed'] and run.task('drain unknown member')['failed']
    # The module saw the option, and hid it: the invocation shows the placeholder.
    assert run.task('wait up (http)')['invocation']['module_args']['headers'] == {'X-Auth-Token': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'}
    assert_no_secret(tmp_path, run)


def test_role_headers_never_appear_in_output_or_report(tmp_path):
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        server = lab.servers['web1']
        l4 = {'provider': 'http', 'endpoint': emulator_member_url(lab), 'query': 'state', 'headers': HEADERS, 'poll_interval': 0.05}
        variables = {
            'l7_vip_deploy_l4': l4,
            'l7_vip_deploy_profile': PROFILE,
            'l7_vip_deploy_health_check_path': str(lab.docroots['web1'] / 'health_check.html'),
            'l7_vip_deploy_service_port': server.port,
            'l7_vip_deploy_service_address': server.host,
            'l7_vip_deploy_stop_command': NOOP,
            'l7_vip_deploy_start_command': NOOP,
            'l7_vip_deploy_drain_timeout': 5,
        }
        broken = tmp_path / 'broken-deploy.yml'
        broken.write_text("- name: Break the deploy\n  ansible.builtin.command:\n    argv: [/bin/false]\n  changed_when: false\n")
        canary = {'name': 'canary', 'ansible.builtin.debug': {'msg': CANARY}}
        # Even with every task's arguments in its banner: the role passes the secret through module_defaults, never as a task argument.
        ok = run_verbose(tmp_path, [canary, {'name': 'deploy', 'ansible.builtin.include_role': {'name': 'l4vip.rollout.l7_vip_deploy'}, 'vars': variables}],
                         ANSIBLE_DISPLAY_ARGS_TO_STDOUT='1')
        assert ok.returncode == 0, ok.stderr[-3000:]
        assert lab.member('web1')['bound']
        include = {'name': 'deploy', 'ansible.builtin.include_role': {'name': 'l4vip.rollout.l7_vip_deploy'},
                   'vars': dict(variables, l7_vip_deploy_deploy_tasks=str(broken))}
        failed = run_verbose(tmp_path, [canary, include])
        assert failed.returncode != 0
        assert failed.task('Stop the rollout')['msg'].startswith("l7_vip_deploy stopped on localhost at 'Break the deploy'")
    for run in (ok, failed):
        # The role really sent the header: every wait got it from the role's variable, and hid it.
        waits = [entry['result'] for entry in run.output if entry['action'] == 'l4vip.rollout.member_wait']
        assert waits and all(w['invocation']['module_args']['headers'] == {'X-Auth-Token': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'} for w in waits)
        written = sorted(path.name for path in run.report_dir.iterdir())
        assert {'report.json', 'report.md', 'timeline.svg'} <= set(written), written
        assert_no_secret(tmp_path, run)


# -- 5. the health-check toggle never follows a link out of the docroot (the rest: tests/unit/.../test__health_check_security.py)


def test_health_check_module_refuses_a_link_out_of_the_docroot(tmp_path):
    docroot = tmp_path / 'html'
    docroot.mkdir()
    outside = tmp_path / 'elsewhere.html'
    outside.write_text('not yours\n')
    (docroot / 'health_check.html').symlink_to(outside)
    run = run_playbook(tmp_path, [{'name': 'out', 'l4vip.rollout.health_check': {'path': str(docroot / 'health_check.html'), 'state': 'out_of_service'},
                                   'ignore_errors': True}])
    result = run.task('out')
    assert result['failed'] and result['msg'].startswith(f"path: {docroot / 'health_check.html'} is a symlink to {outside}, outside {docroot}; ")
    assert result['link_target'] == str(outside)
    assert (docroot / 'health_check.html').is_symlink() and outside.read_text() == 'not yours\n'


# -- 2. TLS verified by default ------------------------------------------------------------------------------------


class _JsonHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        body = json.dumps({'state': 'up'}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: t.Any) -> None:  # pylint: disable=redefined-builtin
        return


@contextlib.contextmanager
def https_server(directory: pathlib.Path) -> t.Iterator[tuple[str, pathlib.Path]]:
    """A JSON server on TLS_ADDRESS with a fresh self-signed certificate; yields its URL and the certificate."""
    if shutil.which('openssl') is None:
        pytest.fail('the openssl command is needed to make a self-signed certificate (apt-get install -y openssl)')
    cert, key = directory / 'server.crt', directory / 'server.key'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', f'/CN={TLS_ADDRESS}',
                    '-addext', f'subjectAltName=IP:{TLS_ADDRESS}', '-keyout', str(key), '-out', str(cert)],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = http.server.ThreadingHTTPServer((TLS_ADDRESS, 0), _JsonHandler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, name='https-json', daemon=True)
    thread.start()
    try:
        yield f'https://{TLS_ADDRESS}:{server.server_address[1]}/member', cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_http_provider_verifies_tls_by_default(tmp_path):
    with https_server(tmp_path) as (url, cert):
        wait = dict(state='up', provider='http', endpoint=url, query='state', timeout=2, poll_interval=0.05)
        run = run_playbook(tmp_path, [
            {'name': 'default', 'l4vip.rollout.member_wait': wait, 'ignore_errors': True},
            {'name': 'with ca_path', 'l4vip.rollout.member_wait': dict(wait, ca_path=str(cert))},
            {'name': 'without verification', 'l4vip.rollout.member_wait': dict(wait, validate_certs=False)},
        ])
    refused = run.task('default')
    assert refused['failed'] and refused['msg'].startswith(f'cannot reach the L4 at {url}'), refused
    assert 'certificate' in refused['msg'].lower(), refused['msg']
    for name in ('with ca_path', 'without verification'):
        accepted = run.task(name)
        assert not accepted['failed'], accepted
        assert accepted['bound'] is True and accepted['observed'] == "'up' (an up value)"
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.fixture(name='built_contexts')
def fixture_built_contexts(monkeypatch):
    """A process with no TLS context yet; the list of those built from here on, as (validate_certs, cafile)."""
    monkeypatch.setattr(_provider_base, '_TLS_CONTEXTS', {})
    built: list[tuple[t.Any, t.Any]] = []
    make_context = urls.make_context

    def counted(**kwargs: t.Any) -> t.Any:
        built.append((kwargs.get('validate_certs'), kwargs.get('cafile')))
        return make_context(**kwargs)

    monkeypatch.setattr(urls, 'make_context', counted)
    return built


def test_one_process_keeps_one_tls_context_per_certificate_settings(tmp_path, built_contexts):
    """A wait asks the L4 every poll in one process: the TLS context (the system's CA bundle loaded) is built once per
    certificate settings, and a lenient one never answers a request that verifies."""
    strict, lenient = _provider_base.HttpSettings(timeout=5), _provider_base.HttpSettings(validate_certs=False, timeout=5)
    with https_server(tmp_path) as (url, cert):
        pinned = _provider_base.HttpSettings(ca_path=str(cert), timeout=5)
        for settings in (lenient, pinned, lenient, pinned):
            assert _provider_base.fetch_json(url, settings) == {'state': 'up'}
        with pytest.raises(_provider_base.L4Unreachable, match='(?i)certificate'):
            _provider_base.fetch_json(url, strict)
        assert _provider_base.fetch_json(url, lenient) == {'state': 'up'}
        with pytest.raises(_provider_base.L4Unreachable, match='(?i)certificate'):
            _provider_base.fetch_json(url, strict)
    assert built_contexts == [(False, None), (True, str(cert)), (True, None)]


def test_the_default_tls_context_is_built_before_the_workers_fork(built_contexts):
    """ansible-playbook's own process loads plugin_utils/_in_process (its strategy looks at the L4 steps' action class)
    and builds the default context there: the workers it forks for the steps find it and build none."""
    _in_process.preload()
    assert built_contexts == [(True, None)]
    # A worker's request with the default certificate settings (whatever its timeout) takes that one.
    assert _provider_base.tls_context(_provider_base.HttpSettings(timeout=5)) is _provider_base.tls_context(_provider_base.HttpSettings())
    assert built_contexts == [(True, None)]


# -- 3. the emulator's control API: loopback unless told otherwise, and says so -------------------------------------


CONFIG = {'profile': {'interval': 0.2, 'check_timeout': 0.1},
          'vips': [{'name': 'web', 'listen': '127.0.0.242:0', 'members': [{'name': 'web1', 'address': '127.0.0.243:9'}]}]}


def test_control_defaults_to_loopback_without_a_warning():
    config = parse_config(CONFIG)
    assert config.control.host == '127.0.0.1'
    assert control_warnings(config) == []
    assert control_warnings(parse_config(dict(CONFIG, control='[::1]:0'))) == []
    assert control_warnings(parse_config(dict(CONFIG, control='127.0.0.244:0'))) == []


@pytest.mark.parametrize('control', ['0.0.0.0:0', '192.0.2.10:8080', '[::]:0'])
def test_control_off_loopback_is_warned(control):
    warnings = control_warnings(parse_config(dict(CONFIG, control=control)))
    assert len(warnings) == 1
    host = control.rpartition(':')[0].strip('[]')
    assert warnings[0].startswith(f'control: the control API listens on {host}, which is not a loopback address; ')
    assert 'no authentication' in warnings[0]


def test_module_listens_on_loopback_by_default_and_warns_otherwise(tmp_path):
    pidfile = str(tmp_path / 'emulator.pid')
    before = set(pids_running(ENTRY_POINT))
    stop = [{'name': 'stop', 'l4vip.rollout.l4_emulator': {'pidfile': pidfile, 'state': 'stopped'}}]
    try:
        run = run_playbook(tmp_path, [
            {'name': 'default', 'l4vip.rollout.l4_emulator': {'pidfile': pidfile, 'config': CONFIG}},
            {'name': 'everywhere', 'l4vip.rollout.l4_emulator': {'pidfile': pidfile, 'config': dict(CONFIG, control='0.0.0.0:0')}},
            {'name': 'everywhere again', 'l4vip.rollout.l4_emulator': {'pidfile': pidfile, 'config': dict(CONFIG, control='0.0.0.0:0')}},
        ] + stop)
        assert run.returncode == 0, run.stderr[-3000:]
        default = run.task('default')
        assert default['control_url'].startswith('http://127.0.0.1:') and not default.get('warnings'), default
        for name in ('everywhere', 'everywhere again'):  # a start that is no change says it too
            warned = run.task(name)
            assert warned['control_url'].startswith('http://0.0.0.0:')
            assert any('which is not a loopback address' in w for w in warned.get('warnings', [])), warned
    finally:
        run_playbook(tmp_path, stop)
    assert set(pids_running(ENTRY_POINT)) <= before


def test_cli_says_so_on_stderr(tmp_path):
    config = tmp_path / 'emulator.json'
    state = tmp_path / 'emulator.state.json'
    config.write_text(json.dumps(dict(CONFIG, control='0.0.0.0:0')))
    process = subprocess.Popen([sys.executable, '-m', ENTRY_POINT, '--config', str(config), '--state-file', str(state)],  # pylint: disable=consider-using-with
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=os.environ['ANSIBLE_COLLECTIONS_PATH']))  # conftest's tree
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=10), 'the emulator did not say it was ready within 10s'
        ready = process.stdout.readline()
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=10)
    assert ready.startswith('l4vip emulator ready: control http://0.0.0.0:'), (ready, stdout, stderr)
    assert process.returncode == 0, stderr
    assert 'which is not a loopback address' in stderr, stderr
    assert not state.exists()
