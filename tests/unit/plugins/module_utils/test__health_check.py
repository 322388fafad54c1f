from __future__ import annotations

import os
import time
import stat

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _health_check as hc
from ansible_collections.l4vip.rollout.plugins.module_utils._health_check import (
    IN_SERVICE,
    MISSING,
    OUT_OF_SERVICE,
    FilesError,
    OptionError,
    Probe,
    VerifyError,
    health_check_files,
    read_state,
    set_state,
    verify,
)
from ansible_collections.l4vip.rollout.tests.unit.fakes import FakeClock

CONTENT = 'OK from web1\n'
MTIME = 1_600_000_000


@pytest.fixture
def docroot(tmp_path):
    root = tmp_path / 'html'
    root.mkdir()
    return root


@pytest.fixture
def files(docroot):
    return health_check_files(str(docroot / 'health_check.html'))


def make_file(name, content=CONTENT, mode=0o640):
    with open(name, 'w', encoding='utf-8') as handle:
        handle.write(content)
    os.chmod(name, mode)
    os.utime(name, (MTIME, MTIME))


def snapshot(directory):
    """Every entry of the directory with what a rename must keep (inode included: renamed, never rewritten)."""
    result = {}
    for entry in sorted(os.listdir(directory)):
        info = os.lstat(os.path.join(directory, entry))
        content = open(os.path.join(directory, entry), 'rb').read() if stat.S_ISREG(info.st_mode) else None
        result[entry] = (info.st_ino, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_mtime_ns, content)
    return result


class FakeServer:
    """Answers with a scripted list of probes, the last one for ever; the clock moves a little per request."""

    def __init__(self, clock, probes, request_seconds=0.01):
        self.clock = clock
        self.probes = list(probes)
        self.request_seconds = request_seconds
        self.requests = []

    def __call__(self, url, timeout):
        self.requests.append((url, timeout))
        self.clock.advance(self.request_seconds)
        return self.probes.pop(0) if len(self.probes) > 1 else self.probes[0]


# --- option values ------------------------------------------------------------------------

def test_disabled_path_defaults_to_path_dot_disabled():
    files = health_check_files('/var/www/html/health_check.html')
    assert files.disabled_path == '/var/www/html/health_check.html.disabled'
    assert files.directory == '/var/www/html'


@pytest.mark.parametrize(('path', 'disabled', 'message'), [
    ('health_check.html', None, "path: expected an absolute path, got 'health_check.html'"),
    ('', None, "path: expected an absolute path, got ''"),
    ('/var/www/html/', None, "path: expected the path of a file, not of a directory, got '/var/www/html/'"),
    ('/var/www/html/hc.html', 'hc.off', "disabled_path: expected an absolute path, got 'hc.off'"),
    ('/var/www/html/hc.html', '/var/www/html/hc.html',
     "disabled_path: expected a name other than path, got '/var/www/html/hc.html'"),
    ('/var/www/html/hc.html', '/var/tmp/hc.off',
     "disabled_path: expected a name in the directory of path (/var/www/html) so that the rename is atomic, "
     "got '/var/tmp/hc.off'"),
])
def test_bad_paths_name_the_option_and_the_value(path, disabled, message):
    with pytest.raises(OptionError) as raised:
        health_check_files(path, disabled)
    assert str(raised.value) == message


@pytest.mark.parametrize(('params', 'message'), [
    ({'state': 'up'}, "state: expected one of in_service, out_of_service, query, got 'up'"),
    ({'verify_url': 'localhost/hc'}, "verify_url: expected an http:// or https:// URL, got 'localhost/hc'"),
    ({'verify_timeout': 0}, 'verify_timeout: expected a number of seconds greater than 0, got 0'),
    ({'verify_poll_interval': -1.0}, 'verify_poll_interval: expected a number of seconds greater than 0, got -1.0'),
])
def test_bad_option_values_fail_and_change_nothing(files, params, message):
    make_file(files.path)
    before = snapshot(files.directory)
    with pytest.raises(OptionError) as raised:
        hc.run(dict(path=files.path, state=OUT_OF_SERVICE) | params)
    assert str(raised.value) == message
    assert snapshot(files.directory) == before


