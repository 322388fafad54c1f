# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The health-check file: put it in or out of service by renaming it, and verify what a web server serves.

Internal to the l4vip.rollout collection; not a public API.

An L7 health check asks for one file; while the file exists the member is in service, once it
is gone the checks fail and the L4 takes the member out. The file is renamed to its disabled
name and back, never deleted and rewritten: a rename keeps the inode, so content, owner,
group, mode and mtime survive any number of toggles, and within one directory the rename is
atomic (at every instant exactly one of the two names exists).

Refusals are decided before anything is touched, so an error never leaves a half-done change:
- both names exist (which one is stale cannot be told);
- the two names are in different directories: a rename across directories may cross a
  filesystem or a bind mount and stop being atomic (EXDEV), so only one directory is accepted;
- the file is a symlink that resolves outside its directory, or to nothing: renaming the
  link is harmless, but the web server would follow it out of the docroot, and the module
  never does that silently.

Web servers may cache a file's existence (nginx ``open_file_cache``), so verification polls
the URL until it answers as expected or the time is up, and then says what it last saw.

With ``start_command`` the web server's start runs first, so that a member comes back in one
task: over SSH every task is a module run, and the member is out of the VIP for all of them.
The file is past the usual length on purpose: the files, the start and the verification are one
step on the member, read top to bottom.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import stat
import typing as t
import urllib.error
import urllib.parse

from ansible_collections.l4vip.rollout.plugins.module_utils import _dsr
from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError, seconds
from ansible_collections.l4vip.rollout.plugins.module_utils._process import run_argv
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import SYSTEM_CLOCK, Clock, poll_until

IN_SERVICE = 'in_service'
OUT_OF_SERVICE = 'out_of_service'
QUERY = 'query'
MISSING = 'missing'  # neither name exists; only ever reported, never requested
STATES = (IN_SERVICE, OUT_OF_SERVICE, QUERY)
STATE_WORDS = {IN_SERVICE: 'in service', OUT_OF_SERVICE: 'out of service', MISSING: 'absent'}

DISABLED_SUFFIX = '.disabled'
CREATED_MODE = 0o644  # a created file must be readable by the web server whatever the umask
DEFAULT_VERIFY_TIMEOUT = 30.0
DEFAULT_POLL_INTERVAL = 0.5
MIN_REQUEST_TIMEOUT = 0.1  # a poll at the deadline still gets a real chance to connect
USER_AGENT = 'l4vip.rollout.health_check'


def argument_spec() -> dict[str, t.Any]:
    """The options of the health_check module and its action plugin (documented in the module)."""
    return dict(
        path=dict(type='path', required=True),
        state=dict(type='str', choices=list(STATES), default=IN_SERVICE),
        disabled_path=dict(type='path'),
        content=dict(type='str'),
        verify_url=dict(type='str'),
        verify_timeout=dict(type='float', default=DEFAULT_VERIFY_TIMEOUT),
        verify_poll_interval=dict(type='float', default=DEFAULT_POLL_INTERVAL),
        verify_unchanged=dict(type='bool', default=True),
        dsr_vip=dict(type='str'),
        dsr_interface=dict(type='str'),
        start_command=dict(type='list', elements='str'),
    )


class HealthCheckError(Exception):
    """Any refusal or failure; ``detail`` is passed to ``fail_json`` beside the message."""

    def __init__(self, msg: str, **detail: t.Any) -> None:
        super().__init__(msg)
        self.detail = detail


# What the module and its in-process action report as a failure: a refusal of the files, a failed start or verify, a bad option,
# a DSR pre-flight that could not read the member's addresses.
ERRORS = (HealthCheckError, OptionError, _dsr.DsrError)


class FilesError(HealthCheckError):
    """The files on disk are in a state the module refuses to touch, or a rename failed."""


class VerifyError(HealthCheckError):
    """The URL never answered as the desired state requires within the timeout."""


class StartError(HealthCheckError):
    """The web server's start command failed; nothing was renamed."""


# Runs an argv on the member: (rc, stdout, stderr). The module passes AnsibleModule.run_command.
RunCommand = t.Callable[[list[str]], tuple[int, str, str]]


@dataclasses.dataclass(frozen=True)
class HealthCheckFiles:
    """The health-check file's two names, both absolute and in one directory."""

    path: str
    disabled_path: str

    @property
    def directory(self) -> str:
        return os.path.dirname(self.path)


def _absolute_file_path(option: str, value: t.Any) -> str:
    if not isinstance(value, str) or not value:
        raise OptionError(option, value, 'expected an absolute path')
    if not os.path.isabs(value):
        raise OptionError(option, value, 'expected an absolute path')
    if value.endswith('/') or os.path.basename(os.path.normpath(value)) in ('', '.', '..'):
        raise OptionError(option, value, 'expected the path of a file, not of a directory')
    return os.path.normpath(value)


