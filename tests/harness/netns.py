"""Several hosts on one machine: web hosts and an L4 host in network + mount namespaces, reached over real SSH.

Test and benchmark only; needs root. ``with NetnsFleet(tmp_path, NetnsOptions(members=3)) as fleet:``
builds, in well under two seconds (3 or 8 web hosts; teardown under half a second):

- a bridge ``l4vbr0`` in the root namespace (198.18.0.1/24, the controller's side), with a veth
  pair to each namespace below;
- web hosts ``web1..N`` (namespaces ``l4v-web1..``, 198.18.0.11..): each a network, mount and UTS
  namespace kept alive by a holder process, with private /srv, /tmp, /root and /run (so the
  controller's tmp dirs are not there), a real sshd (key-only root login) and a daemonized nginx
  in Debian's own layout (/etc/nginx/nginx.conf, /var/www/html, /run/nginx.pid's place set in
  its config), each path the host's private copy;
- the LB namespace ``l4v-lb`` (198.18.0.2, the VIP 198.18.0.10:80): a real HAProxy (mode tcp,
  retries 0) whose runtime API is a unix socket on the controller's filesystem (the web hosts'
  /tmp is private: they cannot reach it) and ``127.0.0.1:9999`` inside the LB namespace only; with
  ``l4_host_ssh`` an sshd there too, so that Ansible can run L4 steps on the LB host;
- an SSH key pair and ``write_inventory()`` for Ansible.

Addresses: 198.18.0.0/24 inside the namespaces and on the bridge, 127/8 inside the namespaces;
no IPv6 (not even link-local). Everything the fleet starts lives in one of its network
namespaces, so teardown kills every process in them, removes them, the bridge and the veths,
and then insists nothing is left. A run killed half-way is cleaned up by the next one
(``cleanup_leftovers``); a lock lets one fleet at a time run on the machine. Where br_netfilter
hands bridged frames to an iptables FORWARD chain that may drop them (hosts with Docker), one
ACCEPT rule for the bridge is inserted while the fleet runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import typing as t
import urllib.request

import yaml

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import parse_profile, up_window
from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.tests.harness import environment
from ansible_collections.l4vip.rollout.tests.harness.ansible import CALLBACKS, PLAYBOOK_BIN, PlaybookRun, pids_running
from ansible_collections.l4vip.rollout.tests.harness.fleet import DEPLOY_TASKS, POLL_INTERVAL, SHORT_PROFILE, HAProxyL4, daemon_conf
from ansible_collections.l4vip.rollout.tests.harness.haproxy_log import HAProxyLogReceiver
from ansible_collections.l4vip.rollout.tests.harness.real_parts import (
    NGINX_BIN,
    HAProxy,
    HarnessError,
    _Process,
    bound_state,
    pid_alive,
    port_accepts,
    tail,
    wait_until,
)

NETNS_PREFIX = 'l4v-'  # network namespaces: l4v-web1.., l4v-lb
VETH_PREFIX = 'l4vh-'  # the root namespace's end of each veth pair (the other end is eth0)
BRIDGE = 'l4vbr0'
# In the command line of every holder, in the name of the run dir (so in every ssh ControlPath),
# and the source of every tmpfs the hosts mount: what a later run looks for to clean up.
MARKER = 'l4vip-netns-'
LOCK_PATH = pathlib.Path(tempfile.gettempdir()) / 'l4vip-netns.lock'

CONTROLLER_ADDRESS = '198.18.0.1'
LB_ADDRESS = '198.18.0.2'
SECOND_CONTROLLER = 'ctl2'  # another controller: its own network, hostname, pids, home and Ansible dirs
SECOND_CONTROLLER_ADDRESS = '198.18.0.3'
VIP = ('198.18.0.10', 80)
WEB_BASE = 10  # web{i} is 198.18.0.{WEB_BASE + i}
MAX_MEMBERS = 240
WEB_PORT = 80
SSH_PORT = 22
LB_RUNTIME_PORT = 9999  # the LB-local runtime API: 127.0.0.1 inside l4v-lb only
GROUP = 'web'  # the inventory group and HAProxy backend
LB = 'lb'

HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
IP_BIN = shutil.which('ip', path=HOST_PATH)
IPTABLES_BIN = shutil.which('iptables', path=HOST_PATH)
# Where br_netfilter hands bridged traffic to iptables and FORWARD may drop it (Docker's hosts: policy DROP),
# this rule, first in FORWARD while the fleet runs, lets our hosts talk to each other.
FORWARD_RULE = ['FORWARD', '-i', BRIDGE, '-o', BRIDGE, '-m', 'comment', '--comment', f'{MARKER}bridge', '-j', 'ACCEPT']
# Processes started on a host get this environment, not the controller's (no pytest paths leak in).
HOST_ENV = ['env', '-i', f'PATH={HOST_PATH}', 'LANG=C.UTF-8']
SSHD_BIN = '/usr/sbin/sshd'
HOST_PYTHON = '/usr/bin/python3'

# Run in the new namespaces by `ip netns exec NS unshare --mount --uts ...`; $0 marker, $1 host name,
# $2 addresses (space-separated), $3 "host" for a /tmp and /root of its own ("controller": the machine's, where
# the checkout, the venv and its interpreter are), then directories to hide. Ends as a `sleep` that holds the
# namespaces.
HOLDER_SCRIPT = r'''
set -eu
marker=$0 name=$1 addresses=$2 kind=$3
shift 3
# IPv4 only: no IPv6 address at all, link-local included.
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || true
ip link set lo up
for address in $addresses; do ip addr add "$address/24" dev eth0; done
ip link set eth0 up
hostname "$name"
# Private /srv (configs, docroot), /run, and for a host /tmp (hides the controller's tmp dirs) and /root.
[ -d /srv ] || mkdir /srv
mount -t tmpfs -o mode=0755 "$marker" /srv
if [ "$kind" = host ]; then
    mount -t tmpfs -o mode=1777 "$marker" /tmp
    mount -t tmpfs -o mode=0700 "$marker" /root
    # Debian's nginx layout, the host's own: a guide's paths (/etc/nginx, /var/www/html) work as printed.
    for private in /etc/nginx /var/www /var/log/nginx /var/lib/nginx; do
        if [ -d "$private" ]; then mount -t tmpfs -o mode=0755 "$marker" "$private"; fi
    done
fi
mount -t tmpfs -o mode=0755 "$marker" /run
for hide in "$@"; do
    if [ -d "$hide" ]; then mount -t tmpfs -o mode=0700,size=1m "$marker" "$hide"; fi
done
mkdir -m 0755 /run/sshd /srv/ssh
: > /srv/.ready
cd /
exec -a "$marker" sleep infinity
'''

SSHD_CONFIG = """\
# {name}: key-only root login on its own address; keys and config in the host's private /srv.
ListenAddress {address}:{port}
HostKey /srv/ssh/host_ed25519_key
AuthorizedKeysFile /srv/ssh/authorized_keys
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
# Ansible opens several sessions at once (forks, ControlPersist).
MaxStartups 100
MaxSessions 100
Subsystem sftp internal-sftp
"""


def require_netns() -> None:
    """Skip unless this runs as root with `ip netns` (the only reasons to skip); on CI, fail instead: there it must run."""
    environment.require_root('the netns topology creates network and mount namespaces')
    if IP_BIN is None or subprocess.run([IP_BIN, 'netns', 'list'], capture_output=True, check=False).returncode != 0:
        environment.missing('the netns topology needs `ip netns` (iproute2)')


# --- the machine's state: what we created, and cleaning it up -----------------------------

def _ip_batch(lines: t.Iterable[str], force: bool = False) -> None:
    """Many `ip` commands in one process (each line is an `ip` command without `ip`)."""
    script = ''.join(f'{line}\n' for line in lines)
    if not script:
        return
    result = subprocess.run([IP_BIN, *(['-force'] if force else []), '-batch', '-'], input=script, capture_output=True, text=True,
                            timeout=30, check=False)
    if result.returncode != 0 and not force:
        raise HarnessError(f'ip -batch failed ({result.returncode}): {result.stderr.strip()}\nscript:\n{script}')


def bridge_filtered() -> bool:
    """Whether iptables sees traffic between our namespaces (br_netfilter) and FORWARD is anything but a plain ACCEPT."""
    try:
        if pathlib.Path('/proc/sys/net/bridge/bridge-nf-call-iptables').read_text(encoding='ascii').strip() != '1':
            return False
    except OSError:
        return False  # no br_netfilter: bridged frames never meet iptables
    if IPTABLES_BIN is None:
        raise HarnessError('br_netfilter passes bridged traffic to iptables, and iptables (to let it through) is missing')
    rules = subprocess.run([IPTABLES_BIN, '-w', '-S', 'FORWARD'], capture_output=True, text=True, timeout=10, check=True).stdout.split()
    return rules != ['-P', 'FORWARD', 'ACCEPT']


def remove_forward_rules() -> None:
    """Delete our FORWARD rule (every copy of it), if iptables is there at all."""
    if IPTABLES_BIN is not None:
        for _attempt in range(10):
            if subprocess.run([IPTABLES_BIN, '-w', '-D', *FORWARD_RULE], capture_output=True, timeout=10, check=False).returncode != 0:
                break


def our_namespaces() -> list[str]:
    try:
        return sorted(name for name in os.listdir('/run/netns') if name.startswith(NETNS_PREFIX))
    except FileNotFoundError:
        return []


def our_links() -> list[str]:
    """Our bridge and veth ends in the root namespace."""
    return sorted(name for name in os.listdir('/sys/class/net') if name == BRIDGE or name.startswith(VETH_PREFIX))


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(f'/run/netns/{name}').st_ino
    except FileNotFoundError:
        return None


def pids_in_netns(inodes: t.Collection[int]) -> list[int]:
    """Live processes whose network namespace is one of ``inodes``."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                inode = os.stat(f'/proc/{entry}/ns/net').st_ino
            except OSError:
                continue
            if inode in inodes and pid_alive(int(entry)):
                found.append(int(entry))
    return found


