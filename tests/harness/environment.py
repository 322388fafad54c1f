"""What a test needs from the machine, and what happens when it is missing: a skip on a developer's machine, a failure on CI.

Test-only code. CI (``CI=true``, as GitHub Actions, GitLab CI and most others set it) runs as root on a machine
that has everything the suite needs; a test that skipped there would hide that it never ran. The suite gives
itself what root can give: ``::1`` on ``lo`` where the machine lacks it (tests/conftest.py, for the session).
"""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import socket
import subprocess
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import poll_until

IP_BIN = shutil.which('ip')
LO_IPV6 = pathlib.Path('/proc/sys/net/ipv6/conf/lo/disable_ipv6')


def on_ci() -> bool:
    return os.environ.get('CI', '').strip().lower() == 'true'


def missing(reason: str) -> t.NoReturn:
    """Skip the calling test for ``reason``; fail it instead on CI."""
    if on_ci():
        pytest.fail(f'{reason} (CI=true: on CI this fails instead of skipping)', pytrace=False)
    pytest.skip(reason)


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        missing(f'needs root: {why}')


@pytest.fixture
def root_required() -> None:
    """For ``pytest.mark.usefixtures('root_required')``: the test needs root."""
    require_root('the test changes what only root may change')


def ipv6_loopback() -> bool:
    """Whether a socket can bind ``::1`` here."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(('::1', 0))
    except OSError as error:
        if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            return False
        raise
    return True


def give_ipv6_loopback() -> t.Callable[[], None] | None:
    """As root, put ``::1`` on ``lo`` where it is missing (IPv6 switched off on lo, or the address removed).

    Returns None when ``::1`` was there already, else what undoes the change; raises when it cannot be given.
    """
    if ipv6_loopback():
        return None
    if os.geteuid() != 0 or IP_BIN is None or not LO_IPV6.exists():
        raise RuntimeError('::1 is missing and cannot be given here (needs root, `ip` and a kernel with IPv6)')
    was_disabled = LO_IPV6.read_text(encoding='ascii').strip() != '0'
    if was_disabled:
        LO_IPV6.write_text('0\n', encoding='ascii')  # switching IPv6 on for lo gives it ::1
    added = not ipv6_loopback()
    if added:
        subprocess.run([IP_BIN, '-6', 'addr', 'add', '::1/128', 'dev', 'lo'], check=True, capture_output=True, timeout=10)
    # The kernel may take a moment before the new address can be bound: wait for it, at most 2 s.
    if not poll_until(ipv6_loopback, bool, 2.0, 0.02).reached:
        raise RuntimeError('::1 is still missing 2 s after giving it to lo')

    def undo() -> None:
        if added:
            subprocess.run([t.cast(str, IP_BIN), '-6', 'addr', 'del', '::1/128', 'dev', 'lo'], check=True, capture_output=True, timeout=10)
        if was_disabled:
            LO_IPV6.write_text('1\n', encoding='ascii')
    return undo


def require_ipv6_loopback() -> None:
    if not ipv6_loopback():
        missing('::1 is not available on this host')
