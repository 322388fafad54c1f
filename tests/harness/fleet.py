"""A fleet of real web servers behind one L4 (the embedded emulator or a real HAProxy), and its inventory.

Test and benchmark only. Each member is a DAEMONIZED web server with its own pidfile, so that
the roles under test stop and start it with plain argv commands, as they would on a real host:
nginx (``DaemonNginx``: ``nginx -c <conf> -s quit`` stops it gracefully, idle keep-alive
connections get a FIN; ``nginx -c <conf>`` returns once daemonized) or the collection's embedded
real server (``DaemonRealServer``: ``--stop`` and ``--daemon``, the argv the ``embedded`` lookup
builds). The fleet writes the Ansible inventory that points the roles at its members and its
L4, and stops everything it started on exit, then insists nothing is left.

Addresses: nginx members on 127.0.0.11-18 (a fleet of more than 8 goes on at 127.0.4.1-56), embedded
members on 127.0.1.1-128 (both port 20500), the L4 on 127.0.0.150-153, ports 20500-20519. Loopback only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import ipaddress
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import typing as t
import urllib.request

import yaml

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.api import serve_control
from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile, up_window
from ansible_collections.l4vip.rollout.plugins.lookup import embedded
from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._realserver import VERSION_FILE
from ansible_collections.l4vip.rollout.tests.harness.ansible import pids_running
from ansible_collections.l4vip.rollout.tests.harness.emulator_thread import EmulatorThread, is_mark
from ansible_collections.l4vip.rollout.tests.harness.haproxy_log import HAProxyLogReceiver, Transition
from ansible_collections.l4vip.rollout.tests.harness.real_parts import (
    NGINX_BIN,
    NGINX_CONF,
    HAProxy,
    HarnessError,
    disabled_path,
    pid_alive,
    port_accepts,
    _short_socket_path,
    tail,
    wait_until,
)

NGINX, EMBEDDED = 'nginx', 'embedded'  # what serves a member (FleetOptions.members)
MEMBER_ADDRESSES = tuple(f'127.0.0.{i}' for i in range(11, 19))  # nginx members
# Nginx members past the eighth (the slot benchmark's 16, behind HAProxy): a range no test or benchmark uses otherwise.
NGINX_MEMBER_ADDRESSES = MEMBER_ADDRESSES + tuple(f'127.0.4.{i}' for i in range(1, 57))
EMBEDDED_MEMBER_ADDRESSES = tuple(f'127.0.1.{i}' for i in range(1, 129))  # embedded members: light enough for a fleet of 64+
MEMBER_PORT = 20500
# Members started or stopped at once: one at a time, 32 embedded servers take seconds to start (a Python start-up each).
CONCURRENCY = 16
VIP_ADDRESS = '127.0.0.150'  # the emulator's VIPs (one port per group) and its control API
VIP_PORTS = (20510, 20511)
CONTROL_PORT = 20519
EMULATOR_CHECK_SOURCE = '127.0.0.151'
HAPROXY_CHECK_SOURCE = '127.0.0.152'
HAPROXY_VIP = ('127.0.0.153', 20512)

EMULATOR, HAPROXY = 'emulator', 'haproxy'
# How often the roles' L4 modules ask the L4 (member_wait, session_drain): close on its heels.
POLL_INTERVAL = 0.05
# The profile every test starts from: the reference device's retry 1 and rise 1 with a 0.2 s interval.
SHORT_PROFILE = {'interval': 0.2, 'retry': 1, 'rise': 1, 'check_timeout': 0.15}


def deploy_tasks(more: str = '') -> str:
    """The deploy itself, as a user writes it: the new version into the docroot (a copy: about a
    second of module runs), and ``fleet_deploy_seconds`` more when a test sets it; then ``more`` tasks."""
    return f"""\