def marked_pids() -> list[int]:
    """Processes that carry the marker in their command line (holders, ssh ControlPersist masters)."""
    ours = {os.getpid(), os.getppid()}  # never this process or whoever started it, whatever their arguments
    return [pid for pid in pids_running(MARKER) if pid not in ours and pid_alive(pid)]


def _kill_until_gone(find: t.Callable[[], list[int]], what: str, timeout: float = 5.0) -> None:
    def check() -> tuple[bool, list[int]]:
        pids = find()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not pids, pids
    wait_until(check, timeout, f'{what}: every process killed', poll=0.05)


def cleanup_leftovers() -> None:
    """Remove whatever an earlier (killed) run left: its processes, namespaces, veths and bridge."""
    inodes = {inode for name in our_namespaces() if (inode := netns_inode(name)) is not None}
    _kill_until_gone(lambda: pids_in_netns(inodes) + marked_pids(), 'leftovers of an earlier run')
    _ip_batch([*(f'link del {link}' for link in our_links()), *(f'netns del {name}' for name in our_namespaces())], force=True)
    remove_forward_rules()
    for run_dir in pathlib.Path(tempfile.gettempdir()).glob(f'{MARKER}run-*'):
        shutil.rmtree(run_dir, ignore_errors=True)
    if our_namespaces() or our_links():
        raise HarnessError(f'could not clean up an earlier run: namespaces {our_namespaces()}, links {our_links()}')


