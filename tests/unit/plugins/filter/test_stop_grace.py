"""How long systemd lets a web server stop gracefully, read from what systemctl show prints."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.l4vip.rollout.plugins.filter.stop_grace import stop_grace, timespan_seconds

# systemctl show --property=TimeoutStopUSec --property=ExecStop nginx, for Debian 12's stock nginx.service.
DEBIAN_NGINX = (
    'TimeoutStopUSec=5s\n'
    'ExecStop={ path=/sbin/start-stop-daemon ; argv[]=/sbin/start-stop-daemon --quiet --stop --retry QUIT/5 --pidfile /run/nginx.pid ; '
    'ignore_errors=yes ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n')


@pytest.mark.parametrize(('text', 'seconds'), [('5s', 5.0), ('1min 30s', 90.0), ('1min 30.500000s', 90.5), ('500ms', 0.5),
                                               ('2h', 7200.0), ('infinity', None)])
def test_systemd_time_spans(text, seconds):
    assert timespan_seconds(text) == seconds


def test_the_stock_nginx_unit_gives_five_seconds():
    assert stop_grace(DEBIAN_NGINX) == {'seconds': 5.0, 'by': 'TimeoutStopSec=5s'}


def test_the_shorter_of_the_timeout_and_the_graceful_signals_first_wait():
    longer_timeout = DEBIAN_NGINX.replace('TimeoutStopUSec=5s', 'TimeoutStopUSec=2min').replace('QUIT/5', 'QUIT/30/TERM/5')
    assert stop_grace(longer_timeout) == {'seconds': 30.0, 'by': 'ExecStop start-stop-daemon --retry, first wait 30 s'}


def test_a_unit_without_limits():
    assert stop_grace('TimeoutStopUSec=infinity\nExecStop=\n') == {'seconds': None, 'by': 'nothing limits it'}
    # A drop-in raised the timeout, ExecStop is the server's own command: the timeout alone.
    own_stop = 'TimeoutStopUSec=1min 30s\nExecStop={ path=/usr/sbin/nginx ; argv[]=/usr/sbin/nginx -s quit ; ignore_errors=no }\n'
    assert stop_grace(own_stop) == {'seconds': 90.0, 'by': 'TimeoutStopSec=1min 30s'}


@pytest.mark.parametrize(('given', 'said'), [
    ('TimeoutStopUSec=soon\n', "TimeoutStopUSec: expected a systemd time span such as 5s or 1min 30s, got 'soon'"),
    (None, 'expected the text systemctl show printed, got None'),
])
def test_what_is_not_systemd_output_is_refused(given, said):
    with pytest.raises(AnsibleFilterError, match=said):
        stop_grace(given)
