from __future__ import annotations

import json
import re

from ansible_collections.l4vip.rollout.plugins.plugin_utils import _report, _report_timeline
from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab import _http_client, _traffic

T0 = 1_800_000_000.0
WINDOW_DOWN = {'low': 0.2, 'high': 0.4}


def summary(offset: float, result: str = 'ok', **extra):
    base = {'role': 'l7_vip_deploy', 'result': result, 'out_at': T0 + offset, 'down_at': T0 + offset + 0.3,
            'in_at': T0 + offset + 1.5, 'up_at': T0 + offset + 1.7, 'down_window': WINDOW_DOWN, 'up_window': {'low': 0, 'high': 0.2}}
    return dict(base, **extra)


def steps(offset: float):
    return [{'name': 'Capacity guard', 'status': 'ok', 'start': T0 + offset - 0.1, 'end': T0 + offset}]


def traffic(started: float, stopped: float, failed_at: tuple[float, ...] = (), ok_at: tuple[float, ...] = ()) -> dict:
    """What the traffic generator writes (--json): built by its own types, so a change of its format fails here."""
    records = [_traffic.Record(moment - 0.01, moment, 0, _traffic.KIND_KEEPALIVE, _traffic.OUTCOME_OK, server='web1') for moment in ok_at]
    records += [_traffic.Record(moment - 0.01, moment, 1, _traffic.KIND_NEW, _traffic.OUTCOME_FAILED, _http_client.CAUSE_REFUSED)
                for moment in failed_at]
    return json.loads(json.dumps(_traffic.Summary(records, started, stopped).as_dict(records=True)))


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
    svg = _report_timeline.render_svg(report)
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
    svg = _report_timeline.render_svg(report)
    assert report['failed_hosts'] == ['web2']
    assert [phase for phase, host in bars(svg) if host == 'web2'] == ['leaving', 'out']
    assert 'web2 (failed)' in svg
    assert '| web2 | failed at Run the deploy tasks |' in _report.render_markdown(report)


def test_each_failed_request_of_the_generators_records_is_a_mark_at_its_time():
    report = _report.build({'web1': summary(0)}, {}, traffic(T0 - 1, T0 + 3, failed_at=(T0 + 0.5, T0 + 0.7), ok_at=(T0 + 0.6,)))
    assert [f['at'] for f in report['traffic']['failures']] == [T0 + 0.5, T0 + 0.7]
    assert report['traffic']['failures'][0]['cause'] == 'refused'
    svg = _report_timeline.render_svg(report)
    layout = _report_timeline.Layout([report])
    marks = [float(x) for x in re.findall(r'<line class="failure" x1="([\d.]+)"', svg)]
    assert marks == [layout.x(0, T0 + 0.5), layout.x(0, T0 + 0.7)]
    # 0 s is the traffic's start; the mark of a failure 1.5 s after it sits 1.5 s of scale right of the axis' start.
    assert marks[0] == _report_timeline.Layout.left + round(1.5 * layout.plot_width / layout.span, 1)
    assert report['hosts'][0]['failed_requests_while_out'] == 2  # web1 was out from T0 to T0 + 1.7
    assert 'Requests: **1 ok**, 0 retried, **2 failed** of 3' in _report.render_markdown(report)


def test_no_failure_is_written_as_0_failed():
    svg = _report_timeline.render_svg(_report.build({'web1': summary(0)}, {}, traffic(T0 - 1, T0 + 3, ok_at=(T0,))))
    assert '>0 failed</text>' in svg and 'class="failure"' not in svg


def test_the_l4s_event_log_gives_a_flow_without_waits_its_bars():
    naive = {'web1': {'role': 'naive', 'result': 'no waits', 'out_at': T0, 'in_at': T0 + 1.0}}
    events = [{'at': T0 - 5, 'kind': 'health', 'member': 'web1', 'to': 'down'},  # an earlier flow's
              {'at': T0 + 0.4, 'kind': 'health', 'member': 'web1', 'to': 'suspect'},
              {'at': T0 + 0.9, 'kind': 'health', 'member': 'web1', 'to': 'down'},
              {'at': T0 + 1.6, 'kind': 'health', 'member': 'web1', 'to': 'up'},
              {'at': T0 + 1.2, 'kind': 'health', 'member': 'web2', 'to': 'up'}]
    entry = _report.build(naive, l4_events=events)['hosts'][0]
    assert (entry['down_at'], entry['up_at'], entry['out_of_vip']) == (T0 + 0.9, T0 + 1.6, 1.6)
    assert _report_timeline.host_phases(entry, T0 + 100) == [('leaving', T0, T0 + 0.9), ('out', T0 + 0.9, T0 + 1.0), ('returning', T0 + 1.0, T0 + 1.6)]


def test_a_phase_without_its_end_ends_at_the_next_known_moment_not_the_edge():
    entry = {'host': 'web1', 'result': 'no waits', 'out_at': T0, 'down_at': None, 'in_at': T0 + 1.0, 'up_at': T0 + 1.5}
    assert _report_timeline.host_phases(entry, T0 + 100) == [('leaving', T0, T0 + 1.0), ('returning', T0 + 1.0, T0 + 1.5)]


def test_two_flows_share_one_scale_each_from_its_own_start():
    safe = _report.build({'web1': summary(0)}, {}, traffic(T0 - 1, T0 + 3), label='safe')
    naive = _report.build({'web1': summary(100)}, {}, traffic(T0 + 99, T0 + 101, failed_at=(T0 + 100.2,)), label='naive')
    report = _report.with_contrast(safe, naive)
    layout = _report_timeline.Layout([report, naive])
    assert layout.span == 4.0  # the longer flow
    assert layout.x(0, T0 - 1) == layout.x(1, T0 + 99) == _report_timeline.Layout.left
    svg = _report_timeline.render_svg(report)
    assert svg.count('seconds since traffic started') == 2
    assert 'safe: 0 requests, 0 failed' in svg and 'naive: 1 requests, 1 failed' in svg


def test_the_terminal_summary_is_aligned_columns():
    safe = _report.build({'web1': summary(0)}, {}, traffic(T0 - 1, T0 + 3, ok_at=(T0,)), label='safe')
    report = _report.with_contrast(safe, _report.build({'web1': summary(10)}, {}, traffic(T0 + 9, T0 + 12, failed_at=(T0 + 10,)), label='naive'))
    lines = _report.terminal_summary(report).splitlines()
    assert lines[0].split() == ['requests', 'safe', 'naive']
    assert lines[4].split() == ['failed', '0', '1']
    # Right-aligned numbers end in the same column as their header.
    assert lines[0].index('naive') + len('naive') == lines[4].rindex('1') + 1
    host_header = next(line for line in lines if line.strip().startswith('host'))
    web1 = lines[lines.index(host_header) + 1]
    assert web1.split()[:2] == ['web1', 'ok'] and web1.index('0.30 s') + 6 == host_header.index('L4 down after') + len('L4 down after')
