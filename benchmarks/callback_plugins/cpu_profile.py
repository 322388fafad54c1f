# Benchmark-only: where ansible-playbook's CPU goes, task by task. Loaded when benchmarks/callback_plugins is in
# ANSIBLE_CALLBACK_PLUGINS and L4VIP_BENCH_CPU names a file (benchmarks/_common.py cpu_profile_env).
from __future__ import annotations

DOCUMENTATION = '''
name: cpu_profile
type: aggregate
short_description: CPU time of each task's worker and of the processes it ran, for the benchmarks
description:
  - Benchmark-only. Every task runs in a worker process forked from ansible-playbook's main process (the fork start
    method); in each worker, the CPU time (user + system) of TaskExecutor.run, the worker's own and that of the processes
    it waited for (module runs, commands), is added to the task's result as C(l4vip_bench_cpu) {worker, children}, where
    the test callback (tests/harness/callback_plugins/record_results.py) records it.
  - At the end, the main process's own CPU time and that of the children it reaped go to the JSON file named by
    L4VIP_BENCH_CPU. The worker's fork, its results' way back and its exit are outside TaskExecutor.run, so in
    neither figure of a task.
'''

import json
import os
import resource

from ansible.executor import task_executor
from ansible.plugins.callback import CallbackBase

KEY = 'l4vip_bench_cpu'


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _patch() -> None:
    """Time TaskExecutor.run in every worker (forked after this, so they inherit it)."""
    run = task_executor.TaskExecutor.run
    if getattr(run, 'l4vip_bench', False):
        return

    def timed_run(self):  # type: ignore[no-untyped-def]
        worker, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        result = run(self)
        if isinstance(result, dict):
            result[KEY] = {'worker': round(_cpu(resource.RUSAGE_SELF) - worker, 4),
                           'children': round(_cpu(resource.RUSAGE_CHILDREN) - children, 4)}
        return result

    timed_run.l4vip_bench = True
    task_executor.TaskExecutor.run = timed_run


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'cpu_profile'
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self) -> None:
        super().__init__()
        self.path = os.environ.get('L4VIP_BENCH_CPU')
        if self.path:
            _patch()

    def v2_playbook_on_stats(self, stats) -> None:
        if self.path:
            with open(self.path, 'w', encoding='utf-8') as handle:
                json.dump({'main': _cpu(resource.RUSAGE_SELF), 'reaped': _cpu(resource.RUSAGE_CHILDREN)}, handle)
