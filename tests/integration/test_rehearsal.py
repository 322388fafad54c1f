"""The main job, as a user runs it: scripts/rehearsal.sh (what `make rehearsal` runs).

The safe flow must fail no request and the naive one must fail some, over the same fleet and
traffic; the timeline, rendered to pixels, must show them where they happened and one bar per
host in the order the rollout ran; nothing the rehearsal started may be left running.
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
from ansible_collections.l4vip.rollout.tests.harness.report_pixels import check_timeline

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.real
def test_rehearsal_safe_flow_fails_nothing_and_the_naive_flow_does(tmp_path):
    lab, out = tmp_path / 'lab', tmp_path / 'report'
    # 0.1 x a 10 s interval: the L4 marks a member down 1-2 s after its rename, after the naive flow's stop (two
    # small tasks later, well under a second), so the naive flow's refused connections do not hang on luck.
    extra = {'rehearsal_dir': str(lab), 'rehearsal_report_dir': str(out), 'rehearsal_members': 2, 'rehearsal_time_scale': 0.1}
    env = dict(os.environ, VENV=str(pathlib.Path(sys.executable).parent.parent), TMPDIR=str(tmp_path))
    run = subprocess.run([str(ROOT / 'scripts' / 'rehearsal.sh'), '-e', json.dumps(extra)], env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

    report = json.loads((out / 'report.json').read_text())
    assert report['traffic']['failed'] == 0 and report['traffic']['total'] > 1000
    assert report['contrast']['traffic']['failed'] > 0, report['contrast']['traffic']
    hosts = [entry['host'] for entry in report['hosts']]
    assert hosts == ['web1', 'web2']
    for entry in report['hosts']:
        assert entry['result'] == 'ok'
        # The L4's own detection, against the timing model's window (0.1 * 10 s interval, retry 1: (1, 2]).
        assert entry['down_window'] == {'low': pytest.approx(1.0), 'high': pytest.approx(2.0)}
        assert 1.0 - 0.05 < entry['detection_down'] <= 2.0 + 0.1, entry

    # The picture, as a reader sees it: the naive flow's failures marked where they happened, the safe flow's row
    # saying "0 failed", every bar from the host's leaving to the L4's bind (the naive one's from the L4's event log).
    seen = check_timeline(out)
    assert [seen[flow]['failures'] > 0 for flow in ('safe sequence', 'naive flow')] == [False, True]
    assert list(seen['safe sequence']['bars']) == hosts
    starts = [x for x, _end in seen['safe sequence']['bars'].values()]
    assert starts == sorted(starts)
    markdown = (out / 'report.md').read_text()
    assert '(timeline.svg)' in markdown and f"| failed | 0 | {report['contrast']['traffic']['failed']} |" in markdown
    assert report['playbook'] == 'l4vip.rollout.rehearsal' and report['generated_at'] > 0
    assert [entry['result'] for entry in report['contrast']['hosts']] == ['no waits', 'no waits']

    # Everything stopped, and the lab's working directory is gone.
    assert not lab.exists()
    assert not pids_running(str(lab))
