# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rollout report: what each host went through, when, and what the clients saw.

Internal to the l4vip.rollout collection; not a public API.

Input: the per-host summaries the roles publish with ``set_stats`` (one source for AWX and
for this report), the role steps' timestamps the callback saw, optionally the requests the
traffic generator or the probe recorded, and optionally the L4's own event log. Output:
``report.json``, ``timeline.svg`` (drawn by ``_report_timeline``) and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._options import number
from ansible_collections.l4vip.rollout.plugins.plugin_utils._report_timeline import TIMES, render_svg, seconds_text

REPORT_JSON, TIMELINE_SVG, REPORT_MD = 'report.json', 'timeline.svg', 'report.md'


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


# --- the data ------------------------------------------------------------------------------

def build(summaries: t.Mapping[str, t.Mapping[str, t.Any]], steps: t.Mapping[str, list[dict[str, t.Any]]] | None = None,
          traffic: t.Mapping[str, t.Any] | None = None, playbook: str | None = None, generated_at: float | None = None,
          label: str = 'rollout', l4_events: t.Sequence[t.Mapping[str, t.Any]] | None = None) -> dict[str, t.Any]:
    """The report of one flow as one JSON-able dict; hosts in the order they started.

    ``traffic`` is what the traffic generator (or the probe) wrote: its counts and its ``requests``.
    ``l4_events`` is the L4's own log of health transitions; where given, each host's mark-down and
    bind times are the L4's (a flow with no waits of its own, such as the naive one, has no other)."""
    steps = steps or {}
    hosts = []
    for host in set(summaries) | set(steps):
        summary = dict(summaries.get(host) or {})
        entry: dict[str, t.Any] = {'host': host, 'result': summary.get('result', 'unknown'), **summary}
        if steps.get(host):
            entry['steps'] = steps[host]
        for key in TIMES:
            entry[key] = number(summary.get(key))
        if l4_events is not None:
            entry.update(l4_transitions(l4_events, summary.get('member', host), entry['out_at'], entry['in_at']))
        entry['detection_down'] = _span(entry['out_at'], entry['down_at'])
        entry['detection_up'] = _span(entry['in_at'], entry['up_at'])
        entry['out_of_vip'] = _span(entry['out_at'], entry['up_at'])
        entry['preparing'] = _span(number(summary.get('prepare_started_at')), number(summary.get('prepared_at')))
        hosts.append(entry)
    hosts.sort(key=lambda entry: (_first_moment(entry), entry['host']))
    report: dict[str, t.Any] = {'label': label, 'playbook': playbook, 'generated_at': time.time() if generated_at is None else generated_at,
                                'hosts': hosts, 'failed_hosts': [entry['host'] for entry in hosts if entry['result'] == 'failed']}
    if traffic is not None:
        add_traffic(report, traffic)
    return report


def _first_moment(entry: t.Mapping[str, t.Any]) -> float:
    starts = [s['start'] for s in entry.get('steps', []) if s.get('start') is not None]
    return min(starts + [entry['out_at'] if entry.get('out_at') is not None else float('inf')])


def l4_transitions(events: t.Sequence[t.Mapping[str, t.Any]], member: str, out_at: float | None, in_at: float | None) -> dict[str, float]:
    """The L4's own mark-down after ``out_at`` and its bind after ``in_at`` (and after that mark-down), from its event log."""
    health = sorted((e for e in events if e.get('kind') == 'health' and e.get('member') == member), key=lambda e: e['at'])
    found: dict[str, float] = {}
    if out_at is not None:
        down = next((e['at'] for e in health if e['at'] >= out_at and e.get('to') == 'down'), None)
        if down is not None:
            found['down_at'] = down
    if in_at is not None:
        after = max(in_at, found.get('down_at', in_at))
        up = next((e['at'] for e in health if e['at'] >= after and e.get('to') == 'up'), None)
        if up is not None:
            found['up_at'] = up
    return found