def health_check_files(path: t.Any, disabled_path: t.Any = None) -> HealthCheckFiles:
    """Validate the two names; the disabled one defaults to ``<path>.disabled``."""
    path = _absolute_file_path('path', path)
    if disabled_path is None:
        disabled_path = path + DISABLED_SUFFIX
    else:
        disabled_path = _absolute_file_path('disabled_path', disabled_path)
    if disabled_path == path:
        raise OptionError('disabled_path', disabled_path, 'expected a name other than path')
    if os.path.dirname(disabled_path) != os.path.dirname(path):
        raise OptionError('disabled_path', disabled_path,
                          f'expected a name in the directory of path ({os.path.dirname(path)}) so that the rename is atomic')
    return HealthCheckFiles(path, disabled_path)


def _check_entry(option: str, name: str, directory: str) -> bool:
    """Whether ``name`` exists; refuses anything but a regular file or a symlink to one inside ``directory``."""
    try:
        info = os.lstat(name)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise FilesError(f'{option}: cannot read {name}: {error.strerror}', **{option: name}) from None
    if stat.S_ISLNK(info.st_mode):
        target = os.path.realpath(name)
        real_directory = os.path.realpath(directory)
        if os.path.commonpath([target, real_directory]) != real_directory:
            raise FilesError(
                f'{option}: {name} is a symlink to {target}, outside {real_directory}; refusing to follow a symlink '
                'out of the docroot (replace it with a regular file or a link inside the directory)',
                **{option: name}, link_target=target)
        if not os.path.isfile(target):
            raise FilesError(f'{option}: {name} is a symlink to {target}, which is not a regular file; refusing it',
                             **{option: name}, link_target=target)
        return True
    if not stat.S_ISREG(info.st_mode):
        raise FilesError(f'{option}: {name} exists but is not a regular file; refusing it', **{option: name})
    return True


def read_state(files: HealthCheckFiles) -> str:
    """``in_service``, ``out_of_service`` or ``missing``; refuses both names, a missing directory and bad symlinks."""
    if not os.path.isdir(files.directory):
        raise FilesError(f'path: the directory {files.directory} does not exist (path is {files.path!r})',
                         path=files.path)
    enabled = _check_entry('path', files.path, files.directory)
    disabled = _check_entry('disabled_path', files.disabled_path, files.directory)
    if enabled and disabled:
        raise FilesError(
            f'path: both {files.path} and {files.disabled_path} exist; refusing to choose one '
            '(remove the stale one)', path=files.path, disabled_path=files.disabled_path)
    if enabled:
        return IN_SERVICE
    return OUT_OF_SERVICE if disabled else MISSING


def _rename(source: str, destination: str) -> None:
    try:
        os.rename(source, destination)
    except OSError as error:
        raise FilesError(f'cannot rename {source} to {destination}: {error.strerror}') from None


def _create(path: str, content: str) -> None:
    """Write a new file under a temporary name, then rename it in: the server never serves half of it."""
    temporary = os.path.join(os.path.dirname(path), f'.{os.path.basename(path)}.{os.getpid()}.tmp')
    created = False
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0),
                             CREATED_MODE)
        created = True
        with os.fdopen(descriptor, 'wb') as handle:
            os.fchmod(descriptor, CREATED_MODE)
            handle.write(content.encode('utf-8'))
            handle.flush()
            os.fsync(descriptor)
        os.rename(temporary, path)
    except OSError as error:
        if created and os.path.lexists(temporary):
            os.unlink(temporary)
        raise FilesError(f'cannot create {path}: {error.strerror}', path=path) from None


@dataclasses.dataclass(frozen=True)
class Outcome:
    previous_state: str
    state: str

    @property
    def changed(self) -> bool:
        return self.state != self.previous_state


def set_state(files: HealthCheckFiles, desired: str, content: str | None = None, check_mode: bool = False) -> Outcome:
    """Bring the files to ``desired`` (``in_service`` or ``out_of_service``); in check mode only say what would change."""
    if desired not in (IN_SERVICE, OUT_OF_SERVICE):
        raise OptionError('state', desired, f'expected {IN_SERVICE} or {OUT_OF_SERVICE}')
    current = read_state(files)
    if current == desired:
        return Outcome(current, current)
    if current == MISSING and desired == OUT_OF_SERVICE:
        # A mistyped path would look exactly like this; passing here would leave the real file in service.
        raise FilesError(f'path: neither {files.path} nor {files.disabled_path} exists; nothing to take out of '
                         'service (check path)', path=files.path, disabled_path=files.disabled_path)
    if current == MISSING and content is None:
        raise FilesError(f'content: neither {files.path} nor {files.disabled_path} exists; give content to create '
                         'the file', path=files.path, disabled_path=files.disabled_path)
    if not check_mode:
        if current == MISSING:
            _create(files.path, t.cast(str, content))
        elif desired == IN_SERVICE:
            _rename(files.disabled_path, files.path)
        else:
            _rename(files.path, files.disabled_path)
    return Outcome(current, desired)


