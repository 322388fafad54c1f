# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rollout report's picture: ``timeline.svg``, drawn from the report's data.

Internal to the l4vip.rollout collection; not a public API.

A panel per flow, every panel on one scale of seconds since that flow's traffic started; a
row per host, in the order the rollout ran, its bar coloured by phase from leaving the VIP to
the L4 binding it again; the timing model's windows as brackets; every failed request a red
mark at the time it failed. Plain SVG text, so the report needs nothing installed.
"""

from __future__ import annotations

import html
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._options import number

TIMES = ('out_at', 'down_at', 'in_at', 'up_at')

# Phases of a host's time out of the VIP, drawn in this order: (name, from, to, colour, meaning).
PHASES = (
    ('leaving', 'out_at', 'down_at', '#e0a030', 'taken out, the L4 still binds it'),
    ('out', 'down_at', 'in_at', '#8a8f98', 'out of the VIP: stop, drain, deploy, start'),
    ('returning', 'in_at', 'up_at', '#4a90d9', 'back in service, the L4 not yet binding it'),
)
STYLE = {name: (colour, meaning) for name, _begin, _end, colour, meaning in PHASES}
# The release prepared while the member still serves: a thin line along the top of its row, apart from the bar of its
# time out of the VIP.
PREPARING = ('prepare_started_at', 'prepared_at', '#7cb342', 'preparing the release, still serving')
FAILED_RED = '#d0021b'
WINDOW_INK = '#222222'
NONE_FAILED_GREEN = '#2e7d32'


def seconds_text(value: float | None) -> str:
    """A duration as the report writes it everywhere: two decimals, or '-' where unknown."""
    return '-' if value is None else f'{value:.2f} s'


class Layout:
    """Where things go: a panel per flow, all on one scale of seconds since each flow's start (its traffic's start)."""

    width, left, right_text, pad = 1240, 80, 420, 10
    title_h, failures_h, row_h, axis_h = 22, 24, 26, 38

    def __init__(self, flows: t.Sequence[t.Mapping[str, t.Any]]) -> None:
        self.flows = list(flows)
        self.origins = [flow_origin(flow) for flow in self.flows]
        self.span = max(flow_end(flow) - origin for flow, origin in zip(self.flows, self.origins))
        self.plot_width = self.width - self.left - self.right_text - self.pad
        self.tops = []
        y = 8
        for flow in self.flows:
            self.tops.append(y)
            y += self.panel_height(flow)
        self.height = y + 44  # the legend

    def panel_height(self, flow: t.Mapping[str, t.Any]) -> int:
        return self.title_h + self.failures_h + self.row_h * len(flow['hosts']) + self.axis_h

    def x(self, panel: int, moment: float) -> float:
        """The pixel column of an epoch time in a panel."""
        return round(self.left + (moment - self.origins[panel]) * self.plot_width / self.span, 1)

    def failures_y(self, panel: int) -> tuple[int, int]:
        top = self.tops[panel] + self.title_h
        return top + 3, top + self.failures_h - 3

    def row_y(self, panel: int, index: int) -> tuple[int, int]:
        """The top and bottom of a host's bars."""
        top = self.tops[panel] + self.title_h + self.failures_h + index * self.row_h
        return top + 5, top + self.row_h - 5

    def axis_y(self, panel: int) -> int:
        return self.tops[panel] + self.title_h + self.failures_h + self.row_h * len(self.flows[panel]['hosts']) + 4


def flow_origin(flow: t.Mapping[str, t.Any]) -> float:
    """A flow's 0 s: when its traffic started, else when its first host started to leave."""
    started = number((flow.get('traffic') or {}).get('started'))
    if started is not None:
        return started
    moments = [entry[key] for entry in flow['hosts'] for key in TIMES if entry.get(key) is not None]
    moments += [s['start'] for entry in flow['hosts'] for s in entry.get('steps', []) if s.get('start') is not None]
    return min(moments, default=0.0)


def flow_end(flow: t.Mapping[str, t.Any]) -> float:
    """The last moment worth drawing: the traffic's stop, or the last thing a host did."""
    moments = [entry[key] for entry in flow['hosts'] for key in TIMES if entry.get(key) is not None]
    moments += [s['end'] for entry in flow['hosts'] for s in entry.get('steps', []) if s.get('end') is not None]
    moments += [f['at'] for f in (flow.get('traffic') or {}).get('failures', [])]
    stopped = number((flow.get('traffic') or {}).get('stopped'))
    moments += [stopped] if stopped is not None else []
    origin = flow_origin(flow)
    return max(moments + [origin + 1.0])


