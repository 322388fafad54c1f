# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The L3DSR pre-flight: is this member ready to answer clients of the VIP directly?

Internal to the l4vip.rollout collection; not a public API.

Behind a direct-server-return L4 the member answers clients from the VIP itself, so it must hold
the VIP on a loopback interface (``lo``, often as the alias ``lo:0``) and must not answer ARP for
it on the interfaces that face the L4; otherwise it takes the VIP's traffic from the L4, or drops
what the L4 sends it. IPv4's ARP behaviour is per interface, and the kernel uses the larger of
``net.ipv4.conf.all.<key>`` and ``net.ipv4.conf.<interface>.<key>``: DSR needs ``arp_ignore`` at
least 1 (answer only for addresses of the interface asked on) and ``arp_announce`` 2 (never
announce the VIP as a source).

This file only reads: addresses from ``ip -j addr show`` (argv, no shell), the ARP settings from
/proc/sys. Nothing here ever adds or removes an address, least of all the VIP.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import subprocess
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError

CONF_DIR = '/proc/sys/net/ipv4/conf'
IP_ADDR_ARGV = ('ip', '-j', 'addr', 'show')
ARP_IGNORE_MIN = 1  # 1: answer ARP only for an address of the interface the request came in on (2, 3 and 8 are stricter)
ARP_ANNOUNCE = 2  # 2: always announce the best local address of the outgoing interface, never the VIP
COMMAND_TIMEOUT = 10.0


class DsrError(Exception):
    """The member is not ready for DSR (or its state could not be read); ``detail`` is what was seen."""

    def __init__(self, msg: str, **detail: t.Any) -> None:
        super().__init__(msg)
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class Interface:
    name: str
    loopback: bool
    up: bool
    arp: bool  # answers ARP: not NOARP, not a bridge port or bond slave (its master answers for it)
    addresses: tuple[tuple[str, int, str], ...]  # (address, prefix length, label)

    @property
    def faces_the_l4(self) -> bool:
        """Could answer an ARP request for the VIP on the L4's network: up, not loopback, doing ARP itself."""
        return self.up and self.arp and not self.loopback