# --- one host: a holder process keeps its namespaces --------------------------------------

class NetnsHost:
    """A host: network, mount and UTS namespace, held by a ``sleep``; optionally an sshd.

    ``own_pids``: a pid namespace of its own too (with its own /proc), as a container has - its processes cannot be
    looked at from the other hosts. ``controller``: the machine's /tmp and /root instead of its own, so that the
    checkout, the venv and its interpreter stay in reach wherever they are (its home is then under its /srv).
    """

    def __init__(self, name: str, addresses: list[str], workdir: pathlib.Path, own_pids: bool = False, controller: bool = False) -> None:
        self.name = name
        self.own_pids = own_pids
        self.controller = controller
        self.address = addresses[0]
        self.addresses = addresses
        self.netns = f'{NETNS_PREFIX}{name}'
        self.veth = f'{VETH_PREFIX}{name}'
        self.workdir = workdir  # on the controller: the outputs of the holder and sshd
        workdir.mkdir(parents=True, exist_ok=True)
        self.holder = _Process(f'holder of {name}', workdir / 'holder.out')
        self.sshd = _Process(f'sshd on {name}', workdir / 'sshd.out')

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.name!r}, {self.address})'

    def start_holder(self, hide: list[str]) -> None:
        pids = ['--pid', '--fork', '--mount-proc'] if self.own_pids else []
        self.holder.spawn([*HOST_ENV, 'ip', 'netns', 'exec', self.netns, 'unshare', '--mount', '--uts', *pids, '--propagation', 'private',
                           '--', 'bash', '-c', HOLDER_SCRIPT, f'{MARKER}holder-{self.name}', self.name, ' '.join(self.addresses),
                           'controller' if self.controller else 'host', *hide],
                          cwd=pathlib.Path('/'))

    @property
    def namespace_pid(self) -> int:
        """A process inside every namespace of the host: the holder, or with its own pids the holder's child (pid 1 there)."""
        if not self.own_pids:
            return self.holder.pid
        children = _process.children(self.holder.pid)
        if not children:
            raise HarnessError(f'{self.name}: the holder has no child in its pid namespace yet')
        return children[0]

    def holder_ready(self) -> tuple[bool, str]:
        if not self.holder.is_running:
            return False, f'{self.name}: holder exited {self.holder.proc.returncode}: {tail(self.holder.log_path)}'
        return self.path('/srv/.ready').exists(), f'{self.name}: no /srv/.ready yet'

    def path(self, path: str) -> pathlib.Path:
        """``path`` as this host sees it (its private /srv, say), reachable from the controller through /proc."""
        return pathlib.Path(f'/proc/{self.holder.pid}/root') / path.lstrip('/')

    def argv(self, argv: t.Sequence[str]) -> list[str]:
        """``argv`` run inside this host (its namespaces, its /, a clean environment)."""
        return ['nsenter', '-t', str(self.namespace_pid), '-m', '-n', '-u', *(['-p'] if self.own_pids else []), '--wd=/', '--', *HOST_ENV,
                *argv]

    def run(self, argv: t.Sequence[str], timeout: float = 10.0, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout, check=False, cwd='/')
        if check and result.returncode != 0:
            raise HarnessError(f'{self.name}: {list(argv)} exited {result.returncode}: {result.stdout}{result.stderr}')
        return result

    def prepare_sshd(self, authorized_key: str) -> subprocess.Popen[bytes]:
        """Its sshd_config and authorized key; returns the ssh-keygen making its host key (wait for it)."""
        self.path('/srv/ssh/sshd_config').write_text(SSHD_CONFIG.format(name=self.name, address=self.address, port=SSH_PORT),
                                                     encoding='utf-8')
        self.path('/srv/ssh/authorized_keys').write_text(authorized_key, encoding='utf-8')
        # pylint: disable-next=consider-using-with  # the caller waits
        return subprocess.Popen(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', self.name, '-f',
                                 str(self.path('/srv/ssh/host_ed25519_key'))], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def start_sshd(self) -> None:
        self.sshd.spawn(self.argv([SSHD_BIN, '-D', '-e', '-f', '/srv/ssh/sshd_config']), cwd=pathlib.Path('/'))

    def sshd_ready(self) -> tuple[bool, str]:
        if not self.sshd.is_running:
            return False, f'{self.name}: sshd exited {self.sshd.proc.returncode}: {tail(self.sshd.log_path)}'
        accepted, seen = port_accepts(self.address, SSH_PORT)
        return accepted, f'{self.name} ssh: {seen}'

    def reap(self) -> None:
        """Wait for the processes we started (killed by then), so none stays a zombie."""
        for process in (self.holder, self.sshd):
            if process.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.proc.wait(2)

    def leftover_pids(self) -> list[int]:
        return self.holder.leftover_pids() + self.sshd.leftover_pids()


