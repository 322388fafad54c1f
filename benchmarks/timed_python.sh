#!/usr/bin/env bash
# The Python the fleet benchmark gives Ansible for its modules: runs the module with the real
# interpreter ($L4VIP_BENCH_PYTHON), then appends the CPU time the module used (bash's `times`:
# the shell's line, then its children's) to $L4VIP_BENCH_MODULE_CPU. On real hosts that CPU
# is the hosts'; the rest of ansible-playbook's is the controller's.
"$L4VIP_BENCH_PYTHON" "$@"
status=$?
times >> "$L4VIP_BENCH_MODULE_CPU"
exit "$status"