# --- states and toggles -------------------------------------------------------------------

def test_toggles_both_ways_and_is_idempotent(files):
    make_file(files.path)
    assert read_state(files) == IN_SERVICE

    outcome = set_state(files, OUT_OF_SERVICE)
    assert (outcome.previous_state, outcome.state, outcome.changed) == (IN_SERVICE, OUT_OF_SERVICE, True)
    assert not os.path.lexists(files.path) and os.path.isfile(files.disabled_path)
    assert set_state(files, OUT_OF_SERVICE).changed is False
    assert read_state(files) == OUT_OF_SERVICE

    outcome = set_state(files, IN_SERVICE)
    assert (outcome.previous_state, outcome.state, outcome.changed) == (OUT_OF_SERVICE, IN_SERVICE, True)
    assert os.path.isfile(files.path) and not os.path.lexists(files.disabled_path)
    assert set_state(files, IN_SERVICE).changed is False


@pytest.mark.parametrize(('start', 'desired'), [(IN_SERVICE, OUT_OF_SERVICE), (OUT_OF_SERVICE, IN_SERVICE)])
def test_check_mode_reports_the_change_and_touches_nothing(files, start, desired):
    make_file(files.path if start == IN_SERVICE else files.disabled_path)
    before = snapshot(files.directory)
    outcome = set_state(files, desired, check_mode=True)
    assert (outcome.previous_state, outcome.state, outcome.changed) == (start, desired, True)
    assert snapshot(files.directory) == before


def test_content_mode_owner_and_mtime_survive_many_toggles(files):
    make_file(files.path, mode=0o604)
    if os.geteuid() == 0:
        os.chown(files.path, 4242, 4343)
    original = snapshot(files.directory)['health_check.html']
    for _round in range(5):
        set_state(files, OUT_OF_SERVICE)
        assert snapshot(files.directory) == {'health_check.html.disabled': original}
        set_state(files, IN_SERVICE)
        assert snapshot(files.directory) == {'health_check.html': original}
    if os.geteuid() == 0:
        assert original[2:4] == (4242, 4343)  # the owner really was a foreign one, not ours by accident


def test_both_names_exist_is_refused_and_nothing_changes(files):
    make_file(files.path, 'new\n')
    make_file(files.disabled_path, 'old\n')
    before = snapshot(files.directory)
    for desired in (IN_SERVICE, OUT_OF_SERVICE):
        with pytest.raises(FilesError) as raised:
            set_state(files, desired, content='x')
        assert str(raised.value) == (f'path: both {files.path} and {files.disabled_path} exist; refusing to choose '
                                     'one (remove the stale one)')
        assert raised.value.detail == {'path': files.path, 'disabled_path': files.disabled_path}
    with pytest.raises(FilesError):
        hc.run({'path': files.path, 'state': 'query'})
    assert snapshot(files.directory) == before


def test_missing_directory_is_refused(tmp_path):
    files = health_check_files(str(tmp_path / 'nowhere' / 'health_check.html'))
    with pytest.raises(FilesError) as raised:
        set_state(files, IN_SERVICE, content=CONTENT)
    assert str(raised.value) == (f'path: the directory {tmp_path / "nowhere"} does not exist '
                                 f'(path is {files.path!r})')
    assert not (tmp_path / 'nowhere').exists()


def test_content_creates_the_file_only_when_neither_name_exists(files):
    outcome = set_state(files, IN_SERVICE, content=CONTENT, check_mode=True)
    assert (outcome.previous_state, outcome.state) == (MISSING, IN_SERVICE)
    assert os.listdir(files.directory) == []

    umask = os.umask(0o077)  # a strict umask must not make the file unreadable for the web server
    try:
        set_state(files, IN_SERVICE, content=CONTENT)
    finally:
        os.umask(umask)
    assert open(files.path, encoding='utf-8').read() == CONTENT
    assert stat.S_IMODE(os.stat(files.path).st_mode) == 0o644
    assert os.listdir(files.directory) == ['health_check.html']  # no temporary left behind

    # Existing file (either name): content is ignored, never written.
    set_state(files, IN_SERVICE, content='other\n')
    set_state(files, OUT_OF_SERVICE, content='other\n')
    set_state(files, IN_SERVICE, content='other\n')
    assert open(files.path, encoding='utf-8').read() == CONTENT


