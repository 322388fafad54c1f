"""The harness stops what a test started and says so: a playbook past its timeout goes with every process it
started, and a background playbook nobody joined is stopped by the suite's teardown, named."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _process
from ansible_collections.l4vip.rollout.tests.harness.ansible import Background, run_stopped_on_timeout

# A parent that starts a child (as ansible-playbook starts its modules), writes both pids, and waits for it.
PARENT = '''
import pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
pathlib.Path(sys.argv[1]).write_text(f'{child.pid}')
child.wait()
'''


def test_a_command_past_its_timeout_goes_with_its_children(tmp_path):
    pids = tmp_path / 'pids'
    with pytest.raises(subprocess.TimeoutExpired) as expired:
        run_stopped_on_timeout([sys.executable, '-c', PARENT, str(pids)], {}, timeout=2.0)
    assert pids.exists(), 'the child never started: nothing was tried'
    child = int(pids.read_text())
    assert not _process.alive(child, reap=False)
    assert 'process group stopped by SIGTERM' in ''.join(expired.value.__notes__)


def test_a_background_playbook_nobody_joined_is_stopped_and_named(tmp_path):
    run = Background(tmp_path, [{'name': 'long', 'ansible.builtin.pause': {'seconds': 60}}])
    assert run in Background.running
    started = time.monotonic()
    left = Background.stop_all()
    assert left == [f'ansible-playbook pid {run.proc.pid}: {tmp_path / "playbook-0.yml"}']
    assert time.monotonic() - started < 10
    assert run.proc.returncode is not None and not _process.group(run.proc.pid)
    assert Background.running == set()