def host_phases(entry: t.Mapping[str, t.Any], end: float) -> list[tuple[str, float, float]]:
    """(phase, from, to) of a host's bar. A phase whose end the records lack ends where the next known moment is; a
    failed host that never came back stays out to ``end``."""
    moments = {key: entry.get(key) for key in TIMES}
    phases = []
    for index, (name, begin_key, _end_key, _colour, _meaning) in enumerate(PHASES):
        begin = moments[begin_key]
        if begin is None:
            continue
        later = [moments[key] for key in TIMES[index + 1:] if moments[key] is not None]
        finish = later[0] if later else _open_end(entry, end)
        if finish > begin:
            phases.append((name, begin, finish))
    return phases


def _open_end(entry: t.Mapping[str, t.Any], end: float) -> float:
    if entry.get('result') == 'failed':
        return end
    ends = [s['end'] for s in entry.get('steps', []) if s.get('end') is not None]
    return max(ends, default=end)


def flow_title(flow: t.Mapping[str, t.Any]) -> str:
    """A panel's title: the flow, and what its clients saw."""
    traffic = flow.get('traffic')
    label = flow.get('label', 'rollout')
    if not traffic:
        return f'{label}: no traffic recorded'
    what = 'probe requests' if traffic.get('source') == 'probe' else 'requests'
    return f"{label}: {traffic.get('total', 0):,} {what}, {traffic.get('failed', 0):,} failed, {traffic.get('retried', 0):,} retried"


def render_svg(report: t.Mapping[str, t.Any]) -> str:
    """The report's flow, and the contrasting flow under it on the same scale."""
    flows = [report] + ([report['contrast']] if report.get('contrast') else [])
    layout = Layout(flows)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" height="{layout.height}" '
             f'font-family="DejaVu Sans, sans-serif" font-size="12">',
             f'<rect width="{layout.width}" height="{layout.height}" fill="white"/>']
    for panel, flow in enumerate(flows):
        parts += _panel(layout, panel, flow)
    parts += _legend(layout)
    parts.append('</svg>')
    return '\n'.join(parts) + '\n'


def _panel(layout: Layout, panel: int, flow: t.Mapping[str, t.Any]) -> list[str]:
    top, parts = layout.tops[panel], []
    parts.append(f'<text x="8" y="{top + 15}" font-weight="bold" font-size="14">{html.escape(flow_title(flow))}</text>')
    low, high = layout.failures_y(panel)
    traffic = flow.get('traffic')
    if traffic is not None:
        parts.append(f'<text x="8" y="{high - 3}" fill="{FAILED_RED}">failed</text>')
        for failure in traffic.get('failures', []):
            x = layout.x(panel, failure['at'])
            parts.append(f'<line class="failure" x1="{x}" x2="{x}" y1="{low}" y2="{high}" stroke="{FAILED_RED}" stroke-width="2">'
                         f'<title>{html.escape(_failure_title(failure, layout.origins[panel]))}</title></line>')
        if not traffic.get('failures'):
            parts.append(f'<text x="{layout.left + 4}" y="{high - 3}" fill="{NONE_FAILED_GREEN}">0 failed</text>')
    end = layout.origins[panel] + layout.span
    for index, entry in enumerate(flow['hosts']):
        parts += _host_row(layout, panel, index, entry, end)
    parts += _axis(layout, panel)
    return parts


def _failure_title(failure: t.Mapping[str, t.Any], origin: float) -> str:
    where = f" {failure['target']}" if failure.get('target') else ''
    return f"failed at {failure['at'] - origin:.2f} s: {failure.get('cause')} ({failure.get('kind')}){where}"


