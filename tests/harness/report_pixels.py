"""What a reader of a rollout report's timeline sees, read from its pixels.

The SVG is rendered by CairoSVG (libcairo) as a browser would draw it, and the picture is
checked against the report's own data: a red mark in a flow's failure row wherever a request
failed and nowhere else, "0 failed" where none did, and every host's bar starting where it
left and ending where the L4 bound it again.
"""

from __future__ import annotations

import io
import json
import pathlib
import typing as t

import cairosvg
from PIL import Image

from ansible_collections.l4vip.rollout.plugins.plugin_utils import _report, _report_timeline

TOLERANCE_PX = 2  # anti-aliasing and the renderer's rounding


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _near(pixel: t.Sequence[int], colour: tuple[int, int, int], slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel[:3], colour))


def render(svg_path: pathlib.Path) -> Image.Image:
    return Image.open(io.BytesIO(cairosvg.svg2png(url=str(svg_path)))).convert('RGB')


def _columns(image: Image.Image, y: int, x0: int, x1: int, colours: t.Sequence[tuple[int, int, int]]) -> list[int]:
    return [x for x in range(max(x0, 0), min(x1, image.width)) if any(_near(image.getpixel((x, y)), c) for c in colours)]


def _clusters(xs: t.Sequence[int]) -> list[tuple[int, int]]:
    spans: list[list[int]] = []
    for x in xs:
        if spans and x <= spans[-1][1] + 1:
            spans[-1][1] = x
        else:
            spans.append([x, x])
    return [(span[0], span[1]) for span in spans]


def check_timeline(report_dir: pathlib.Path) -> dict[str, t.Any]:
    """Assert the picture shows the report's data; returns what it saw, per flow."""
    report = json.loads((report_dir / _report.REPORT_JSON).read_text())
    flows = [report] + ([report['contrast']] if report.get('contrast') else [])
    image = render(report_dir / _report.TIMELINE_SVG)
    layout = _report_timeline.Layout(flows)
    assert (image.width, image.height) == (layout.width, layout.height)
    red, phases = _rgb(_report_timeline.FAILED_RED), [_rgb(colour) for *_rest, colour, _meaning in _report_timeline.PHASES]
    plot = (layout.left, layout.left + layout.plot_width + 1)
    seen: dict[str, t.Any] = {}
    for panel, flow in enumerate(flows):
        low, high = layout.failures_y(panel)
        marks = _clusters(_columns(image, (low + high) // 2, *plot, [red]))
        expected = [layout.x(panel, failure['at']) for failure in flow['traffic']['failures']]
        for x in expected:
            assert any(a - TOLERANCE_PX <= x <= b + TOLERANCE_PX for a, b in marks), (flow['label'], x, marks)
        for a, b in marks:
            assert any(a - TOLERANCE_PX <= x <= b + TOLERANCE_PX for x in expected), (flow['label'], 'a red mark where nothing failed', a, b)
        if not expected:  # the words "0 failed", in green, in the row where marks would be
            assert _columns(image, high - 7, *plot, [_rgb(_report_timeline.NONE_FAILED_GREEN)]), (flow['label'], 'no "0 failed"')
        ends = {}
        for index, entry in enumerate(flow['hosts']):
            y0, y1 = layout.row_y(panel, index)
            coloured = _columns(image, (y0 + y1) // 2, *plot, phases)
            assert coloured, (flow['label'], entry['host'], 'no bar')
            assert abs(coloured[0] - layout.x(panel, entry['out_at'])) <= TOLERANCE_PX, (entry['host'], coloured[0], entry['out_at'])
            assert abs(coloured[-1] + 1 - layout.x(panel, entry['up_at'])) <= TOLERANCE_PX, (entry['host'], coloured[-1], entry['up_at'])
            ends[entry['host']] = (coloured[0], coloured[-1] + 1)
        seen[flow['label']] = {'marks': marks, 'failures': len(expected), 'bars': ends}
    return seen


def check_rehearsal_report(report_dir: pathlib.Path, members: int) -> None:
    """A rehearsal's report: the safe flow failed no request and the naive one some, over the same fleet and traffic;
    each member's mark-down fell in the timing model's window; the picture shows it all where it happened."""
    report = json.loads((report_dir / _report.REPORT_JSON).read_text())
    assert report['playbook'] == 'l4vip.rollout.rehearsal' and report['generated_at'] > 0
    assert report['traffic']['failed'] == 0 and report['traffic']['total'] > 1000, report['traffic']
    assert report['contrast']['traffic']['failed'] > 0, report['contrast']['traffic']
    hosts = [f'web{n}' for n in range(1, members + 1)]
    assert [entry['host'] for entry in report['hosts']] == hosts
    for entry in report['hosts']:
        assert entry['result'] == 'ok'
        # The L4's own detection, against the model's window (scaled), with the emulator's tolerance for a loaded machine.
        window = entry['down_window']
        assert window['low'] - 0.05 < entry['detection_down'] <= window['high'] + 0.1, entry
    assert [entry['result'] for entry in report['contrast']['hosts']] == ['no waits'] * members
    seen = check_timeline(report_dir)
    assert [seen[flow['label']]['failures'] > 0 for flow in (report, report['contrast'])] == [False, True]
    starts = [x for x, _end in seen[report['label']]['bars'].values()]
    assert list(seen[report['label']]['bars']) == hosts and starts == sorted(starts)
    markdown = (report_dir / _report.REPORT_MD).read_text()
    assert '(timeline.svg)' in markdown and f"| failed | 0 | {report['contrast']['traffic']['failed']} |" in markdown
