from __future__ import annotations

import json
import re

from ansible_collections.l4vip.rollout.plugins.module_utils import _report

T0 = 1_800_000_000.0
WINDOW_DOWN = {'low': 0.2, 'high': 0.4}


def summary(offset: float, result: str = 'ok', **extra):
    base = {'role': 'l7_vip_deploy', 'result': result, 'out_at': T0 + offset, 'down_at': T0 + offset + 0.3,
            'in_at': T0 + offset + 1.5, 'up_at': T0 + offset + 1.7, 'down_window': WINDOW_DOWN, 'up_window': {'low': 0, 'high': 0.2}}
    return dict(base, **extra)


def steps(offset: float):
    return [{'name': 'Capacity guard', 'status': 'ok', 'start': T0 + offset - 0.1, 'end': T0 + offset}]


def bars(svg: str) -> list[tuple[str, str]]:
    """(host, phase) of each bar, top to bottom."""
    return re.findall(r'<rect class="phase (\w+)" data-host="([^"]+)"', svg)


def test_hosts_are_ordered_as_the_rollout_ran_and_spans_computed():
    report = _report.build({'web2': summary(5), 'web1': summary(0), 'web3': summary(10)},
                           {'web2': steps(5), 'web1': steps(0), 'web3': steps(10)})
    assert [entry['host'] for entry in report['hosts']] == ['web1', 'web2', 'web3']
    web1 = report['hosts'][0]
    assert (web1['detection_down'], web1['detection_up'], web1['out_of_vip']) == (0.3, 0.2, 1.7)
    assert report['failed_hosts'] == []


def test_timeline_has_one_bar_per_host_in_rollout_order():
    report = _report.build({'web2': summary(5), 'web1': summary(0)}, {})
    svg = _report.render_svg(report)
    hosts_in_order = []
    for phase, host in bars(svg):
        if phase == 'leaving':
            hosts_in_order.append(host)
    assert hosts_in_order == ['web1', 'web2']
    assert [phase for phase, host in bars(svg) if host == 'web1'] == ['leaving', 'out', 'returning']
    # Later hosts are drawn further right.
    x_of = {host: float(re.search(rf'class="phase leaving" data-host="{host}" x="([\d.]+)"', svg).group(1)) for host in ('web1', 'web2')}
    assert x_of['web1'] < x_of['web2']


def test_a_failed_host_stays_out_to_the_end_and_is_marked():
    failed = summary(5, result='failed', failed_step='Run the deploy tasks', in_at=None, up_at=None)
    report = _report.build({'web1': summary(0), 'web2': failed}, {'web2': [{'name': 'x', 'status': 'failed', 'start': T0 + 6, 'end': T0 + 7}]})
    svg = _report.render_svg(report)
    assert report['failed_hosts'] == ['web2']
    assert [phase for phase, host in bars(svg) if host == 'web2'] == ['leaving', 'out']
    assert 'web2 (failed)' in svg
    assert '| web2 | failed at Run the deploy tasks |' in _report.render_markdown(report)


def test_traffic_failures_are_ticks_and_counts_are_in_the_words():
    traffic = {'started': T0 - 1, 'stopped': T0 + 3, 'total': 900, 'ok': 890, 'retried': 8, 'failed': 2, 'failed_by_cause': {'reset': 2},
               'by_server': {}, 'requests_per_second': 225.0,
               'records': [{'outcome': 'failed', 'end': T0 + 0.5}, {'outcome': 'ok', 'end': T0 + 0.6}, {'outcome': 'failed', 'end': T0 + 0.7}]}
    report = _report.build({'web1': summary(0)}, {}, traffic)
    assert report['traffic']['failure_times'] == [T0 + 0.5, T0 + 0.7]
    assert _report.render_svg(report).count('stroke="#d0021b" stroke-width="1.5"') == 2
    assert 'Requests: **890 ok**, 8 retried, **2 failed** of 900 (225.0 per second).' in _report.render_markdown(report)


def test_write_and_rerender_with_traffic(tmp_path):
    paths = _report.write(_report.build({'web1': summary(0)}, {}), str(tmp_path))
    assert json.loads(open(paths['report.json'], encoding='utf-8').read())['hosts'][0]['host'] == 'web1'
    assert '![Rollout timeline](timeline.svg)' in open(paths['report.md'], encoding='utf-8').read()
    traffic = tmp_path / 'traffic.json'
    traffic.write_text(json.dumps({'total': 1, 'ok': 0, 'retried': 0, 'failed': 1, 'requests_per_second': 1.0,
                                   'records': [{'outcome': 'failed', 'end': T0 + 1}]}))
    assert _report.main(['--report', paths['report.json'], '--traffic', str(traffic)]) == 0
    assert json.loads((tmp_path / 'report.json').read_text())['traffic']['failed'] == 1


def test_transition_time_prefers_the_l4s_own_time():
    assert _report.transition_time({'ended_at': T0 + 2, 'l4_since': T0 + 1.4}, T0) == T0 + 1.4
    # An L4 time before the start is an older transition (e.g. an admin change left health alone).
    assert _report.transition_time({'ended_at': T0 + 2, 'l4_since': T0 - 50}, T0) == T0 + 2
    assert _report.transition_time({'ended_at': T0 + 2, 'l4_since': None}, T0) == T0 + 2
    assert _report.transition_time({}, T0) is None and _report.transition_time(None, T0) is None
