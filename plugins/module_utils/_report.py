# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rollout report: what each host went through, when, and what the clients saw.

Internal to the l4vip.rollout collection; not a public API.

Input: the per-host summaries the roles publish with ``set_stats`` (one source for AWX and
for this report), the role steps' timestamps the callback saw, and optionally the traffic
generator's JSON. Output: ``report.json``, ``timeline.svg`` (one bar per host, in the order
the rollout ran) and ``report.md`` that embeds the picture.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import typing as t

REPORT_JSON, TIMELINE_SVG, REPORT_MD, CONTRAST_SVG = 'report.json', 'timeline.svg', 'report.md', 'timeline-contrast.svg'

# Phases of a host's time out of the VIP, drawn in this order.
PHASES = (
    ('leaving', 'out_at', 'down_at', '#e0a030', 'taken out, the L4 still binds it'),
    ('out', 'down_at', 'in_at', '#8a8f98', 'out of the VIP: stop, drain, deploy, start'),
    ('returning', 'in_at', 'up_at', '#4a90d9', 'back in service, the L4 not yet binding it'),
)


def _number(value: t.Any) -> float | None:
    try:
        return None if value is None or value == '' else float(value)
    except (TypeError, ValueError):
        return None


def build(summaries: t.Mapping[str, t.Mapping[str, t.Any]], steps: t.Mapping[str, list[dict[str, t.Any]]] | None = None,
          traffic: t.Mapping[str, t.Any] | None = None, playbook: str | None = None, generated_at: float | None = None) -> dict[str, t.Any]:
    """The report as one JSON-able dict; hosts in the order they started."""
    steps = steps or {}
    hosts = []
    for host in set(summaries) | set(steps):
        summary = dict(summaries.get(host, {}))
        entry: dict[str, t.Any] = {'host': host, 'result': summary.get('result', 'unknown'), **summary, 'steps': steps.get(host, [])}
        for key in ('out_at', 'down_at', 'in_at', 'up_at'):
            entry[key] = _number(summary.get(key))
        entry['detection_down'] = _span(entry['out_at'], entry['down_at'])
        entry['detection_up'] = _span(entry['in_at'], entry['up_at'])
        entry['out_of_vip'] = _span(entry['out_at'], entry['up_at'])
        starts = [s['start'] for s in entry['steps'] if s.get('start') is not None] + [entry['out_at'] or float('inf')]
        entry['_first'] = min(starts)
        hosts.append(entry)
    hosts.sort(key=lambda entry: (entry['_first'], entry['host']))
    for entry in hosts:
        del entry['_first']
    report = {'playbook': playbook, 'generated_at': generated_at, 'hosts': hosts,
              'failed_hosts': [entry['host'] for entry in hosts if entry['result'] == 'failed']}
    if traffic is not None:
        report['traffic'] = traffic_summary(traffic)
    return report