class WebHost(NetnsHost):
    """A web host: nginx daemonized from Debian's own paths (the host's private copies), started and stopped by argv commands."""

    conf = '/etc/nginx/nginx.conf'  # nginx's compiled-in default: `nginx` and `nginx -s quit` need no -c
    docroot = '/var/www/html'
    nginx_dir = '/var/lib/nginx'  # pidfile, logs and temp files

    def __init__(self, name: str, address: str, workdir: pathlib.Path) -> None:
        super().__init__(name, [address], workdir)
        self.port = WEB_PORT

    @property
    def start_command(self) -> list[str]:
        return [NGINX_BIN]

    @property
    def stop_command(self) -> list[str]:
        return [NGINX_BIN, '-s', 'quit']  # graceful: idle keep-alive connections get a FIN, requests in flight finish

    @property
    def health_check_path(self) -> str:
        return f'{self.docroot}/health_check.html'

    def url(self, path: str = '/') -> str:
        return f'http://{self.address}:{self.port}{path}'

    def prepare_nginx(self, version: str = '1') -> None:
        self.path(f'{self.nginx_dir}/tmp').mkdir(parents=True)
        self.path(self.docroot).mkdir()
        self.path(self.conf).write_text(daemon_conf(workdir=self.nginx_dir, docroot=self.docroot, name=self.name, address=self.address,
                                                    port=self.port), encoding='utf-8')
        self.path(self.health_check_path).write_text('OK\n', encoding='utf-8')
        self.write_version(version)

    def write_version(self, version: str) -> None:
        self.path(f'{self.docroot}/index.html').write_text(f'server={self.name} version={version}\n', encoding='utf-8')

    def served_version(self) -> str:
        """What this host's nginx answers on / right now, straight (not through the L4)."""
        with urllib.request.urlopen(self.url(), timeout=2) as answer:
            return answer.read().decode().strip()

    def nginx_pids(self) -> list[int]:
        """nginx master and workers on this host (pidfile paths are the same on every host: look by namespace)."""
        inode = netns_inode(self.netns)
        found = []
        for pid in pids_in_netns({inode} if inode else set()):
            with contextlib.suppress(OSError):
                if pathlib.Path(f'/proc/{pid}/comm').read_text(encoding='ascii').strip() == 'nginx':
                    found.append(pid)
        return found

    def nginx_ready(self) -> tuple[bool, str]:
        accepted, seen = port_accepts(self.address, self.port)
        return accepted, f'{self.name} nginx: {seen}; error log: {tail(self.path(f"{self.nginx_dir}/error.log"), 3)}'