def traffic_summary(traffic: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The traffic's counts, and each failed request (when it failed, why, which target) for the picture."""
    failures = [{'at': record['end'], 'cause': record.get('cause'), 'kind': record.get('kind'), 'target': record.get('target')}
                for record in traffic.get('requests', []) if record.get('outcome') == 'failed']
    keys = ('source', 'targets', 'started', 'stopped', 'total', 'ok', 'retried', 'failed', 'failed_by_cause', 'by_server',
            'requests_per_second')
    return dict({key: traffic.get(key) for key in keys if key in traffic}, failures=sorted(failures, key=lambda f: f['at']))


def add_traffic(report: dict[str, t.Any], traffic: t.Mapping[str, t.Any]) -> None:
    """Attach the traffic, and count each host's failed requests while it was out (from out_at until bound again)."""
    report['traffic'] = summary = traffic_summary(traffic)
    stopped = number(summary.get('stopped')) or float('inf')
    for entry in report['hosts']:
        if entry.get('out_at') is None:
            continue
        until = entry['up_at'] if entry.get('up_at') is not None else stopped
        entry['failed_requests_while_out'] = sum(1 for f in summary['failures'] if entry['out_at'] <= f['at'] <= until)


def with_contrast(report: dict[str, t.Any], contrast: dict[str, t.Any]) -> dict[str, t.Any]:
    """The same fleet under another flow, kept beside this one; hosts the other flow knows no model window for take
    this flow's (same profile)."""
    windows = {entry['host']: entry for entry in report['hosts']}
    for entry in contrast['hosts']:
        for key in ('down_window', 'up_window'):
            if entry.get(key) is None and windows.get(entry['host'], {}).get(key) is not None:
                entry[key] = windows[entry['host']][key]
    return dict(report, contrast=contrast)


# --- the words -----------------------------------------------------------------------------

def _window(window: t.Any) -> str:
    if not isinstance(window, dict):
        return '-'
    return f"({window.get('low', 0):g}, {window.get('high', 0):g}] s"


def _result(entry: t.Mapping[str, t.Any]) -> str:
    return entry['result'] if entry['result'] != 'failed' else f"failed at {entry.get('failed_step', '?')}"


def render_markdown(report: t.Mapping[str, t.Any]) -> str:
    flows = [report] + ([report['contrast']] if report.get('contrast') else [])
    lines = ['# Rollout report', '']
    if report.get('playbook'):
        lines += [f"Playbook `{report['playbook']}`, report written {_when(report.get('generated_at'))}.", '']
    if len(flows) > 1:
        lines += _side_by_side_table(flows, markdown=True) + ['']
    lines += [f'![Rollout timeline: {" and ".join(flow.get("label", "rollout") for flow in flows)}]({TIMELINE_SVG})', '']
    for flow in flows:
        lines += [f"## {flow.get('label', 'rollout')}", '']
        traffic = flow.get('traffic')
        if traffic:
            lines += [f"Requests: **{traffic.get('ok')} ok**, {traffic.get('retried')} retried, **{traffic.get('failed')} failed** "
                      f"of {traffic.get('total')} ({traffic.get('requests_per_second')} per second).", '']
        failed = flow.get('failed_hosts') or []
        lines += [f"Hosts: {len(flow['hosts'])}, failed: {', '.join(failed) if failed else 'none'}.", '',
                  '| host | result | prepared, still serving | out of the VIP | L4 let go after | model window | L4 bound again after '
                  '| model window | failed requests while out | sessions cut |',
                  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
        for entry in flow['hosts']:
            lines.append(f"| {entry['host']} | {_result(entry)} | {seconds_text(entry.get('preparing'))} | {seconds_text(entry['out_of_vip'])} | "
                         f"{seconds_text(entry['detection_down'])} | "
                         f"{_window(entry.get('down_window'))} | {seconds_text(entry['detection_up'])} | {_window(entry.get('up_window'))} | "
                         f"{entry.get('failed_requests_while_out', '-')} | {len(entry.get('cut_sessions') or [])} |")
        lines.append('')
        lines += _cut_lines(flow)
    lines += ['"retried": a reused keep-alive connection the server had closed before any byte of the answer, sent again on a '
              'new connection as browsers and HTTP libraries do - the user sees nothing. "failed": the client got no answer '
              '(refused, reset, timed out) or a bad one.', '']
    return '\n'.join(lines)


def _when(moment: t.Any) -> str:
    value = number(moment)
    return '-' if value is None else time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(value))


def _cut_lines(report: t.Mapping[str, t.Any]) -> list[str]:
    """The client sessions a forced drain cut, per host: each one failed the request it carried."""
    lines = []
    for entry in report['hosts']:
        for cut in entry.get('cut_sessions') or []:
            lines.append(f"- {entry['host']}: cut {cut['peer']} ({cut['state']}, seen open {seconds_text(cut.get('open_for'))}) "
                         f"at the drain timeout")
    return ['Sessions cut by a forced drain (the request each carried failed):', ''] + lines + [''] if lines else []


def _side_by_side_table(flows: t.Sequence[t.Mapping[str, t.Any]], markdown: bool) -> list[str]:
    """Requests per flow, a column each."""
    header = ['requests'] + [flow.get('label', 'rollout') for flow in flows]
    rows = [[key] + [_count((flow.get('traffic') or {}).get(key)) for flow in flows]
            for key in ('total', 'ok', 'retried', 'failed', 'requests_per_second')]
    if markdown:
        return ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)] + ['| ' + ' | '.join(row) + ' |' for row in rows]
    return _aligned([header] + rows)