def transition_time(wait: t.Any, started: t.Any) -> float | None:
    """When a member_wait's transition happened: the L4's own time (``l4_since``) when it tells one after ``started``,
    else when the module saw it (``ended_at``); None when the wait never ran."""
    if not isinstance(wait, t.Mapping) or wait.get('ended_at') is None:
        return None
    since, begin = _number(wait.get('l4_since')), _number(started)
    if since is not None and (begin is None or since >= begin):
        return since
    return _number(wait.get('ended_at'))


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def traffic_summary(traffic: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The traffic generator's counts, and the time of each failed request (for the picture)."""
    failures = [record['end'] for record in traffic.get('records', []) if record.get('outcome') == 'failed']
    keys = ('started', 'stopped', 'total', 'ok', 'retried', 'failed', 'failed_by_cause', 'by_server', 'requests_per_second')
    return dict({key: traffic.get(key) for key in keys}, failure_times=failures)


# --- the picture ---------------------------------------------------------------------------

def _extent(report: t.Mapping[str, t.Any]) -> tuple[float, float]:
    times = []
    for entry in report['hosts']:
        times += [entry[key] for key in ('out_at', 'down_at', 'in_at', 'up_at') if entry.get(key) is not None]
        times += [s[key] for s in entry['steps'] for key in ('start', 'end') if s.get(key) is not None]
    traffic = report.get('traffic') or {}
    times += [v for v in (traffic.get('started'), traffic.get('stopped')) if v is not None]
    if not times:
        return 0.0, 1.0
    start, end = min(times), max(times)
    return start, max(end, start + 1.0)


def _end_of_host(entry: t.Mapping[str, t.Any], last: float) -> float:
    """Where a host's bar ends: bound again, or (failed, never back) its last step or the end of the picture."""
    if entry.get('up_at') is not None:
        return entry['up_at']
    ends = [s['end'] for s in entry['steps'] if s.get('end') is not None]
    return last if entry.get('result') == 'failed' else max(ends, default=last)


def render_svg(report: t.Mapping[str, t.Any], width: int = 960) -> str:
    """One row per host (in rollout order) with its phases; failed requests as red ticks on top."""
    start, end = _extent(report)
    left, right, row, top = 130, 20, 26, 44
    hosts = report['hosts']
    height = top + row * len(hosts) + 50
    scale = (width - left - right) / (end - start)

    def x(moment: float) -> float:
        return round(left + (moment - start) * scale, 1)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="16" font-weight="bold">Rollout timeline: each host out of the VIP</text>']
    traffic = report.get('traffic')
    if traffic:
        parts.append(f'<text x="8" y="{top - 8}">failed requests</text>')
        for moment in traffic.get('failure_times', []):
            parts.append(f'<line x1="{x(moment)}" x2="{x(moment)}" y1="{top - 20}" y2="{top - 4}" stroke="#d0021b" stroke-width="1.5"/>')
    for index, entry in enumerate(hosts):
        y = top + index * row
        failed = entry.get('result') == 'failed'
        label = html.escape(f"{entry['host']}{' (failed)' if failed else ''}")
        parts.append(f'<text x="8" y="{y + 16}" fill="{"#d0021b" if failed else "black"}">{label}</text>')
        last = _end_of_host(entry, end)
        outline = ' stroke="#d0021b" stroke-width="2"' if failed else ''
        for name, begin_key, end_key, colour, meaning in PHASES:
            begin = entry.get(begin_key)
            if begin is None:
                continue
            finish = entry.get(end_key)
            finish = last if finish is None else finish
            if finish <= begin:
                continue
            title = html.escape(f"{entry['host']} {name} ({meaning}): {finish - begin:.2f}s")
            parts.append(f'<rect class="phase {name}" data-host="{html.escape(entry["host"])}" x="{x(begin)}" y="{y + 4}" '
                         f'width="{max(x(finish) - x(begin), 1.0)}" height="{row - 8}" fill="{colour}"{outline}>'
                         f'<title>{title}</title></rect>')
    axis = top + row * len(hosts) + 6
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{axis}" y2="{axis}" stroke="black"/>')
    for tick in _ticks(end - start):
        parts.append(f'<line x1="{x(start + tick)}" x2="{x(start + tick)}" y1="{axis}" y2="{axis + 4}" stroke="black"/>')
        parts.append(f'<text x="{x(start + tick)}" y="{axis + 16}" text-anchor="middle">{tick:g}s</text>')
    legend = axis + 34
    for index, (name, _begin, _end, colour, meaning) in enumerate(PHASES):
        lx = left + index * 270
        parts.append(f'<rect x="{lx}" y="{legend - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="{legend}">{html.escape(meaning)}</text>')
    parts.append('</svg>')
    return '\n'.join(parts) + '\n'


def _ticks(span: float, most: int = 10) -> list[float]:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= most:
            return [round(i * step, 3) for i in range(int(span / step) + 1)]
    return [0.0, span]


# --- the words -----------------------------------------------------------------------------

def _seconds(value: float | None) -> str:
    return '-' if value is None else f'{value:.2f} s'


def _window(window: t.Any) -> str:
    if not isinstance(window, dict):
        return '-'
    return f"({window.get('low', 0):g}, {window.get('high', 0):g}] s"


def render_markdown(report: t.Mapping[str, t.Any]) -> str:
    lines = ['# Rollout report', '']
    traffic = report.get('traffic')
    if traffic:
        lines += [f"Requests: **{traffic['ok']} ok**, {traffic['retried']} retried, **{traffic['failed']} failed** "
                  f"of {traffic['total']} ({traffic['requests_per_second']} per second).", '']
    failed = report.get('failed_hosts') or []
    lines += [f"Hosts: {len(report['hosts'])}, failed: {', '.join(failed) if failed else 'none'}.", '',
              f'![Rollout timeline]({TIMELINE_SVG})', '',
              '| host | result | out of the VIP | L4 let go after | model window | L4 bound again after | model window | sessions cut |',
              '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for entry in report['hosts']:
        result = entry['result'] if entry['result'] != 'failed' else f"failed at {entry.get('failed_step', '?')}"
        lines.append(f"| {entry['host']} | {result} | {_seconds(entry['out_of_vip'])} | {_seconds(entry['detection_down'])} | "
                     f"{_window(entry.get('down_window'))} | {_seconds(entry['detection_up'])} | {_window(entry.get('up_window'))} | "
                     f"{len(entry.get('cut_sessions') or [])} |")
    lines.append('')
    lines += _cut_lines(report)
    contrast = report.get('contrast')
    if contrast:
        lines += _contrast_lines(report, contrast)
    return '\n'.join(lines)


def _cut_lines(report: t.Mapping[str, t.Any]) -> list[str]:
    """The client sessions a forced drain cut, per host: each one failed the request it carried."""
    lines = []
    for entry in report['hosts']:
        for cut in entry.get('cut_sessions') or []:
            lines.append(f"- {entry['host']}: cut {cut['peer']} ({cut['state']}, seen open {_seconds(cut.get('open_for'))}) "
                         f"at the drain timeout")
    return ['Sessions cut by a forced drain (the request each carried failed):', ''] + lines + [''] if lines else []


def _contrast_lines(report: t.Mapping[str, t.Any], contrast: t.Mapping[str, t.Any]) -> list[str]:
    """The same fleet and traffic with another flow, side by side, so the reader sees what the sequence buys."""
    label = contrast.get('label', 'contrast')
    lines = [f'## Side by side: this rollout and the {label}', '', f'| requests | this rollout | {label} |', '| --- | --- | --- |']
    ours, theirs = report.get('traffic') or {}, contrast.get('traffic') or {}
    for key in ('total', 'ok', 'retried', 'failed', 'requests_per_second'):
        lines.append(f'| {key} | {ours.get(key, "-")} | {theirs.get(key, "-")} |')
    lines += ['', f'![{label} timeline]({CONTRAST_SVG})', '']
    return lines


def side_by_side(report: t.Mapping[str, t.Any]) -> str:
    """A few plain lines for a terminal."""
    ours = report.get('traffic') or {}
    lines = [f"{'':22}{'safe sequence':>16}"]
    contrast = report.get('contrast') or {}
    theirs = contrast.get('traffic') or {}
    if contrast:
        lines[0] += f"{contrast.get('label', 'contrast'):>16}"
    for key in ('total', 'ok', 'retried', 'failed'):
        lines.append(f'{key:22}{ours.get(key, "-"):>16}' + (f'{theirs.get(key, "-"):>16}' if contrast else ''))
    for entry in report['hosts']:
        lines.append(f"{entry['host']:10} out of the VIP {_seconds(entry['out_of_vip'])}; the L4 let go after "
                     f"{_seconds(entry['detection_down'])} (model {_window(entry.get('down_window'))}), bound again after "
                     f"{_seconds(entry['detection_up'])} (model {_window(entry.get('up_window'))})")
    return '\n'.join(lines)


def write(report: t.Mapping[str, t.Any], directory: str) -> dict[str, str]:
    """Write the three files; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, name) for name in (REPORT_JSON, TIMELINE_SVG, REPORT_MD)}
    contents = {REPORT_JSON: json.dumps(report, indent=1, sort_keys=True) + '\n', TIMELINE_SVG: render_svg(report),
                REPORT_MD: render_markdown(report)}
    if report.get('contrast'):
        paths[CONTRAST_SVG] = os.path.join(directory, CONTRAST_SVG)
        contents[CONTRAST_SVG] = render_svg(report['contrast'])
    for name, path in paths.items():
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(contents[name])
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
    parser.add_argument('--contrast-summaries', help='per-host summaries of another flow over the same fleet')
    parser.add_argument('--contrast-traffic', help="that flow's traffic JSON")
    parser.add_argument('--contrast-label', default='naive flow')
    parser.add_argument('--out', help='directory for the files (default: next to --report, or the current one)')
    args = parser.parse_args(argv)
    report = _load(args.report) if args.report else build(_load(args.summaries), generated_at=None)
    if args.traffic:
        report['traffic'] = traffic_summary(_load(args.traffic))
    if args.contrast_summaries or args.contrast_traffic:
        contrast = build(_load(args.contrast_summaries) or {}, traffic=_load(args.contrast_traffic))
        report['contrast'] = dict(contrast, label=args.contrast_label)
    out = args.out or (os.path.dirname(os.path.abspath(args.report)) if args.report else os.getcwd())
    paths = write(report, out)
    sys.stdout.write(f"{side_by_side(report)}\nreport: {paths[REPORT_MD]}\n")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
