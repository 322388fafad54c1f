#!/usr/bin/env bash
# The Python the benchmarks give Ansible for the modules of one host. Each host's
# ansible_python_interpreter is its own link to (or copy of) this script, alone in a directory
# (benchmarks/_common.py ModuleRuns; bench_ssh_fleet.py copies it into each web host's /srv/bench).
# It runs the module with the real interpreter ($L4VIP_BENCH_PYTHON, else /usr/bin/python3), then
# appends one line to module-cpu.txt beside itself: the user and system CPU seconds the module's
# process and its children used. One line is one module run on that host; on real hosts that CPU
# is the hosts', the rest of ansible-playbook's is the controller's. The module's stderr stays
# its own (fd 3); only the timing goes to the file, in one write. Then one line to module-runs.txt:
# when the run started and ended (epoch seconds), which places it in the task the test callback
# recorded for that host at that time.
TIMEFORMAT='%3U %3S'
started=$EPOCHREALTIME
{ time "${L4VIP_BENCH_PYTHON:-/usr/bin/python3}" "$@" 2>&3 3>&-; } 3>&2 2>>"${0%/*}/module-cpu.txt"
status=$?
printf '%s %s\n' "$started" "$EPOCHREALTIME" >>"${0%/*}/module-runs.txt"
exit "$status"