def test_neither_name_without_content_fails_clearly(files):
    with pytest.raises(FilesError) as raised:
        set_state(files, IN_SERVICE)
    assert str(raised.value).startswith('content: neither ')
    with pytest.raises(FilesError) as raised:
        set_state(files, OUT_OF_SERVICE, content=CONTENT)
    assert 'nothing to take out of service (check path)' in str(raised.value)
    assert os.listdir(files.directory) == []
    assert read_state(files) == MISSING


def test_symlink_outside_the_directory_is_refused(tmp_path, files):
    outside = tmp_path / 'secret.txt'
    make_file(str(outside), 'secret\n')
    os.symlink(outside, files.path)
    before = snapshot(files.directory)
    with pytest.raises(FilesError) as raised:
        set_state(files, OUT_OF_SERVICE)
    assert str(raised.value).startswith(f'path: {files.path} is a symlink to {outside}, outside {files.directory}; '
                                        'refusing to follow a symlink out of the docroot')
    assert raised.value.detail['link_target'] == str(outside)
    assert snapshot(files.directory) == before


def test_dangling_symlink_is_refused(files):
    os.symlink(os.path.join(files.directory, 'gone.html'), files.disabled_path)
    with pytest.raises(FilesError) as raised:
        set_state(files, IN_SERVICE)
    assert 'which is not a regular file' in str(raised.value)
    assert os.path.islink(files.disabled_path) and not os.path.lexists(files.path)


def test_symlink_inside_the_directory_is_renamed_as_a_link(files):
    target = os.path.join(files.directory, 'health_check.real')
    make_file(target)
    os.symlink('health_check.real', files.path)
    set_state(files, OUT_OF_SERVICE)
    assert os.readlink(files.disabled_path) == 'health_check.real' and not os.path.lexists(files.path)
    assert open(target, encoding='utf-8').read() == CONTENT  # the target itself was never touched
    set_state(files, IN_SERVICE)
    assert os.readlink(files.path) == 'health_check.real'


def test_directory_under_the_name_is_refused(files):
    os.mkdir(files.path)
    with pytest.raises(FilesError) as raised:
        read_state(files)
    assert str(raised.value) == f'path: {files.path} exists but is not a regular file; refusing it'


def test_query_changes_nothing(files):
    assert hc.run({'path': files.path, 'state': 'query'})['state'] == MISSING
    make_file(files.disabled_path)
    before = snapshot(files.directory)
    result = hc.run({'path': files.path, 'state': 'query'}, want_diff=True)
    assert result == {'changed': False, 'state': OUT_OF_SERVICE, 'previous_state': OUT_OF_SERVICE,
                      'path': files.path, 'disabled_path': files.disabled_path}
    assert snapshot(files.directory) == before


def test_query_with_verify_url_requires_200_while_in_service(files):
    make_file(files.path)
    before = snapshot(files.directory)
    clock = FakeClock()
    served = FakeServer(clock, [Probe(status=200)])
    assert hc.run({'path': files.path, 'state': 'query', 'verify_url': 'http://h/hc'}, get=served, clock=clock)['verify']['status'] == 200
    missing = FakeServer(clock, [Probe(status=404)])
    with pytest.raises(VerifyError) as raised:
        hc.run({'path': files.path, 'state': 'query', 'verify_url': 'http://h/wrong', 'verify_timeout': 1}, get=missing, clock=clock)
    assert str(raised.value).startswith('verify_url: http://h/wrong did not answer 200 for in_service within 1 s; last saw status 404')
    assert raised.value.detail['state'] == IN_SERVICE
    assert snapshot(files.directory) == before


