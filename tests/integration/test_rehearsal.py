"""The main job, as a user runs it: scripts/rehearsal.sh (what `make rehearsal` runs).

The safe flow must fail no request and the naive one must fail some, over the same fleet and
traffic; the timeline must show one bar per host in the order the rollout ran; nothing the
rehearsal started may be left running.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from ansible_collections.l4vip.rollout.tests.harness.ansible import pids_running

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.real
def test_rehearsal_safe_flow_fails_nothing_and_the_naive_flow_does(tmp_path):
    lab = tmp_path / 'lab'
    # 0.1 x a 10 s interval: the L4 marks a member down 1-2 s after its rename, after the naive flow's stop (two
    # small tasks later, well under a second), so the naive flow's refused connections do not hang on luck.
    extra = {'rehearsal_dir': str(lab), 'rehearsal_members': 2, 'rehearsal_time_scale': 0.1}
    env = dict(os.environ, VENV=str(pathlib.Path(sys.executable).parent.parent), TMPDIR=str(tmp_path))
    run = subprocess.run([str(ROOT / 'scripts' / 'rehearsal.sh'), '-e', json.dumps(extra)], env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

    report = json.loads((lab / 'report' / 'report.json').read_text())
    assert report['traffic']['failed'] == 0 and report['traffic']['total'] > 1000
    assert report['contrast']['traffic']['failed'] > 0, report['contrast']['traffic']
    hosts = [entry['host'] for entry in report['hosts']]
    assert hosts == ['web1', 'web2']
    for entry in report['hosts']:
        assert entry['result'] == 'ok'
        # The L4's own detection, against the timing model's window (0.1 * 10 s interval, retry 1: (1, 2]).
        assert entry['down_window'] == {'low': pytest.approx(1.0), 'high': pytest.approx(2.0)}
        assert 1.0 - 0.05 < entry['detection_down'] <= 2.0 + 0.1, entry

    svg = (lab / 'report' / 'timeline.svg').read_text()
    leaving = re.findall(r'class="phase leaving" data-host="(\w+)" x="([\d.]+)"', svg)
    assert [host for host, _x in leaving] == hosts
    assert [float(x) for _host, x in leaving] == sorted(float(x) for _host, x in leaving)
    markdown = (lab / 'report' / 'report.md').read_text()
    assert '![Rollout timeline](timeline.svg)' in markdown and '| failed | 0 |' in markdown

    # Everything stopped: no pidfile left, and no process of the lab alive.
    assert not list(lab.glob('*.pid'))
    assert not pids_running(str(lab))