def vip_option(option: str, value: t.Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The VIP as an address (no prefix): the one the L4's clients connect to."""
    try:
        if not isinstance(value, str) or '/' in value:
            raise ValueError
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise OptionError(option, value, 'expected the VIP as an IP address, such as 10.0.0.100') from None


def check_options(vip: t.Any, interface: t.Any, options: tuple[str, str] = ('dsr_vip', 'dsr_interface')) -> str | None:
    """Refuse a malformed VIP, or an interface without a VIP, before anything else happens; returns the VIP option."""
    if vip is not None:
        vip_option(options[0], vip)
    elif interface is not None:
        raise OptionError(options[1], interface, f'expected only with {options[0]}, the VIP whose ARP it is about')
    return vip


def parse_interfaces(text: str) -> list[Interface]:
    """The interfaces and addresses of ``ip -j addr show``."""
    try:
        links = json.loads(text)
        return [Interface(link['ifname'], link.get('link_type') == 'loopback' or 'LOOPBACK' in link.get('flags', ()),
                          'UP' in link.get('flags', ()), 'NOARP' not in link.get('flags', ()) and 'master' not in link,
                          tuple((a['local'], int(a.get('prefixlen', 0)), a.get('label') or link['ifname'])
                                for a in link.get('addr_info', ()) if 'local' in a))
                for link in links]
    except (ValueError, TypeError, KeyError) as error:
        raise DsrError(f'{" ".join(IP_ADDR_ARGV)} did not answer the JSON it should (iproute2 4.14 or newer): {error}') from None


def read_interfaces(argv: t.Sequence[str] | None = None) -> list[Interface]:
    argv = IP_ADDR_ARGV if argv is None else argv
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        raise DsrError(f'{argv[0]}: not found on this member; the DSR pre-flight reads the addresses with {" ".join(argv)} (iproute2)') from None
    except subprocess.TimeoutExpired:
        raise DsrError(f'{" ".join(argv)}: no answer within {COMMAND_TIMEOUT:g}s') from None
    if done.returncode != 0:
        raise DsrError(f'{" ".join(argv)} failed (rc {done.returncode}): {done.stderr.strip()}')
    return parse_interfaces(done.stdout)


def read_arp(conf_dir: str, interface: str) -> dict[str, int]:
    """``arp_ignore`` and ``arp_announce`` of one interface (or ``all``) as /proc/sys says."""
    values = {}
    for key in ('arp_ignore', 'arp_announce'):
        path = os.path.join(conf_dir, interface, key)
        try:
            with open(path, encoding='ascii') as handle:
                values[key] = int(handle.read().strip())
        except (OSError, ValueError) as error:
            raise DsrError(f'cannot read {path}: {getattr(error, "strerror", None) or error}') from None
    return values


def check(vip: str, interface: str | None = None, interfaces: list[Interface] | None = None, conf_dir: str | None = None,
          options: tuple[str, str] = ('dsr_vip', 'dsr_interface'), refusal_note: str = '') -> dict[str, t.Any]:
    """What the member has for DSR, or DsrError naming everything that is missing. Changes nothing.

    ``interface``: the one that faces the L4; when not given, every interface that could answer ARP for the VIP.
    ``options``: the names the caller gives ``vip`` and ``interface``, for its error messages; ``refusal_note``: what the
    caller adds to a refusal (what it left as it was).
    """
    address = vip_option(options[0], vip)
    conf_dir = CONF_DIR if conf_dir is None else conf_dir
    interfaces = read_interfaces() if interfaces is None else interfaces
    names = [i.name for i in interfaces]
    if interface is not None and interface not in names:
        raise OptionError(options[1], interface, f"expected an interface of this member ({', '.join(names)})")
    holding = [(i, label) for i in interfaces for (local, _prefix, label) in i.addresses if ipaddress.ip_address(local) == address]
    on_loopback = [label for i, label in holding if i.loopback]
    elsewhere = [i.name for i, _label in holding if not i.loopback]
    missing = []
    if not on_loopback:
        prefix = 32 if address.version == 4 else 128
        missing.append(f'{address} is on no loopback interface (add it, for example: ip addr add {address}/{prefix} dev lo label lo:0)')
    if elsewhere:
        missing.append(f"{address} is also on {', '.join(elsewhere)}, where the member would answer for it and take the VIP's traffic")
    arp: dict[str, dict[str, int]] = {}
    if address.version == 4:  # IPv6 has no ARP: neighbour discovery answers only for the interface's own addresses
        facing = [i.name for i in interfaces if (i.name == interface if interface else i.faces_the_l4)]
        every = read_arp(conf_dir, 'all')
        for name in facing:
            own = read_arp(conf_dir, name)
            arp[name] = {key: max(every[key], own[key]) for key in own}
            if arp[name]['arp_ignore'] < ARP_IGNORE_MIN:
                missing.append(f"arp_ignore is {arp[name]['arp_ignore']} on {name} (the larger of all's {every['arp_ignore']} and "
                               f"{name}'s {own['arp_ignore']}): set net.ipv4.conf.all.arp_ignore (or .{name}.) to {ARP_IGNORE_MIN}")
            if arp[name]['arp_announce'] != ARP_ANNOUNCE:
                missing.append(f"arp_announce is {arp[name]['arp_announce']} on {name} (the larger of all's {every['arp_announce']} and "
                               f"{name}'s {own['arp_announce']}): set net.ipv4.conf.all.arp_announce (or .{name}.) to {ARP_ANNOUNCE}")
    seen = dict(vip=str(address), loopback=on_loopback, also_on=elsewhere, arp=arp)
    if missing:
        note = f'. {refusal_note}' if refusal_note else ''
        raise DsrError(f"{options[0]}: this member is not ready for direct server return of {address}: {'; '.join(missing)}{note}",
                       dsr=dict(seen, missing=missing))
    return dict(seen, missing=[])


def findings(vip: str, interface: str | None = None) -> dict[str, t.Any]:
    """What ``check`` saw, what is missing included, without refusing (a query); DsrError only when nothing could be read."""
    try:
        return check(vip, interface)
    except DsrError as error:
        if 'dsr' not in error.detail:
            raise
        return error.detail['dsr']