def test_query_with_verify_url_asks_nothing_out_of_service(files):
    make_file(files.disabled_path)
    server = FakeServer(FakeClock(), [Probe(error='connection refused')])
    result = hc.run({'path': files.path, 'state': 'query', 'verify_url': 'http://h/hc'}, get=server)
    assert result['state'] == OUT_OF_SERVICE and 'verify' not in result and server.requests == []


def test_run_reports_diff_and_skips_verify_in_check_mode(files):
    make_file(files.path)
    server = FakeServer(FakeClock(), [Probe(status=200)])
    result = hc.run({'path': files.path, 'state': OUT_OF_SERVICE, 'verify_url': 'http://h/hc'},
                    check_mode=True, want_diff=True, get=server)
    assert result['diff'] == {'before': {'state': IN_SERVICE, 'present': files.path},
                              'after': {'state': OUT_OF_SERVICE, 'present': files.disabled_path}}
    assert 'verify' not in result and server.requests == []
    assert os.path.exists(files.path)


# --- verification -------------------------------------------------------------------------

def test_verify_succeeds_when_the_status_flips_on_the_third_poll():
    clock = FakeClock()
    server = FakeServer(clock, [Probe(status=200), Probe(error='connection refused'), Probe(status=404)])
    result = verify('http://h/hc', OUT_OF_SERVICE, timeout=5, poll_interval=0.5, get=server, clock=clock)
    assert result == {'url': 'http://h/hc', 'status': 404, 'attempts': 3, 'elapsed': 1.03}
    assert clock.slept == [0.5, 0.5]


@pytest.mark.parametrize(('state', 'probe', 'ok'), [
    (IN_SERVICE, Probe(status=200), True),
    (IN_SERVICE, Probe(status=204), False),
    (IN_SERVICE, Probe(status=404), False),
    (OUT_OF_SERVICE, Probe(status=404), True),
    (OUT_OF_SERVICE, Probe(status=301), True),
    (OUT_OF_SERVICE, Probe(status=503), True),
    (OUT_OF_SERVICE, Probe(status=204), False),
    (OUT_OF_SERVICE, Probe(error='timed out'), False),
])
def test_what_counts_as_the_answer(state, probe, ok):
    assert hc.answers_as(state, probe) is ok


def test_verify_times_out_and_reports_the_last_status():
    clock = FakeClock()
    server = FakeServer(clock, [Probe(error='connection refused'), Probe(status=404)], request_seconds=0.0)
    with pytest.raises(VerifyError) as raised:
        verify('http://h/hc', IN_SERVICE, timeout=2, poll_interval=0.75, get=server, clock=clock)
    assert str(raised.value) == ('verify_url: http://h/hc did not answer 200 for in_service within 2 s; '
                                 'last saw status 404 after 4 attempts')
    assert raised.value.detail['verify'] == {'url': 'http://h/hc', 'status': 404, 'attempts': 4, 'elapsed': 2.0,
                                             'error': None, 'expected': '200'}
    # Limited: the last pause is cut short so that the last poll lands on the deadline, not past it.
    assert clock.slept == [0.75, 0.75, 0.5]


def test_verify_timeout_reports_the_last_error():
    clock = FakeClock()
    server = FakeServer(clock, [Probe(error='connection refused')], request_seconds=0.3)
    with pytest.raises(VerifyError) as raised:
        verify('http://h/hc', OUT_OF_SERVICE, timeout=1, poll_interval=0.5, get=server, clock=clock)
    assert str(raised.value).endswith('last saw error connection refused after 2 attempts')
    # Each request may use at most what is left of the timeout.
    assert [timeout for _url, timeout in server.requests] == [1.0, pytest.approx(0.2)]


