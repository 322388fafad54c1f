from __future__ import annotations

import datetime

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _access_log

T0 = datetime.datetime(2026, 11, 24, 16, 34, 1, tzinfo=datetime.timezone.utc).timestamp()


def line(source, seconds, status, uri='/health_check.html', request=None):
    when = datetime.datetime.fromtimestamp(T0 + seconds, tz=datetime.timezone.utc).strftime('%d/%b/%Y:%H:%M:%S %z')
    request = request or f'GET {uri} HTTP/1.0'
    return f'{source} - - [{when}] "{request}" {status} 153 "-" "l4-check"'


def test_parses_nginx_combined_lines():
    check = _access_log.parse_line('127.0.0.2 - - [24/Nov/2026:16:34:01 +0000] "GET /health_check.html?x=1 HTTP/1.1" 404 153 "-" "curl/8"')
    assert check == _access_log.Check('127.0.0.2', T0, '/health_check.html', 404)
    assert not check.passed
    assert _access_log.parse_line('::1 - bob [24/Nov/2026:17:34:01 +0100] "HEAD / HTTP/1.1" 200 0 "-" "-"').at == T0
    assert _access_log.parse_line('garbage') is None
    assert _access_log.parse_line('1.2.3.4 - - [31/Foo/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"') is None


def test_filters_by_uri_source_and_since():
    lines = [
        line('127.0.0.2', -5, 404),  # before since
        line('127.0.0.2', 0, 200),
        line('10.0.0.7', 1, 404),  # not the L4
        line('127.0.0.2', 1, 404, uri='/index.html'),  # not the health check
        line('127.0.0.2', 2, 404),
    ]
    checks = _access_log.health_checks(lines, '/health_check.html', ['127.0.0.2'], T0 + 0.5)
    assert [(c.at - T0, c.status) for c in checks] == [(0, 200), (2, 404)]
    everyone = _access_log.health_checks(lines, '/health_check.html', [], T0)
    assert len(everyone) == 3


@pytest.mark.parametrize(
    ('statuses', 'expected'),
    [
        ([], (None, 0)),
        ([200], (True, 1)),
        ([200, 404, 404], (False, 2)),
        ([404, 404, 200], (True, 1)),
        ([404, 503, 500], (False, 3)),  # any non-200 is a failure to the L4
    ],
)
def test_streak(statuses, expected):
    checks = [_access_log.Check('127.0.0.2', T0 + i, '/health_check.html', s) for i, s in enumerate(statuses)]
    assert _access_log.streak(checks) == expected


def test_read_tail_drops_a_partial_first_line(tmp_path, monkeypatch):
    log = tmp_path / 'access.log'
    log.write_text('\n'.join(line('127.0.0.2', i, 200) for i in range(50)) + '\n')
    assert len(_access_log.read_tail(str(log))) == 50
    monkeypatch.setattr(_access_log, 'TAIL_BYTES', 300)
    tail = _access_log.read_tail(str(log))
    assert 0 < len(tail) < 50 and all(_access_log.parse_line(x) for x in tail)
