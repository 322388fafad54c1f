# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: embedded
short_description: The argv that runs one of the collection's embedded tools on the controller
version_added: 0.1.0
description:
  - Returns the command (an argv list, no shell) that runs an embedded tool of this collection with the controller's
    Python - the real server, the traffic generator, the L4 emulator or the report renderer - wherever the collection
    is installed. The rehearsal and molecule scenarios start and stop these with M(ansible.builtin.command).
  - Use C(query) (or C(wantlist=true)) to get the list.
author:
  - l4vip.rollout maintainers (@l4vip)
options:
  _terms:
    description: The tool.
    type: list
    elements: str
    required: true
    choices: [realserver, traffic, emulator, report]
  while_playbook:
    description:
      - Add C(--while-pid) with the process id of the running C(ansible-playbook), so that a tool started in the
        background (the traffic generator as a probe) ends when the playbook ends, also when it fails or is killed.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Start an embedded real server in the background
  ansible.builtin.command:
    argv: "{{ query('l4vip.rollout.embedded', 'realserver') + ['--daemon', '--name', 'web1', '--listen', '127.0.0.201:28080',
           '--docroot', '/tmp/web1', '--pidfile', '/tmp/web1.pid'] }}"

- name: Probe a VIP for as long as this playbook runs
  ansible.builtin.command:
    argv: "{{ query('l4vip.rollout.embedded', 'traffic', while_playbook=true) + ['--url', 'https://www.example.com/', '--source', 'probe',
           '--json', '/var/tmp/probe.json'] }}"
  async: 86400
  poll: 0
'''

RETURN = r'''
_raw:
  description: The argv - C(env PYTHONPATH=<the directory that holds ansible_collections> <python> -m <the tool's module>).
  type: list
  elements: str
'''

import multiprocessing
import os
import shutil
import sys

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

# Each tool's module under the collection: the lab's web server and traffic, the L4 emulator (which a module also
# runs on a target, so it lives in module_utils), the report renderer.
TOOLS = {
    'realserver': 'plugin_utils.lab._realserver',
    'traffic': 'plugin_utils.lab._traffic',
    'emulator': 'module_utils._emulator.daemon',
    'report': 'plugin_utils._report',
}
# plugins/lookup/embedded.py -> the directory that holds ansible_collections/l4vip/rollout
COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1 or terms[0] not in TOOLS:
            raise AnsibleLookupError(f"embedded: expected one of {', '.join(TOOLS)}, got {terms!r}")
        argv = tool_argv(terms[0])
        if self.get_option('while_playbook'):
            argv += ['--while-pid', str(playbook_pid())]
        return argv


def tool_argv(tool: str) -> list[str]:
    """``env PYTHONPATH=<the directory that holds ansible_collections> <this Python> -m <the tool's module>``."""
    return [shutil.which('env') or '/usr/bin/env', f'PYTHONPATH={COLLECTIONS_ROOT}', sys.executable,
            '-m', f'ansible_collections.l4vip.rollout.plugins.{TOOLS[tool]}']


def playbook_pid() -> int:
    """The ansible-playbook process: lookups run in its forked workers (their parent), or in it."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()