def test_verify_failure_after_a_change_carries_the_result(files):
    make_file(files.path)
    clock = FakeClock()
    server = FakeServer(clock, [Probe(status=200)])
    with pytest.raises(VerifyError) as raised:
        hc.run({'path': files.path, 'state': OUT_OF_SERVICE, 'verify_url': 'http://h/hc', 'verify_timeout': 1,
                'verify_poll_interval': 0.25}, get=server, clock=clock)
    detail = raised.value.detail
    assert (detail['changed'], detail['state'], detail['previous_state']) == (True, OUT_OF_SERVICE, IN_SERVICE)
    assert detail['verify']['status'] == 200
    assert os.path.exists(files.disabled_path)  # the change stays: a failure leaves the member out


def test_verify_runs_when_nothing_changed(files):
    make_file(files.path)
    clock = FakeClock()
    server = FakeServer(clock, [Probe(status=200)])
    result = hc.run({'path': files.path, 'state': IN_SERVICE, 'verify_url': 'http://h/hc'}, get=server, clock=clock)
    assert result['changed'] is False and result['verify']['status'] == 200 and result['verify']['attempts'] == 1


def test_verify_unchanged_false_verifies_a_change_only(files):
    """A rollout's step out: an earlier run's file already out (its server maybe stopped) is not requested; a change is."""
    make_file(files.disabled_path)
    clock = FakeClock()
    refused = FakeServer(clock, [Probe(error='Connection refused')])
    params = {'path': files.path, 'state': OUT_OF_SERVICE, 'verify_url': 'http://h/hc', 'verify_unchanged': False, 'verify_timeout': 1}
    result = hc.run(params, get=refused, clock=clock)
    assert result['changed'] is False and 'verify' not in result and refused.requests == []
    os.rename(files.disabled_path, files.path)
    result = hc.run(params, get=FakeServer(clock, [Probe(status=404)]), clock=clock)
    assert result['changed'] is True and result['verify']['status'] == 404


def test_http_get_turns_statuses_and_errors_into_probes():
    import socket
    with socket.socket() as closed:
        closed.bind(('127.0.0.92', 0))
        port = closed.getsockname()[1]
        probe = hc.http_get(f'http://127.0.0.92:{port}/hc', 1.0)  # bound but not listening: refused
    assert probe.status is None and 'refused' in probe.error.lower()