# --- the L4: HAProxy in the LB namespace -----------------------------------------------------

class NetnsL4(HAProxyL4):
    """HAProxy in ``l4v-lb``: members are the web hosts; runtime API on the controller's fs and on the LB's loopback.

    Starts, stops and reports transitions as the one-machine fleet's HAProxyL4 does; only where it runs differs.
    """

    def __init__(self, workdir: pathlib.Path, run_dir: pathlib.Path, members: list[WebHost], profile: dict[str, t.Any],
                 host: NetnsHost) -> None:  # pylint: disable=super-init-not-called  # the same parts, built for the LB host
        self.host = host  # the LB host (its sshd runs only with l4_host_ssh)
        self.group = GROUP
        self.check_source = None
        self.local_endpoint = f'127.0.0.1:{LB_RUNTIME_PORT}'
        # A unix datagram socket is a file: HAProxy in another network namespace logs to it all the same.
        self.log = HAProxyLogReceiver(run_dir / 'haproxy-log.sock')
        self.haproxy = HAProxy(workdir, parse_profile(profile), VIP, [(m.name, m.address, m.port) for m in members], backend=GROUP,
                               log_socket=self.log.path, extra_global=[f'stats socket ipv4@{self.local_endpoint} level admin'],
                               prefix=[IP_BIN, 'netns', 'exec', host.netns])
        self.socket_path = self.haproxy.socket_path  # the controller-side runtime API (under /tmp: not on the web hosts)

    def vip(self, group: str = GROUP) -> tuple[str, int]:
        self._check_group(group)
        return self.haproxy.frontend

    def _check_group(self, group: str) -> None:
        if group != self.group:
            raise HarnessError(f'the L4 has one backend, {self.group!r}; asked for {group!r}')

    def runtime(self, command: str) -> str:
        """One runtime API command, through the controller-side socket."""
        return self.haproxy.runtime(command)

    def bound(self, group: str = GROUP) -> dict[str, bool]:
        """{member: whether HAProxy gives it new connections}, from the controller-side socket, in one request (polled every 50 ms)."""
        self._check_group(group)
        return {name: bound_state(row) == 'up' for name, row in self.haproxy.server_states().items()}


# --- the fleet ----------------------------------------------------------------------------

@dataclasses.dataclass
class NetnsOptions:
    members: int = 3
    profile: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    l4_host_ssh: bool = False  # an sshd on the LB host, which is then in the inventory as `lb`
    l4_extra: dict[str, t.Any] = dataclasses.field(default_factory=dict)  # more keys of the role's ..._l4
    deploy_tasks: str = DEPLOY_TASKS  # the user's deploy tasks file, as text
    host_vars: dict[str, dict[str, t.Any]] = dataclasses.field(default_factory=dict)  # per host name: variables set over the fleet's
    drain_timeout: float = 10
    second_controller: bool = False  # a second controller, ctl2, that reaches the hosts over SSH (second_controller_playbook)