def state_diff(files: HealthCheckFiles, state: str) -> dict[str, t.Any]:
    """One side of the diff: the state and which name exists."""
    present = {IN_SERVICE: files.path, OUT_OF_SERVICE: files.disabled_path}.get(state)
    return {'state': state, 'present': present}


# --- verification over HTTP ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Probe:
    """One GET: the status when the server answered, else what went wrong."""

    status: int | None = None
    error: str | None = None


Getter = t.Callable[[str, float], Probe]


def http_get(url: str, timeout: float) -> Probe:
    """GET ``url`` the way an L4 checks it: no redirects followed, no proxy; every answer is a status."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == 'https':
        return _https_get(url, timeout)
    # Plain HTTP, as nearly every L4 checks: http.client is that request and nothing more, and a module run spares
    # the import of Ansible's URL library (tens of ms, on every step of a rollout).
    path = (parsed.path or '/') + (f'?{parsed.query}' if parsed.query else '')
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
    try:
        connection.request('GET', path, headers={'User-Agent': USER_AGENT, 'Connection': 'close'})
        response = connection.getresponse()
        response.read()
        return Probe(status=response.status)
    except (OSError, http.client.HTTPException, ValueError) as error:
        return Probe(error=_describe(error))
    finally:
        connection.close()


def _https_get(url: str, timeout: float) -> Probe:
    from ansible.module_utils.urls import ConnectionError as UrlConnectionError  # pylint: disable=import-outside-toplevel
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel
    try:
        response = open_url(url, method='GET', timeout=timeout, follow_redirects='none', use_proxy=False,
                            http_agent=USER_AGENT, use_netrc=False)
    except urllib.error.HTTPError as error:
        error.close()
        return Probe(status=error.code)
    except urllib.error.URLError as error:
        return Probe(error=str(error.reason))
    except (OSError, http.client.HTTPException, UrlConnectionError, ValueError) as error:
        return Probe(error=_describe(error))
    with response:
        return Probe(status=response.status)


def _describe(error: BaseException) -> str:
    reason = getattr(error, 'strerror', None) or str(error)
    return f'{type(error).__name__}: {reason}'.rstrip(': ')


def expected_status(state: str) -> str:
    return '200' if state == IN_SERVICE else 'a status other than 2xx'


def answers_as(state: str, probe: Probe) -> bool:
    """200 in service; out of service any HTTP status but 2xx (a refused connection proves nothing about the file)."""
    if probe.status is None:
        return False
    if state == IN_SERVICE:
        return probe.status == 200
    return not 200 <= probe.status < 300


def verify_url_option(url: t.Any) -> str:
    parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ('http', 'https') or not parsed.hostname:
        raise OptionError('verify_url', url, 'expected an http:// or https:// URL')
    return url


def verify(url: str, state: str, timeout: float, poll_interval: float, get: Getter = http_get,
           clock: Clock = SYSTEM_CLOCK) -> dict[str, t.Any]:
    """Poll ``url`` every ``poll_interval`` until it answers as ``state`` requires; limited to ``timeout``."""
    deadline = clock.monotonic() + timeout
    polled = poll_until(lambda: get(url, max(MIN_REQUEST_TIMEOUT, deadline - clock.monotonic())), lambda probe: answers_as(state, probe),
                        timeout, poll_interval, clock)
    probe = polled.last
    result = {'url': url, 'status': probe.status, 'attempts': polled.polls, 'elapsed': round(polled.elapsed, 3)}
    if polled.reached:
        return result
    seen = f'status {probe.status}' if probe.status is not None else f'error {probe.error}'
    raise VerifyError(
        f'verify_url: {url} did not answer {expected_status(state)} for {state} within {timeout:g} s; '
        f'last saw {seen} after {polled.polls} attempts',
        verify=dict(result, error=probe.error, expected=expected_status(state)))


def changed_at(files: HealthCheckFiles, outcome: Outcome, check_mode: bool, clock: Clock = SYSTEM_CLOCK) -> float:
    """When the file took its present name: the L4's checks answer accordingly from then on (``member_wait``'s ``since``).

    A rename sets the file's ctime, so an unchanged file still tells when it was put in or out.
    """
    if check_mode and outcome.changed:
        return clock.time()
    return os.stat(files.path if outcome.state == IN_SERVICE else files.disabled_path).st_ctime


# --- the whole task -----------------------------------------------------------------------

def start_command_option(argv: t.Any, state: str) -> list[str] | None:
    if argv is None:
        return None
    if state != IN_SERVICE:
        raise OptionError('start_command', argv, f'used only with state {IN_SERVICE}, not {state}')
    if not isinstance(argv, list) or not argv or not all(isinstance(word, str) and word for word in argv):
        raise OptionError('start_command', argv, 'expected a non-empty argv (a list of non-empty strings)')
    return argv


def _start(argv: list[str], unchanged: str, run_command: RunCommand, clock: Clock) -> dict[str, t.Any]:
    """The web server's start, timed; a failure leaves the file as it was (``unchanged`` says so), so the member stays out."""
    began = clock.monotonic()
    rc, out, err = run_command(argv)
    started = {'rc': rc, 'seconds': round(clock.monotonic() - began, 3)}
    if rc != 0:
        raise StartError(f'start_command {argv} exited {rc}: {(err or out).strip()[-500:]}. {unchanged}',
                         start=dict(started, stdout=out, stderr=err))
    return started