---
- name: Deploy | write the new version into the docroot
  ansible.builtin.copy:
    dest: "{{{{ fleet_docroot }}}}/index.html"
    content: "server={{{{ inventory_hostname }}}} version={{{{ fleet_version }}}}\\n"
    mode: '0644'

- name: Deploy | take a while, as a real deploy does
  ansible.builtin.command:
    argv: [sleep, "{{{{ fleet_deploy_seconds }}}}"]
  changed_when: false
  when: fleet_deploy_seconds is defined
{more}"""


DEPLOY_TASKS = deploy_tasks()


def emulator_transitions(control_url: str) -> list[Transition]:
    """Every time an emulator marked a member down or up (``is_mark``), from its event log, oldest first."""
    with urllib.request.urlopen(f'{control_url}/api/events', timeout=5) as answer:
        events = json.load(answer)
    return [Transition(e['member'], e['to'], e['at']) for e in events if is_mark(e)]


# --- a daemonized nginx member ----------------------------------------------------------

def daemon_conf(**values: t.Any) -> str:
    """The harness's nginx config (real_parts.NGINX_CONF), daemonized: nginx forks, writes its pidfile, returns."""
    conf = NGINX_CONF.format(**values)
    if 'daemon off;' not in conf:
        raise HarnessError('real_parts.NGINX_CONF no longer says "daemon off;": update daemon_conf()')
    return conf.replace('daemon off;', 'daemon on;')