class NetnsFleet:
    """Web hosts and an LB host in namespaces, over real SSH; see the module docstring.

    ``with NetnsFleet(tmp_path, NetnsOptions(...)) as fleet:`` returns once HAProxy binds every
    member; leaving the block removes all of it and raises if anything is left.
    """

    def __init__(self, tmp_path: pathlib.Path, options: NetnsOptions | None = None) -> None:
        self.tmp_path = tmp_path
        self.options = options or NetnsOptions()
        if not 1 <= self.options.members <= MAX_MEMBERS:
            raise HarnessError(f'1 to {MAX_MEMBERS} members, asked for {self.options.members}')
        self.profile = dict(SHORT_PROFILE, **self.options.profile)
        self.health_check = self.profile.get('health_check', 'l7')
        self.role_prefix = 'l4_vip_deploy_' if self.health_check == 'l4' else 'l7_vip_deploy_'
        self.workdir = tmp_path / 'netns'
        self.members = [WebHost(f'web{i}', f'198.18.0.{WEB_BASE + i}', self.workdir / f'web{i}') for i in range(1, self.options.members + 1)]
        self.lb = NetnsHost(LB, [LB_ADDRESS, VIP[0]], self.workdir / LB)
        self.controller2 = (NetnsHost(SECOND_CONTROLLER, [SECOND_CONTROLLER_ADDRESS], self.workdir / SECOND_CONTROLLER, own_pids=True,
                                      controller=True) if self.options.second_controller else None)
        self.l4: NetnsL4 | None = None
        self.ssh_key = self.workdir / 'id_ed25519'
        self.run_dir: pathlib.Path | None = None  # short, under /tmp: unix sockets and ssh's ControlPath
        self.timings: dict[str, float] = {}
        self._lock: t.IO[str] | None = None
        self._locked = False  # only the holder of the lock may touch the machine's l4v-* namespaces and links
        self._inodes: set[int] = set()

    @property
    def hosts(self) -> list[NetnsHost]:
        return [*self.members, self.lb, *([self.controller2] if self.controller2 else [])]

    def host(self, name: str) -> NetnsHost:
        return next(host for host in self.hosts if host.name == name)

    member = host

    # lifecycle
    def __enter__(self) -> NetnsFleet:
        start = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self.timings['build'] = time.monotonic() - start
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        self.close()

    def _acquire_lock(self, timeout: float = 300.0) -> None:
        # pylint: disable-next=consider-using-with  # held until close()
        self._lock = open(LOCK_PATH, 'a', encoding='ascii')

        def locked() -> tuple[bool, str]:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False, f'{LOCK_PATH} held by another netns fleet'
            return True, 'locked'
        wait_until(locked, timeout, 'the machine-wide netns lock', poll=0.2)
        self._locked = True

    def _start(self) -> None:
        self._acquire_lock()
        cleanup_leftovers()
        self.run_dir = pathlib.Path(tempfile.mkdtemp(prefix=f'{MARKER}run-'))
        # pylint: disable-next=consider-using-with  # waited for below, while the namespaces come up
        keygen = subprocess.Popen(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'l4vip-netns-controller', '-f', str(self.ssh_key)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # The bridge, and a veth pair per host whose inner end (eth0) goes straight into the new namespace.
        # addrgenmode none: no IPv6 link-local address on our links.
        _ip_batch([f'link add {BRIDGE} type bridge', f'link set {BRIDGE} addrgenmode none', f'addr add {CONTROLLER_ADDRESS}/24 dev {BRIDGE}',
                   f'link set {BRIDGE} up',
                   *(line for host in self.hosts for line in (
                       f'netns add {host.netns}', f'link add {host.veth} type veth peer name eth0 netns {host.netns}',
                       f'link set {host.veth} addrgenmode none', f'link set {host.veth} master {BRIDGE} up'))])
        self._inodes = {inode for host in self.hosts if (inode := netns_inode(host.netns)) is not None}
        if bridge_filtered():
            subprocess.run([IPTABLES_BIN, '-w', '-I', *FORWARD_RULE[:1], '1', *FORWARD_RULE[1:]], capture_output=True, timeout=10, check=True)
        hide = [str(self.tmp_path), str(self.run_dir)]  # under /tmp they are gone anyway; elsewhere a tmpfs covers them
        for host in self.hosts:
            host.start_holder(hide if host is not self.controller2 else [])
        for host in self.hosts:
            wait_until(host.holder_ready, 10, f'{host.name}: namespaces set up')
        if keygen.wait(10) != 0:
            raise HarnessError(f'ssh-keygen: {keygen.stdout.read()}')
        ssh_hosts = self.hosts if self.options.l4_host_ssh else self.members
        public_key = self.ssh_key.with_suffix('.pub').read_text(encoding='ascii')
        for host, host_keygen in [(host, host.prepare_sshd(public_key)) for host in ssh_hosts]:
            if host_keygen.wait(10) != 0:
                raise HarnessError(f'{host.name}: ssh-keygen: {host_keygen.stdout.read()}')
            host.start_sshd()
        # nginx daemonizes: its start command returns once it runs; all hosts at once.
        starts = []
        for member in self.members:
            member.prepare_nginx()
            # pylint: disable-next=consider-using-with  # waited for below
            starts.append((member, subprocess.Popen(member.argv(member.start_command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                    cwd='/')))
        for member, process in starts:
            if process.wait(10) != 0:
                raise HarnessError(f'{member.name}: {member.start_command} exited {process.returncode}: {process.stdout.read()}')
        for member in self.members:
            wait_until(member.nginx_ready, 5, f'{member.name}: nginx accepting connections')
        for host in ssh_hosts:
            wait_until(host.sshd_ready, 5, f'{host.name}: sshd accepting connections')
        self.l4 = NetnsL4(self.workdir / 'haproxy', self.run_dir, self.members, self.profile, self.lb)
        self.l4.start()
        # HAProxy starts every server up, before any check: wait for a real check of each first.
        self.l4.haproxy.wait_settled()
        self.wait_all_bound()

    def close(self) -> None:
        """Stop HAProxy, kill every process in our namespaces, remove them, the veths and the bridge; raise if anything is left."""
        start = time.monotonic()
        if not self._locked:  # never got the lock: another fleet owns what is there
            if self._lock is not None:
                self._lock.close()
                self._lock = None
            return
        errors = []
        if self.l4 is not None:
            try:
                self.l4.stop()
            except Exception as exc:  # pylint: disable=broad-exception-caught  # keep tearing down
                errors.append(f'L4: {exc}')
        try:
            # Holders, sshd and its sessions, nginx: all in our namespaces. The ssh masters Ansible left behind carry the marker.
            _kill_until_gone(lambda: pids_in_netns(self._inodes) + marked_pids(), 'the netns fleet')
        except HarnessError as exc:
            errors.append(str(exc))
        for host in self.hosts:
            host.reap()
        # Deleting the root end of a veth deletes the pair at once; the namespaces go with their names.
        _ip_batch([*(f'link del {link}' for link in our_links()), *(f'netns del {name}' for name in our_namespaces())], force=True)
        remove_forward_rules()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        errors.extend(self.leftovers())
        self._lock.close()  # releases the flock
        self._lock, self._locked = None, False
        self.timings['teardown'] = time.monotonic() - start
        if errors:
            raise HarnessError('tearing down the netns fleet:\n' + '\n'.join(errors))

    def leftovers(self) -> list[str]:
        """What of this fleet is still there (empty after close): namespaces, links, processes, the run dir."""
        found = [f'namespace {name}' for name in our_namespaces()]
        found.extend(f'link {link}' for link in our_links())
        found.extend(f'pid {pid} in a fleet namespace' for pid in pids_in_netns(self._inodes))
        found.extend(f'pid {pid} carries the marker {MARKER!r}' for pid in marked_pids())
        found.extend(f'{host!r}: pid {pid}' for host in self.hosts for pid in host.leftover_pids())
        if self.l4 is not None:
            found.extend(f'HAProxy: pid {pid}' for pid in self.l4.haproxy.leftover_pids())
        if self.run_dir is not None and self.run_dir.exists():
            found.append(f'run dir {self.run_dir}')
        if IPTABLES_BIN is not None and subprocess.run([IPTABLES_BIN, '-w', '-C', *FORWARD_RULE], capture_output=True, timeout=10,
                                                       check=False).returncode == 0:
            found.append('iptables rule ' + ' '.join(FORWARD_RULE))
        return found

    # facts
    def vip(self, group: str = GROUP) -> tuple[str, int]:
        return self.l4.vip(group)

    def run_on(self, host: str | NetnsHost, argv: t.Sequence[str], timeout: float = 10.0, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside a host (nsenter, not SSH): for test assertions."""
        return (self.host(host) if isinstance(host, str) else host).run(argv, timeout, check)

    def wait_all_bound(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = up_window(parse_profile(self.profile)).high + 3.0
        wait_until(lambda: (all((seen := self.l4.bound()).values()), seen), timeout, f'{GROUP}: every member bound')

    # the inventory
    def write_deploy_tasks(self) -> pathlib.Path:
        path = self.tmp_path / 'deploy.yml'
        path.write_text(self.options.deploy_tasks, encoding='utf-8')
        return path

    def common_vars(self) -> dict[str, t.Any]:
        """Every host: root over SSH with the fleet's key, Debian's python, pipelining, the profile."""
        return {
            'ansible_user': 'root',
            'ansible_ssh_private_key_file': str(self.ssh_key),
            'ansible_python_interpreter': HOST_PYTHON,
            'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
            'ansible_ssh_pipelining': True,
            # Short (a unix socket path) and carrying the marker, so teardown finds ssh's ControlPersist masters.
            'ansible_control_path_dir': str(self.run_dir / 'cp'),
            # The hosts' own /root, whatever ANSIBLE_REMOTE_TMP the controller has (a path under its /tmp).
            'ansible_remote_tmp': '/root/.ansible/tmp',
            'rolling_deploy_profile': self.profile,
        }

    def host_vars(self, member: WebHost, deploy_tasks: pathlib.Path) -> dict[str, t.Any]:
        """The role's variables for one web host (prefixed for the role the profile's health check picks)."""
        prefix = self.role_prefix
        variables: dict[str, t.Any] = {
            'ansible_host': member.address,
            f'{prefix}l4': dict(self.l4.provider(GROUP, member.name), poll_interval=POLL_INTERVAL, **self.options.l4_extra),
            f'{prefix}service_port': member.port,
            f'{prefix}service_address': member.address,
            f'{prefix}stop_command': member.stop_command,
            f'{prefix}start_command': member.start_command,
            f'{prefix}deploy_tasks': str(deploy_tasks),  # on the controller: include_tasks reads it there
            f'{prefix}drain_timeout': self.options.drain_timeout,
            'fleet_docroot': member.docroot,
        }
        if self.health_check == 'l7':
            variables[f'{prefix}health_check_path'] = member.health_check_path
            variables[f'{prefix}health_check_url'] = member.url('/health_check.html')
        variables.update(self.options.host_vars.get(member.name, {}))
        return variables

    def lb_vars(self) -> dict[str, t.Any]:
        """The LB host: its address and the runtime API as seen from there."""
        variables = {'ansible_host': self.lb.address, 'fleet_l4_endpoint': self.l4.local_endpoint, 'fleet_l4_pool': GROUP}
        variables.update(self.options.host_vars.get(LB, {}))
        return variables

    def write_inventory(self) -> pathlib.Path:
        """inventory.yml: group ``web`` (web1..N), and host ``lb`` outside it when the LB host runs sshd."""
        deploy_tasks = self.write_deploy_tasks()
        inventory: dict[str, t.Any] = {'all': {
            'vars': self.common_vars(),
            'children': {GROUP: {'hosts': {m.name: self.host_vars(m, deploy_tasks) for m in self.members}}},
        }}
        if self.options.l4_host_ssh:
            inventory['all']['hosts'] = {LB: self.lb_vars()}
        path = self.tmp_path / 'inventory.yml'
        path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding='utf-8')
        return path

    # the second controller
    def second_controller_playbook(self, workdir: pathlib.Path, playbook: str, extra_vars: dict[str, t.Any]) -> SecondControllerRun:
        """Start ``playbook`` on ctl2 against this fleet, with its own HOME, ANSIBLE_HOME, temp dirs and ssh masters."""
        if self.controller2 is None:
            raise HarnessError('no second controller: NetnsOptions(second_controller=True)')
        workdir.mkdir(parents=True, exist_ok=True)
        inventory = yaml.safe_load(self.write_inventory().read_text(encoding='utf-8'))
        # Its own ssh masters: the first controller's ControlPath would carry its traffic from the root namespace.
        inventory['all']['vars']['ansible_control_path_dir'] = str(self.run_dir / f'cp-{SECOND_CONTROLLER}')
        (workdir / 'inventory.yml').write_text(yaml.safe_dump(inventory, sort_keys=False), encoding='utf-8')
        home = workdir / 'ansible-home'
        results = workdir / 'results.json'
        env = ['HOME=/srv', f'ANSIBLE_HOME={home}', f'ANSIBLE_LOCAL_TEMP={home / "tmp"}', f'ANSIBLE_COLLECTIONS_PATH={os.environ["ANSIBLE_COLLECTIONS_PATH"]}',
               f'ANSIBLE_CALLBACK_PLUGINS={CALLBACKS}', f'L4VIP_TEST_RESULTS={results}', 'ANSIBLE_NOCOLOR=1', 'ANSIBLE_HOST_KEY_CHECKING=0',
               'ANSIBLE_RETRY_FILES_ENABLED=0']
        argv = self.controller2.argv(['env', *env, str(PLAYBOOK_BIN), '-i', str(workdir / 'inventory.yml'), playbook, '-e', json.dumps(extra_vars)])
        return SecondControllerRun(argv, workdir / 'output.log', results)


class SecondControllerRun:
    """ansible-playbook running on the second controller; ``result()`` waits for it, ``kill()`` ends it as a crash would."""

    def __init__(self, argv: list[str], log_path: pathlib.Path, results: pathlib.Path) -> None:
        self.log_path, self.results = log_path, results
        with open(log_path, 'wb') as log:
            # pylint: disable-next=consider-using-with  # waited for in result() or kill()
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd='/', start_new_session=True)

    def playbook_pid(self) -> int | None:
        """ansible-playbook's pid as this machine sees it (nsenter and env exec into it, or fork it)."""
        found = [pid for pid in [self.process.pid, *_process.children(self.process.pid)]
                 if any(arg.endswith('ansible-playbook') for arg in (_process.cmdline(pid) or [])[:2])]
        return found[0] if found else None

    def kill(self) -> None:
        """SIGKILL to ansible-playbook alone, as when its machine dies: its workers may finish what they are doing."""
        pid = self.playbook_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        self.process.wait(10)

    def result(self, timeout: float = 240) -> PlaybookRun:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            raise
        output = json.loads(self.results.read_text()) if self.results.exists() else []
        return PlaybookRun(self.process.returncode, output, self.log_path.read_text(errors='replace'))
