"""After the rolling deploy: every member serves the new version, is bound in the L4 again,
and (L7) has its health-check file back in service. The lab is on loopback, so the HTTP
checks run from here, the client's side; files are read through testinfra's host."""

from __future__ import annotations

import json
import os
import urllib.request


def _vars(host):
    return host.ansible.get_variables()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:  # raises on any status but 2xx
        return answer.read()


def test_member_answers_with_the_new_version(host):
    lab = _vars(host)
    body = _get(f"http://{lab['emulated_vip_service_address']}:{lab['emulated_vip_service_port']}/")
    assert body.decode() == f"server={lab['inventory_hostname']} version={lab['lab_new_version']}\n"


def test_member_is_bound_in_the_vip(host):
    lab = _vars(host)
    vip = json.loads(_get(f"http://{lab['emulated_vip_control']}/api/vips/web"))
    member = next(m for m in vip['members'] if m['name'] == lab['inventory_hostname'])
    assert member['bound'] and member['state'] == 'up', member
    assert member.get('admin_state', 'enabled') == 'enabled', member


def test_health_check_file_is_in_service(host):
    lab = _vars(host)
    docroot = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'lab', lab['inventory_hostname'])
    assert host.file(os.path.join(docroot, 'health_check.html')).is_file
    assert not host.file(os.path.join(docroot, 'health_check.html.disabled')).exists
    assert _get(f"http://{lab['emulated_vip_service_address']}:{lab['emulated_vip_service_port']}/health_check.html") == b'OK\n'


def test_the_vip_spreads_new_connections_over_every_member_at_the_new_version(host):
    lab = _vars(host)
    # Each urlopen is a new client connection: the L4 picks a bound member for it.
    answers = {_get(f"http://{lab['emulated_vip_listen']}/").decode() for unused in range(9)}
    expected = {f"server=web{i} version={lab['lab_new_version']}\n" for i in (1, 2, 3)}
    assert answers == expected
