# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""IPVS (LVS, keepalived) on the L4 host: its table read from ``ipvsadm -Ln`` or /proc/net/ip_vs, members changed with ipvsadm.

Internal to the l4vip.rollout collection; not a public API.

A virtual service is ``address:port`` (TCP), a real server (member) too. A member is bound while it
is in the table with a weight above 0; drain is weight 0 (IPVS sends it no new connection, its
connections go on), disabled is removed from the table; enabled puts it back as it was, with the
weight and forwarding method remembered when it was drained or removed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import pathlib
import subprocess
import typing as t

PROC_TABLE = '/proc/net/ip_vs'
# Where a drained or removed member's weight and forwarding method are kept, on the host the step runs on.
STATE_DIR = '~/.ansible/l4vip.rollout/ipvs'
FORWARDING = {'Route': '-g', 'Masq': '-m', 'Tunnel': '-i', 'Local': '-g'}


class IpvsError(Exception):
    """ipvsadm could not be run, or answered something unusable; ``unreachable`` when there was no table to read at all."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclasses.dataclass(frozen=True)
class RealServer:
    address: str  # address:port
    forward: str  # Route, Masq, Tunnel, Local
    weight: int
    active: int  # ActiveConn: established connections
    inactive: int  # InActConn: the others IPVS still tracks (FIN_WAIT, TIME_WAIT...)

    @property
    def sessions(self) -> int:
        return self.active + self.inactive


def parse_address(text: str) -> str:
    """``10.0.0.1:80`` as ipvsadm -n prints it, ``[::1]:80``, or /proc's ``0A000001:0050``, as address:port."""
    host, _sep, port = text.rpartition(':')
    if host.startswith('['):
        return f'{ipaddress.ip_address(host.strip("[]"))}:{int(port)}'
    if '.' not in host and len(host) in (8, 32) and all(c in '0123456789ABCDEFabcdef' for c in host + port):
        return f'{ipaddress.ip_address(int(host, 16))}:{int(port, 16)}'
    return f'{ipaddress.ip_address(host)}:{int(port)}'


def parse_table(text: str) -> dict[str, dict[str, RealServer]]:
    """Every TCP virtual service and its real servers, from ``ipvsadm -Ln`` or /proc/net/ip_vs (same layout, hex there)."""
    services: dict[str, dict[str, RealServer]] = {}
    current: dict[str, RealServer] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in ('TCP', 'UDP', 'SCTP', 'FWM'):
            current = services.setdefault(parse_address(fields[1]), {}) if fields[0] == 'TCP' else None
        elif len(fields) == 6 and fields[0] == '->' and current is not None and fields[1] != 'RemoteAddress:Port':
            address = parse_address(fields[1])
            current[address] = RealServer(address, fields[2], int(fields[3]), int(fields[4]), int(fields[5]))
    return services


def _ipvsadm_address(address: str) -> str:
    host, _sep, port = address.rpartition(':')
    return f'[{host}]:{port}' if ':' in host else address


class Ipvs:
    """One virtual service of the host's IPVS table, through ``ipvsadm`` (``command``: its path or name)."""

    def __init__(self, service: str, command: str = 'ipvsadm', state_dir: str | None = None, timeout: float = 5.0) -> None:
        self.service, self.command, self.timeout = service, command, timeout
        self.state_dir = pathlib.Path(os.path.expanduser(state_dir or STATE_DIR))

    def _run(self, *args: str) -> str:
        argv = [self.command, *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except FileNotFoundError:
            raise IpvsError(f'{self.command}: not found on this host (install ipvsadm, or run the L4 steps on the LB host)', True) from None
        except subprocess.TimeoutExpired:
            raise IpvsError(f'{" ".join(argv)}: no answer within {self.timeout:g}s', True) from None
        if done.returncode != 0:
            raise IpvsError(f'{" ".join(argv)} failed (rc {done.returncode}): {done.stderr.strip() or done.stdout.strip()}')
        return done.stdout

    def table(self) -> dict[str, RealServer]:
        """The virtual service's real servers; ipvsadm first, /proc/net/ip_vs where ipvsadm is missing (reading needs no tool)."""
        try:
            text = self._run('-Ln')  # the whole table: a missing service is then named with the ones there are
        except IpvsError as error:
            if not error.unreachable or not os.path.exists(PROC_TABLE):
                raise
            text = pathlib.Path(PROC_TABLE).read_text(encoding='ascii')
        services = parse_table(text)
        if self.service not in services:
            raise IpvsError(f"pool: no TCP virtual service {self.service!r} in the IPVS table; it has {', '.join(sorted(services)) or 'none'}")
        return services[self.service]

    # -- what was there before a drain or a removal --------------------------------------------------

    def _remembered_path(self, member: str) -> pathlib.Path:
        return self.state_dir / f"{self.service.replace(':', '_')}-{member.replace(':', '_')}.json"

    def remembered(self, member: str) -> dict[str, t.Any] | None:
        try:
            return json.loads(self._remembered_path(member).read_text(encoding='utf-8'))
        except (OSError, ValueError):
            return None

    def _remember(self, server: RealServer) -> None:
        if server.weight == 0 and self.remembered(server.address):
            return  # drained already: the weight before the drain is the one to keep
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self._remembered_path(server.address)
        path.with_suffix('.tmp').write_text(json.dumps({'weight': server.weight, 'forward': server.forward}), encoding='utf-8')
        path.with_suffix('.tmp').replace(path)

    # -- admin states -------------------------------------------------------------------------------

    def drain(self, server: RealServer) -> None:
        self._remember(server)
        self._run('-e', '-t', _ipvsadm_address(self.service), '-r', _ipvsadm_address(server.address), FORWARDING.get(server.forward, '-g'),
                  '-w', '0')

    def remove(self, server: RealServer) -> None:
        self._remember(server)
        self._run('-d', '-t', _ipvsadm_address(self.service), '-r', _ipvsadm_address(server.address))

    def restore(self, member: str, present: RealServer | None) -> None:
        """Back as before the drain or removal: the remembered weight (1 when nothing was remembered), the same forwarding."""
        before = self.remembered(member) or {}
        weight = str(before.get('weight') or 1)
        forward = FORWARDING.get(before.get('forward') or (present.forward if present else 'Route'), '-g')
        verb = '-e' if present is not None else '-a'
        self._run(verb, '-t', _ipvsadm_address(self.service), '-r', _ipvsadm_address(member), forward, '-w', weight)
        self._remembered_path(member).unlink(missing_ok=True)