def run(params: t.Mapping[str, t.Any], check_mode: bool = False, want_diff: bool = False, get: Getter = http_get,
        clock: Clock = SYSTEM_CLOCK, run_command: RunCommand = run_argv) -> dict[str, t.Any]:
    """Validate, start, change, verify; the module's result. Raises HealthCheckError with the partial result in ``detail``."""
    files = health_check_files(params['path'], params.get('disabled_path'))
    state = params.get('state') or IN_SERVICE
    if state not in STATES:
        raise OptionError('state', state, f'expected one of {", ".join(STATES)}')
    url = params.get('verify_url')
    if url is not None:
        url = verify_url_option(url)
    timeout = seconds('verify_timeout', params.get('verify_timeout', DEFAULT_VERIFY_TIMEOUT))
    poll_interval = seconds('verify_poll_interval', params.get('verify_poll_interval', DEFAULT_POLL_INTERVAL))
    content = params.get('content')
    if content is not None and not isinstance(content, str):
        raise OptionError('content', content, 'expected a string')
    dsr_vip = _dsr.check_options(params.get('dsr_vip'), params.get('dsr_interface'))
    start_argv = start_command_option(params.get('start_command'), state)

    result: dict[str, t.Any] = {'path': files.path, 'disabled_path': files.disabled_path}
    if state == QUERY:
        current = read_state(files)
        result.update(changed=False, state=current, previous_state=current)
        if dsr_vip is not None:
            result['dsr'] = _dsr.findings(dsr_vip, params.get('dsr_interface'))
        # A pre-flight: the URL serves the file in service. Out of service proves nothing (its server may be stopped).
        if url is not None and current == IN_SERVICE:
            _verify_into(result, url, IN_SERVICE, timeout, poll_interval, get, clock)
        return result
    if state == IN_SERVICE and (start_argv is not None or dsr_vip is not None):
        # Read first, so that the files' own refusals come before the start and the DSR check; their refusals say what stays.
        unchanged = f'The health check stays {STATE_WORDS[read_state(files)]}: nothing was renamed'
        if start_argv is not None and not check_mode:
            # Before the rename, which lets the L4's checks pass.
            result['start'] = _start(start_argv, unchanged, run_command, clock)
        if dsr_vip is not None:
            # A member that cannot answer the VIP's clients stays out.
            result['dsr'] = _dsr.check(dsr_vip, params.get('dsr_interface'), refusal_note=unchanged)
    outcome = set_state(files, state, content, check_mode)
    # A start is a change, also when the file was in service already.
    result.update(changed=outcome.changed or start_argv is not None, state=outcome.state, previous_state=outcome.previous_state,
                  changed_at=changed_at(files, outcome, check_mode, clock))
    if want_diff:
        result['diff'] = {'before': state_diff(files, outcome.previous_state), 'after': state_diff(files, outcome.state)}
    if url is not None and not check_mode and (outcome.changed or params.get('verify_unchanged', True)):
        _verify_into(result, url, state, timeout, poll_interval, get, clock)
    return result


def _verify_into(result: dict[str, t.Any], url: str, state: str, timeout: float, poll_interval: float, get: Getter,
                 clock: Clock) -> None:
    try:
        result['verify'] = verify(url, state, timeout, poll_interval, get, clock)
    except VerifyError as error:
        error.detail = dict(result, **error.detail)
        raise