def test_http_get_reports_each_status_as_is_and_follows_no_redirect():
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (the name http.server calls)
            status = {'/ok': 200, '/gone': 404, '/moved': 302}[self.path.split('?')[0]]
            self.send_response(status)
            self.send_header('Location', '/ok')
            self.send_header('Content-Length', '0')
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(('127.0.0.92', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    try:
        base = f'http://127.0.0.92:{server.server_address[1]}'
        assert [hc.http_get(f'{base}{path}', 2.0).status for path in ('/ok', '/gone', '/moved', '/ok?x=1')] == [200, 404, 302, 200]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


# --- changed_at: member_wait's since ------------------------------------------------------

def test_changed_at_is_the_rename_and_survives_an_unchanged_run(files):
    make_file(files.path)
    before = time.time()
    first = hc.run({'path': files.path, 'state': OUT_OF_SERVICE})
    after = time.time()
    # ctime has the kernel's clock granularity; allow a few ms either side.
    assert before - 0.01 <= first['changed_at'] <= after + 0.01
    time.sleep(0.05)
    again = hc.run({'path': files.path, 'state': OUT_OF_SERVICE})
    assert again['changed'] is False and again['changed_at'] == first['changed_at']
    back = hc.run({'path': files.path, 'state': IN_SERVICE})
    assert back['changed_at'] >= first['changed_at'] + 0.04


def test_changed_at_in_check_mode_is_the_time_of_the_task(files):
    make_file(files.path)
    clock = FakeClock(1_800_000_000.0)
    result = hc.run({'path': files.path, 'state': OUT_OF_SERVICE}, check_mode=True, clock=clock)
    assert result['changed_at'] == 1_800_000_000.0 and os.path.exists(files.path)


def test_query_has_no_changed_at(files):
    make_file(files.path)
    assert 'changed_at' not in hc.run({'path': files.path, 'state': 'query'})


# --- the start before the rename ------------------------------------------------------------

class FakeStart:
    """Records each start and what the files were at that moment; exits with ``rc``."""

    def __init__(self, files, rc=0, clock=None, seconds=0.0):
        self.files, self.rc, self.clock, self.seconds = files, rc, clock, seconds
        self.seen = []

    def __call__(self, argv):
        self.seen.append((argv, read_state(self.files)))
        if self.clock is not None:
            self.clock.advance(self.seconds)
        return self.rc, 'out', 'nginx: bind() failed' if self.rc else ''


def test_start_command_runs_before_the_rename_and_before_the_verify(files):
    make_file(files.disabled_path)
    clock = FakeClock()
    start = FakeStart(files, clock=clock, seconds=0.3)
    server = FakeServer(clock, [Probe(status=200)])
    result = hc.run({'path': files.path, 'state': IN_SERVICE, 'start_command': ['nginx'], 'verify_url': 'http://h/hc'},
                    get=server, clock=clock, run_command=start)
    assert start.seen == [(['nginx'], OUT_OF_SERVICE)]  # the L4's checks could not pass while the server started
    assert result['start'] == {'rc': 0, 'seconds': 0.3}
    assert (result['changed'], result['state'], read_state(files)) == (True, IN_SERVICE, IN_SERVICE)
    assert result['verify']['status'] == 200


def test_a_start_is_a_change_even_with_the_file_in_service(files):
    make_file(files.path)
    result = hc.run({'path': files.path, 'state': IN_SERVICE, 'start_command': ['nginx']}, run_command=FakeStart(files))
    assert (result['changed'], result['previous_state'], result['start']['rc']) == (True, IN_SERVICE, 0)


def test_a_failed_start_renames_nothing_and_says_so(files):
    make_file(files.disabled_path)
    before = snapshot(os.path.dirname(files.path))
    with pytest.raises(hc.StartError) as raised:
        hc.run({'path': files.path, 'state': IN_SERVICE, 'start_command': ['nginx']}, run_command=FakeStart(files, rc=1))
    assert str(raised.value) == ("start_command ['nginx'] exited 1: nginx: bind() failed. The health check stays out of service: "
                                 'nothing was renamed')
    assert raised.value.detail['start']['rc'] == 1 and raised.value.detail['start']['stderr'] == 'nginx: bind() failed'
    assert snapshot(os.path.dirname(files.path)) == before


def test_the_files_refusal_comes_before_the_start(files):
    make_file(files.path)
    make_file(files.disabled_path)
    start = FakeStart(files)
    with pytest.raises(FilesError, match='both'):
        hc.run({'path': files.path, 'state': IN_SERVICE, 'start_command': ['nginx']}, run_command=start)
    assert start.seen == []


def test_check_mode_runs_no_start_and_reports_the_change(files):
    make_file(files.path)
    start = FakeStart(files)
    result = hc.run({'path': files.path, 'state': IN_SERVICE, 'start_command': ['nginx']}, check_mode=True, run_command=start)
    assert start.seen == [] and result['changed'] is True and 'start' not in result


@pytest.mark.parametrize('state, argv, message', [
    (OUT_OF_SERVICE, ['nginx'], "start_command: used only with state in_service, not out_of_service, got ['nginx']"),
    ('query', ['nginx'], "start_command: used only with state in_service, not query, got ['nginx']"),
    (IN_SERVICE, [], 'start_command: expected a non-empty argv (a list of non-empty strings), got []'),
    (IN_SERVICE, ['nginx', ''], "start_command: expected a non-empty argv (a list of non-empty strings), got ['nginx', '']"),
])
def test_start_command_values_are_refused_before_anything_runs(files, state, argv, message):
    make_file(files.path)
    start = FakeStart(files)
    with pytest.raises(OptionError) as raised:
        hc.run({'path': files.path, 'state': state, 'start_command': argv}, run_command=start)
    assert str(raised.value) == message
    assert start.seen == [] and read_state(files) == IN_SERVICE