class DaemonMember:
    """What the fleet and the tests use of a member, whatever serves it.

    A docroot in ``workdir`` with its health check file in service and ``index.html`` (what the
    deploy tasks write) saying ``server=<name> version=<version>``; the argv commands the roles
    get (``start_command``, ``stop_command``); ``start()`` (returns once it accepts connections),
    ``stop()`` (whatever state it is in; raises if it had to be killed) and ``leftover_pids()``.
    """

    version_path = '/'  # the URL path that answers with index.html's text (served_version)

    def __init__(self, name: str, address: str, port: int, workdir: pathlib.Path, version: str = '1') -> None:
        self.name, self.address, self.port = name, address, port
        self.workdir = workdir
        self.docroot = workdir / 'docroot'
        self.docroot.mkdir(parents=True, exist_ok=True)
        self.health_check_path.write_text('OK\n', encoding='utf-8')
        self.write_version(version)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.name!r}, {self.address}:{self.port})'

    @property
    def start_command(self) -> list[str]:
        raise NotImplementedError

    @property
    def stop_command(self) -> list[str]:
        raise NotImplementedError

    @property
    def health_check_path(self) -> pathlib.Path:
        return self.docroot / 'health_check.html'

    @property
    def disabled_health_check_path(self) -> pathlib.Path:
        return disabled_path(self.health_check_path)

    def disable_health_check(self) -> None:
        """Rename the health-check file away: the L7 check gets 404 from now on."""
        self.health_check_path.rename(self.disabled_health_check_path)

    def enable_health_check(self) -> None:
        self.disabled_health_check_path.rename(self.health_check_path)

    def url(self, path: str = '/') -> str:
        return f'http://{self.address}:{self.port}{path}'

    def write_version(self, version: str) -> None:
        (self.docroot / 'index.html').write_text(f'server={self.name} version={version}\n', encoding='utf-8')

    def served_version(self) -> str:
        """What this member answers with its deployed version right now, straight (not through the L4)."""
        with urllib.request.urlopen(self.url(self.version_path), timeout=2) as answer:
            return answer.read().decode().strip()

    def start(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def leftover_pids(self) -> list[int]:
        raise NotImplementedError


class DaemonNginx(DaemonMember):
    """One member: nginx started and stopped by argv commands (the ones the roles get), found by its pidfile."""

    def __init__(self, name: str, address: str, port: int, workdir: pathlib.Path, version: str = '1') -> None:
        self.conf_path = workdir / 'nginx.conf'
        self.pidfile = workdir / 'nginx.pid'
        self.error_log = workdir / 'error.log'
        self.pids_seen: set[int] = set()
        (workdir / 'tmp').mkdir(parents=True, exist_ok=True)
        super().__init__(name, address, port, workdir, version)
        self.conf_path.write_text(daemon_conf(workdir=workdir, docroot=self.docroot, name=name, address=address, port=port), encoding='utf-8')

    @property
    def access_log_path(self) -> pathlib.Path:
        return self.workdir / 'access.log'  # real_parts.NGINX_CONF's access_log

    @property
    def start_command(self) -> list[str]:
        # -e: the compiled-in error log (/var/log/nginx) is opened before the config is read.
        return [NGINX_BIN, '-c', str(self.conf_path), '-p', str(self.workdir), '-e', str(self.error_log)]

    @property
    def stop_command(self) -> list[str]:
        return [*self.start_command, '-s', 'quit']

    @property
    def force_stop_command(self) -> list[str]:
        # nginx's fast shutdown: open connections are closed, responses in flight cut.
        return [*self.start_command, '-s', 'stop']

    def master_pid(self) -> int | None:
        """The pidfile's master while it runs this member's config (nginx retitles itself: its config is in its title)."""
        return _process.pid_from_file(self.pidfile, lambda argv: str(self.conf_path) in ' '.join(argv))

    def pids(self) -> list[int]:
        """Master (from the pidfile, or any process run with this config) and its workers; remembered."""
        masters = set(pids_running(str(self.conf_path)))
        if (master := self.master_pid()) is not None:
            masters.add(master)
        found = [pid for master in masters for pid in (master, *_process.children(master))]
        self.pids_seen.update(found)
        return found

    def start(self, timeout: float = 5.0) -> None:
        result = subprocess.run(self.start_command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise HarnessError(f'{self!r}: {self.start_command} exited {result.returncode}: {result.stderr}\n{tail(self.error_log)}')
        wait_until(lambda: port_accepts(self.address, self.port), timeout, f'{self!r} accepting connections')
        self.pids()

    def stop(self, timeout: float = 5.0) -> None:
        """Whatever state the test left it in: graceful quit, then SIGKILL what is left. Never raises for a stopped one."""
        self.pids()  # remembered: what runs now is checked below
        graceful = True
        master = self.master_pid()
        if master is not None:
            # A daemonized nginx master leads its own process group (setsid), its workers in it.
            graceful = _process.terminate(master, timeout, signum=signal.SIGQUIT, whole_group=True)
        leftovers = self.leftover_pids()  # no master any more (killed by a test, say), or a process outside its group
        for pid in leftovers:
            _process.terminate(pid, _process.KILL_TIMEOUT, signum=signal.SIGKILL)
        problems = [f'did not quit within {timeout:g}s of SIGQUIT; its group killed'] if not graceful else []
        problems += [f'pids {leftovers} ran on without a master; killed'] if leftovers else []
        if problems:
            raise HarnessError(f'{self!r}: {"; ".join(problems)}\n{tail(self.error_log)}')

    def leftover_pids(self) -> list[int]:
        self.pids()
        return sorted(pid for pid in self.pids_seen if pid_alive(pid))


# --- a daemonized embedded real server member ---------------------------------------------

class DaemonRealServer(DaemonMember):
    """One member: the embedded real server, ``--daemon`` to start (returns once it listens), ``--stop`` to stop.

    It answers ``/`` from its docroot's VERSION file and serves index.html as a file: the deploy
    tasks write index.html, so ``version_path`` is /index.html. Its processes are found by the
    pidfile's path in their command line (its own, and its launcher's or a ``--stop``'s while they run).
    """

    version_path = '/index.html'

    def __init__(self, name: str, address: str, port: int, workdir: pathlib.Path, version: str = '1') -> None:
        self.pidfile = workdir / 'realserver.pid'
        self.log = workdir / 'realserver.log'
        super().__init__(name, address, port, workdir, version)

    @property
    def start_command(self) -> list[str]:
        return [*embedded.tool_argv('realserver'), '--daemon', '--name', self.name, '--listen', f'{self.address}:{self.port}',
                '--docroot', str(self.docroot), '--pidfile', str(self.pidfile), '--log', str(self.log)]

    @property
    def stop_command(self) -> list[str]:
        return [*embedded.tool_argv('realserver'), '--stop', '--pidfile', str(self.pidfile)]

    def write_version(self, version: str) -> None:
        super().write_version(version)
        (self.docroot / VERSION_FILE).write_text(f'{version}\n', encoding='utf-8')  # what it says on /

    def server_pid(self) -> int | None:
        """The pidfile's server while it runs with this pidfile."""
        return _process.pid_from_file(self.pidfile, str(self.pidfile))

    def start(self, timeout: float = 30.0) -> None:
        result = subprocess.run(self.start_command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise HarnessError(f'{self!r}: --daemon exited {result.returncode}: {result.stderr}\n{tail(self.log)}')
        wait_until(lambda: port_accepts(self.address, self.port), 5.0, f'{self!r} accepting connections')

    def stop(self, timeout: float = 5.0) -> None:
        """Whatever state the test left it in: SIGTERM (graceful, as --stop), then SIGKILL what is left. Never raises for a stopped one."""
        graceful = True
        pid = self.server_pid()
        if pid is not None:
            graceful = _process.terminate(pid, timeout)
        leftovers = self.leftover_pids()  # a server whose pidfile is gone, a launcher stuck
        for left in leftovers:
            _process.terminate(left, _process.KILL_TIMEOUT, signum=signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)  # a killed server leaves it behind
        problems = [f'did not stop within {timeout:g}s of SIGTERM; killed'] if not graceful else []
        problems += [f'pids {leftovers} ran on without the pidfile naming them; killed'] if leftovers else []
        if problems:
            raise HarnessError(f'{self!r}: {"; ".join(problems)}\n{tail(self.log)}')

    def leftover_pids(self) -> list[int]:
        # Only what names this pidfile now: a pid seen earlier may be another process's by now (pids wrap).
        return [pid for pid in pids_running(str(self.pidfile)) if pid_alive(pid) and pid != os.getpid()]


MEMBER_KINDS: dict[str, type[DaemonMember]] = {NGINX: DaemonNginx, EMBEDDED: DaemonRealServer}
MEMBER_ADDRESSES_OF = {NGINX: NGINX_MEMBER_ADDRESSES, EMBEDDED: EMBEDDED_MEMBER_ADDRESSES}


def each_member(action: t.Callable[[DaemonMember], t.Any], members: t.Sequence[DaemonMember]) -> list[str]:
    """``action`` on every member, CONCURRENCY at a time (each waits on its own commands); the errors, each naming its member."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        futures = [(member, pool.submit(action, member)) for member in members]
    return [f'{member!r}: {future.exception()}' for member, future in futures if future.exception() is not None]


# --- the L4 in front ----------------------------------------------------------------------

class EmulatorL4:
    """The embedded emulator, in-process, one VIP per group (on ``vip_address``, ports ``vip_ports`` in order)."""

    kind = EMULATOR

    def __init__(self, groups: dict[str, list[DaemonMember]], profile: dict[str, t.Any], check_source: str, *,
                 vip_address: str = VIP_ADDRESS, vip_ports: t.Sequence[int] = VIP_PORTS,
                 control: tuple[str, int] = (VIP_ADDRESS, CONTROL_PORT), seed: int = 1) -> None:
        if len(groups) > len(vip_ports):
            raise HarnessError(f'at most {len(vip_ports)} VIPs, got {len(groups)}')
        self.groups = groups
        vips = [{'name': group, 'listen': f'{vip_address}:{port}',
                 'members': [{'name': m.name, 'address': f'{m.address}:{m.port}'} for m in members]}
                for (group, members), port in zip(groups.items(), vip_ports)]
        self.thread = EmulatorThread({'vips': vips, 'profile': profile, 'control': f'{control[0]}:{control[1]}',
                                      'check_source': check_source, 'seed': seed})
        self.check_source = check_source

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.thread.stop()

    @property
    def control_url(self) -> str:
        return self.thread.emulator.control_url

    def vip(self, group: str) -> tuple[str, int]:
        endpoint = self.thread.emulator.vip_endpoint(group)
        return endpoint.host, endpoint.port

    def provider(self, group: str, member: str) -> dict[str, t.Any]:
        return {'provider': EMULATOR, 'endpoint': self.control_url, 'pool': group, 'member': member}

    def api(self, path: str) -> t.Any:
        with urllib.request.urlopen(self.control_url + path, timeout=5) as answer:
            return json.load(answer)

    def bound(self, group: str) -> dict[str, bool]:
        return {m['name']: m['bound'] for m in self.api(f'/api/vips/{group}')['members']}

    def events(self, kind: str = 'health') -> list[dict[str, t.Any]]:
        """The emulator's event log (oldest first): health transitions unless ``kind`` says otherwise."""
        return [event for event in self.api('/api/events') if event['kind'] == kind]

    def transitions(self) -> list[Transition]:
        """Every time the emulator marked a member down or up, from its own event log."""
        return emulator_transitions(self.control_url)

    # The control API alone can vanish (fault tests): the VIPs, health checks and sessions go on.
    def close_control_api(self) -> None:
        """Stop listening for the control API (new API connections are refused); the data path is untouched."""
        emulator = self.thread.emulator

        async def close() -> None:
            if emulator.control is not None:
                emulator.control.close()
                await asyncio.wait_for(emulator.control.wait_closed(), 2.0)
        self.thread.run(close())

    def reopen_control_api(self) -> None:
        """Listen for the control API again, on the same address and port."""
        emulator = self.thread.emulator

        async def reopen() -> None:
            emulator.control = await serve_control(emulator, emulator.control_endpoint)
        self.thread.run(reopen())

    def control_api_accepts(self) -> bool:
        endpoint = self.thread.emulator.control_endpoint
        return port_accepts(endpoint.host, endpoint.port)[0]


class HAProxyL4:
    """A real HAProxy (mode tcp, retries 0) for one group, its checks from their own source address."""

    kind = HAPROXY

    def __init__(self, workdir: pathlib.Path, groups: dict[str, list[DaemonMember]], profile: dict[str, t.Any], check_source: str, *,
                 frontend: tuple[str, int] = HAPROXY_VIP) -> None:
        if len(groups) != 1:
            raise HarnessError(f'the HAProxy L4 serves one group, got {sorted(groups)}')
        (self.group, members), = groups.items()
        # HAProxy's log says when it marked a member down or up (transitions()).
        self.log = HAProxyLogReceiver(_short_socket_path(workdir / 'haproxy-log.sock'))
        self.haproxy = HAProxy(workdir, parse_profile(profile), frontend, [(m.name, m.address, m.port) for m in members],
                               backend=self.group, check_source=check_source, log_socket=self.log.path)
        self.check_source = check_source

    def start(self) -> None:
        self.haproxy.check_config()
        self.log.open()
        self.haproxy.start()

    def stop(self) -> None:
        try:
            self.haproxy.stop()
        finally:
            self.log.close()
            if self.log.path.parent != self.haproxy.workdir:  # _short_socket_path's own dir
                shutil.rmtree(self.log.path.parent, ignore_errors=True)
        if self.haproxy.leftover_pids():
            raise HarnessError(f'{self.haproxy!r}: pids {self.haproxy.leftover_pids()} still alive')

    def vip(self, group: str) -> tuple[str, int]:
        return self.haproxy.frontend

    def provider(self, group: str, member: str) -> dict[str, t.Any]:
        return {'provider': HAPROXY, 'endpoint': str(self.haproxy.socket_path), 'pool': group, 'member': member}

    def bound(self, group: str) -> dict[str, bool]:
        return {name: self.haproxy.member_state(name) == 'up' for name, _address, _port in self.haproxy.members}

    def transitions(self) -> list[Transition]:
        """Every time HAProxy marked a member down or up, from its own log."""
        return list(self.log.transitions)


# --- the fleet ----------------------------------------------------------------------------

@dataclasses.dataclass
class FleetOptions:
    groups: dict[str, int] = dataclasses.field(default_factory=lambda: {'web': 4})
    l4: str = EMULATOR
    profile: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    # More keys of the role's ..._l4 (admin_disable), over the fleet's (poll_interval: POLL_INTERVAL unless given here).
    l4_extra: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    firewall: bool = False  # the L4 role's health_check_sources: [the L4's check source]
    deploy_tasks: str = DEPLOY_TASKS  # the user's deploy tasks file, as text (fault tests break it)
    host_vars: dict[str, dict[str, t.Any]] = dataclasses.field(default_factory=dict)  # per member name: variables set over the fleet's
    members: str = NGINX  # what serves each member: NGINX (DaemonNginx) or EMBEDDED (DaemonRealServer)
    addresses: tuple[str, ...] = ()  # the members' addresses, in order (loopback); empty: the kind's own (MEMBER_ADDRESSES_OF)


class Fleet:
    """Members (nginx on 127.0.0.11-18 then 127.0.4.1.., or embedded servers on 127.0.1.1..) in VIP groups, one L4 in front, and the
    inventory for the roles.

    ``with Fleet(tmp_path, FleetOptions(...)) as fleet:`` starts the members (CONCURRENCY at a
    time), then the L4, and returns once the L4 binds every member; leaving the block stops all of
    it, whatever state the test left it in, and raises if any member's or HAProxy's process survived.
    """

    def __init__(self, tmp_path: pathlib.Path, options: FleetOptions | None = None) -> None:
        self.tmp_path = tmp_path
        self.options = options or FleetOptions()
        self.profile = dict(SHORT_PROFILE, **self.options.profile)
        self.health_check = self.profile.get('health_check', 'l7')
        self.role_prefix = 'l4_vip_deploy_' if self.health_check == 'l4' else 'l7_vip_deploy_'
        if self.options.members not in MEMBER_KINDS:
            raise HarnessError(f'members: expected one of {sorted(MEMBER_KINDS)}, got {self.options.members!r}')
        self.addresses = self.options.addresses or MEMBER_ADDRESSES_OF[self.options.members]
        if len(set(self.addresses)) != len(self.addresses) or not all(ipaddress.ip_address(a).is_loopback for a in self.addresses):
            raise HarnessError(f'member addresses: expected distinct loopback addresses, got {self.addresses}')
        if sum(self.options.groups.values()) > len(self.addresses):
            raise HarnessError(f'at most {len(self.addresses)} members, asked for {self.options.groups}')
        self.groups: dict[str, list[DaemonMember]] = {}
        self.l4: EmulatorL4 | HAProxyL4 | None = None
        self._started: list[DaemonMember] = []

    # lifecycle
    def __enter__(self) -> Fleet:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        self.close()

    def _start(self) -> None:
        kind = MEMBER_KINDS[self.options.members]
        addresses = iter(self.addresses)
        number = 0
        for group, count in self.options.groups.items():
            self.groups[group] = []
            while len(self.groups[group]) < count:
                number += 1
                self.groups[group].append(kind(f'web{number}', next(addresses), MEMBER_PORT, self.tmp_path / f'web{number}'))
        self._started = list(self.members)  # each stopped on close, whether its start got far or not
        errors = each_member(lambda member: member.start(), self._started)
        if errors:
            raise HarnessError('starting the members:\n' + '\n'.join(errors))
        if self.options.l4 == HAPROXY:
            self.l4 = HAProxyL4(self.tmp_path / 'haproxy', self.groups, self.profile, HAPROXY_CHECK_SOURCE)
        else:
            self.l4 = EmulatorL4(self.groups, self.profile, EMULATOR_CHECK_SOURCE)
        self.l4.start()
        self.wait_all_bound()

    def close(self) -> None:
        """Stop the L4, then every member; raise if anything could not be stopped or is still running."""
        errors = []
        if self.l4 is not None:
            try:
                self.l4.stop()
            except Exception as exc:  # pylint: disable=broad-exception-caught  # keep stopping the members
                errors.append(f'L4: {exc}')
            self.l4 = None
        errors.extend(each_member(lambda member: member.stop(), self._started[::-1]))
        for member in self._started:
            errors.extend(f'{member!r}: pid {pid} still alive' for pid in member.leftover_pids())
        self._started = []
        if errors:
            raise HarnessError('stopping the fleet:\n' + '\n'.join(errors))

    # facts
    @property
    def members(self) -> list[DaemonMember]:
        return [member for members in self.groups.values() for member in members]

    def member(self, name: str) -> DaemonMember:
        return next(member for member in self.members if member.name == name)

    def group_of(self, name: str) -> str:
        return next(group for group, members in self.groups.items() if any(m.name == name for m in members))

    def vip(self, group: str | None = None) -> tuple[str, int]:
        return self.l4.vip(group or next(iter(self.groups)))

    def wait_all_bound(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = up_window(parse_profile(self.profile)).high + 3.0
        for group in self.groups:
            wait_until(lambda group=group: (all((seen := self.l4.bound(group)).values()), seen), timeout, f'{group}: every member bound')

    # the inventory
    def write_deploy_tasks(self) -> pathlib.Path:
        path = self.tmp_path / 'deploy.yml'
        path.write_text(self.options.deploy_tasks, encoding='utf-8')
        return path

    def host_vars(self, member: DaemonMember, deploy_tasks: pathlib.Path) -> dict[str, t.Any]:
        """The role's variables for one member (prefixed for the role the profile's health check picks)."""
        prefix = self.role_prefix
        variables: dict[str, t.Any] = {
            f'{prefix}l4': {**self.l4.provider(self.group_of(member.name), member.name), 'poll_interval': POLL_INTERVAL, **self.options.l4_extra},
            f'{prefix}service_port': member.port,
            f'{prefix}service_address': member.address,
            f'{prefix}stop_command': member.stop_command,
            f'{prefix}start_command': member.start_command,
            f'{prefix}deploy_tasks': str(deploy_tasks),
            f'{prefix}drain_timeout': 10,
            'fleet_docroot': str(member.docroot),
        }
        if self.health_check == 'l7':
            variables[f'{prefix}health_check_path'] = str(member.health_check_path)
            variables[f'{prefix}health_check_url'] = member.url('/health_check.html')
        elif self.options.firewall:
            variables[f'{prefix}health_check_sources'] = [self.l4.check_source]
        variables.update(self.options.host_vars.get(member.name, {}))
        return variables

    def write_inventory(self) -> pathlib.Path:
        """inventory.yml: one group per VIP, hosts web1.. on the local connection with this interpreter."""
        deploy_tasks = self.write_deploy_tasks()
        inventory = {'all': {
            # Pipelining: fewer temp files per task, so the rollout's steps follow each other closer.
            'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable, 'ansible_pipelining': True,
                     'rolling_deploy_profile': self.profile},
            'children': {group: {'hosts': {m.name: self.host_vars(m, deploy_tasks) for m in members}}
                         for group, members in self.groups.items()},
        }}
        path = self.tmp_path / 'inventory.yml'
        path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding='utf-8')
        return path