def _count(value: t.Any) -> str:
    if value is None:
        return '-'
    return f'{value:,}' if isinstance(value, int) else f'{value:,.1f}'


def _aligned(rows: t.Sequence[t.Sequence[str]]) -> list[str]:
    """Plain text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ['  '.join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def terminal_summary(report: t.Mapping[str, t.Any]) -> str:
    """Aligned plain-text tables for a terminal: requests per flow, then each flow's hosts."""
    flows = [report] + ([report['contrast']] if report.get('contrast') else [])
    lines = _side_by_side_table(flows, markdown=False) + ['']
    for flow in flows:
        rows = [['host', 'result', 'out of VIP', 'L4 down after', 'model window', 'bound after', 'model window', 'failed while out']]
        for entry in flow['hosts']:
            rows.append([entry['host'], _result(entry), seconds_text(entry['out_of_vip']), seconds_text(entry['detection_down']),
                         _window(entry.get('down_window')), seconds_text(entry['detection_up']), _window(entry.get('up_window')),
                         str(entry.get('failed_requests_while_out', '-'))])
        lines += [f"{flow.get('label', 'rollout')}:"] + ['  ' + line for line in _aligned(rows)] + ['']
    return '\n'.join(lines).rstrip() + '\n'


def write(report: t.Mapping[str, t.Any], directory: str) -> dict[str, str]:
    """Write the three files; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    contents = {REPORT_JSON: json.dumps(report, indent=1, sort_keys=True) + '\n', TIMELINE_SVG: render_svg(report),
                REPORT_MD: render_markdown(report)}
    paths = {}
    for name, content in contents.items():
        paths[name] = os.path.join(directory, name)
        with open(paths[name], 'w', encoding='utf-8') as handle:
            handle.write(content)
    return paths


def _load(path: str | None) -> t.Any:
    if not path:
        return None
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def main(argv: t.Sequence[str] | None = None) -> int:
    """Render a report from the callback's report.json or from the roles' summaries, with the traffic seen."""
    parser = argparse.ArgumentParser(description='Render an l4vip.rollout report, optionally with traffic and a contrasting flow.')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--report', help='the report.json the callback wrote')
    source.add_argument('--summaries', help="a JSON object of the roles' per-host summaries (what they give set_stats)")
    parser.add_argument('--traffic', help="the traffic generator's JSON (--json), to count and mark failed requests")
    parser.add_argument('--l4-events', help="the L4's event log (the emulator's /api/events), for its own transition times")
    parser.add_argument('--label', help='what this flow is called in the report')
    parser.add_argument('--playbook', help='the playbook the report is of')
    parser.add_argument('--contrast-summaries', help='per-host summaries of another flow over the same fleet')
    parser.add_argument('--contrast-traffic', help="that flow's traffic JSON")
    parser.add_argument('--contrast-label', default='naive flow')
    parser.add_argument('--out', help='directory for the files (default: next to --report, or the current one)')
    args = parser.parse_args(argv)
    events = _load(args.l4_events)
    if args.report:
        report = _load(args.report)
    else:
        report = build(_load(args.summaries), playbook=args.playbook, label=args.label or 'rollout', l4_events=events)
    if args.label:
        report['label'] = args.label
    if args.traffic:
        add_traffic(report, _load(args.traffic))
    if args.contrast_summaries or args.contrast_traffic:
        contrast = build(_load(args.contrast_summaries) or {}, traffic=_load(args.contrast_traffic), label=args.contrast_label,
                         playbook=args.playbook, l4_events=events)
        report = with_contrast(report, contrast)
    out = args.out or (os.path.dirname(os.path.abspath(args.report)) if args.report else os.getcwd())
    paths = write(report, out)
    sys.stdout.write(f"{terminal_summary(report)}report: {paths[REPORT_MD]}\n")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