def _host_row(layout: Layout, panel: int, index: int, entry: t.Mapping[str, t.Any], end: float) -> list[str]:
    y0, y1 = layout.row_y(panel, index)
    failed = entry.get('result') == 'failed'
    host = html.escape(entry['host'])
    parts = [f'<text x="8" y="{y1 - 3}" fill="{FAILED_RED if failed else "black"}">{host}{" (failed)" if failed else ""}</text>']
    outline = f' stroke="{FAILED_RED}" stroke-width="2"' if failed else ''
    begin_key, end_key, colour, meaning = PREPARING
    prepare = [number(entry.get(begin_key)), number(entry.get(end_key))]
    if None not in prepare and prepare[1] > prepare[0]:
        x0, x1 = layout.x(panel, prepare[0]), layout.x(panel, prepare[1])
        parts.append(f'<rect class="preparing" data-host="{host}" x="{x0}" y="{y0}" width="{max(x1 - x0, 1.0)}" height="3" fill="{colour}">'
                     f'<title>{host} preparing ({meaning}): {prepare[1] - prepare[0]:.2f} s</title></rect>')
    for name, begin, finish in host_phases(entry, end):
        colour, meaning = STYLE[name]
        x0, x1 = layout.x(panel, begin), layout.x(panel, finish)
        parts.append(f'<rect class="phase {name}" data-host="{host}" x="{x0}" y="{y0}" width="{max(x1 - x0, 1.0)}" '
                     f'height="{y1 - y0}" fill="{colour}"{outline}><title>{host} {name} ({meaning}): {finish - begin:.2f} s</title></rect>')
    for start_key, window_key in (('out_at', 'down_window'), ('in_at', 'up_window')):
        parts += _window_mark(layout, panel, entry.get(start_key), entry.get(window_key), y0)
    parts.append(f'<text x="{layout.width - layout.right_text}" y="{y1 - 3}">{html.escape(row_words(entry))}</text>')
    return parts


def _window_mark(layout: Layout, panel: int, start: float | None, window: t.Any, y: int) -> list[str]:
    """The timing model's window for a transition: a bracket above the bar, from start+low to start+high."""
    if start is None or not isinstance(window, t.Mapping) or window.get('high') is None:
        return []
    x0, x1 = layout.x(panel, start + float(window.get('low', 0))), layout.x(panel, start + float(window['high']))
    return [f'<path class="window" d="M{x0},{y + 4} V{y - 3} H{x1} V{y + 4}" fill="none" stroke="{WINDOW_INK}" stroke-width="1.5"/>']


def row_words(entry: t.Mapping[str, t.Any]) -> str:
    """The durations of a host's row, written out."""
    if entry.get('out_of_vip') is not None:
        words = f"out {entry['out_of_vip']:.2f} s"
    elif entry.get('result') == 'failed':
        words = 'never back'
    else:
        words = 'out -'
    words += f"; L4 down after {seconds_text(entry.get('detection_down'))}, bound after {seconds_text(entry.get('detection_up'))}"
    if entry.get('failed_requests_while_out'):
        words += f"; {entry['failed_requests_while_out']} failed"
    return words


def _axis(layout: Layout, panel: int) -> list[str]:
    y = layout.axis_y(panel)
    right = layout.left + layout.plot_width
    parts = [f'<line x1="{layout.left}" x2="{right}" y1="{y}" y2="{y}" stroke="black"/>']
    for tick in ticks(layout.span):
        x = layout.x(panel, layout.origins[panel] + tick)
        parts.append(f'<line class="tick" x1="{x}" x2="{x}" y1="{y}" y2="{y + 4}" stroke="black"/>')
        parts.append(f'<text x="{x}" y="{y + 16}" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<text x="{layout.left + layout.plot_width / 2}" y="{y + 31}" text-anchor="middle" fill="#444">'
                 f'seconds since traffic started</text>')
    return parts


def ticks(span: float, most: int = 12) -> list[float]:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= most:
            return [round(i * step, 3) for i in range(int(span / step + 1e-9) + 1)]
    return [0.0, span]


def _legend(layout: Layout) -> list[str]:
    """Two lines: the phases' colours; the window bracket and the failure mark."""
    y = layout.height - 26
    parts, x = [], 8
    for _name, _begin, _end, colour, meaning in PHASES + (('preparing',) + PREPARING,):
        parts.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="{y}">{html.escape(meaning)}</text>')
        x += 16 + 6.8 * len(meaning) + 24
    y += 18
    parts.append(f'<path d="M8,{y} V{y - 9} H30 V{y}" fill="none" stroke="{WINDOW_INK}" stroke-width="1.5"/>')
    parts.append(f'<text x="36" y="{y}">the timing model\'s window for the L4\'s mark-down (after out) and bind (after back in service)</text>')
    parts.append(f'<line x1="640" x2="640" y1="{y - 10}" y2="{y + 2}" stroke="{FAILED_RED}" stroke-width="2"/>')
    parts.append(f'<text x="648" y="{y}">a failed request, at the time it failed</text>')
    return parts
