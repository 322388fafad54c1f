"""The suite gives itself ::1 on lo where a CI machine lacks it, and takes it away again - tried in a network
namespace of its own (``unshare --net``), where removing ::1 touches nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from ansible_collections.l4vip.rollout.tests.harness import environment

# Runs in the new namespace: lo up (with ::1), ::1 taken away, given back by the harness, and undone.
SCRIPT = '''
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.l4vip.rollout.tests.harness import environment as env
subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
seen = {'at_start': env.ipv6_loopback(), 'already_there': env.give_ipv6_loopback() is None}
subprocess.run(['ip', '-6', 'addr', 'del', '::1/128', 'dev', 'lo'], check=True)
seen['removed'] = env.ipv6_loopback()
undo = env.give_ipv6_loopback()
seen['given'] = env.ipv6_loopback()
undo()
seen['undone'] = env.ipv6_loopback()
env.LO_IPV6.write_text('1')  # IPv6 switched off on lo, as some containers have it
seen['switched_off'] = env.ipv6_loopback()
undo = env.give_ipv6_loopback()
seen['switched_on'] = env.ipv6_loopback()
undo()
seen['switched_off_again'] = (env.ipv6_loopback(), env.LO_IPV6.read_text().strip())
print(json.dumps(seen))
'''


def test_ipv6_loopback_given_and_taken_back():
    environment.require_root('a network namespace of its own')
    if shutil.which('unshare') is None or environment.IP_BIN is None:
        environment.missing('needs unshare and ip')
    run = subprocess.run(['unshare', '--net', '--', sys.executable, '-c', SCRIPT, os.environ['ANSIBLE_COLLECTIONS_PATH']], capture_output=True, text=True,
                         timeout=30, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {'at_start': True, 'already_there': True, 'removed': False, 'given': True, 'undone': False,
                                      'switched_off': False, 'switched_on': True, 'switched_off_again': [False, '1']}
