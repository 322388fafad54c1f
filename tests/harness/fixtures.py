"""Pytest fixtures that start real nginx members and a real HAProxy L4, and stop them all afterwards.

Registered for the whole suite through ``pytest_plugins`` in tests/conftest.py; a test module
can also import the fixture names directly. Addresses come from the test (loopback only).
"""

from __future__ import annotations

import os
import pathlib
import typing as t

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import Profile
from ansible_collections.l4vip.rollout.tests.harness.real_parts import HAProxy, Member, Nginx, stop_all

__all__ = ['nginx_factory', 'haproxy_factory']

NginxFactory = t.Callable[..., Nginx]
HAProxyFactory = t.Callable[..., HAProxy]


def _require_loopback(address: str) -> None:
    if not address.startswith('127.'):
        raise ValueError(f'real parts listen on loopback only (127.0.0.0/8), got {address!r}')


@pytest.fixture
def nginx_factory(tmp_path: pathlib.Path) -> t.Iterator[NginxFactory]:
    """``make(name, address, port, docroot=None, version='1') -> Nginx``, started; all stopped at teardown."""
    started: list[Nginx] = []

    def make(name: str, address: str, port: int, docroot: str | os.PathLike[str] | None = None, version: str = '1') -> Nginx:
        _require_loopback(address)
        nginx = Nginx(name, address, port, tmp_path / f'nginx-{len(started)}-{name}', docroot, version)
        started.append(nginx)
        return nginx.start()

    yield make
    stop_all(started)


@pytest.fixture
def haproxy_factory(tmp_path: pathlib.Path) -> t.Iterator[HAProxyFactory]:
    """``make(profile, frontend, members, backend='vip', check_source=None, settle=True) -> HAProxy``; all stopped at teardown.

    Start the members first. With ``settle`` it returns once every member is fully up or down
    (HAProxy drops a member on its first failed check until that member has passed one).
    """
    started: list[HAProxy] = []

    def make(profile: Profile, frontend: tuple[str, int], members: list[Member], backend: str = 'vip',
             check_source: str | None = None, settle: bool = True) -> HAProxy:
        for address in [frontend[0], *(member[1] for member in members), *([check_source] if check_source else [])]:
            _require_loopback(address)
        haproxy = HAProxy(tmp_path / f'haproxy-{len(started)}', profile, frontend, members, backend, check_source)
        started.append(haproxy)
        haproxy.start()
        if settle:
            haproxy.wait_settled()
        return haproxy

    yield make
    stop_all(started)
