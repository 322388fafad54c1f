#!/usr/bin/env bash
# Run the rehearsal (l4vip.rollout.rehearsal) from this checkout, and stop what it started also
# when it fails or is interrupted. Extra arguments go to ansible-playbook, e.g.
#   scripts/rehearsal.sh -e '{"rehearsal_profile": {"interval": 5, "retry": 2}}'
#
# Every process the run starts (the emulator, the real servers, the traffic generator) inherits
# L4VIP_REHEARSAL_RUN, a value unique to this run. At the end, anything still alive that carries
# it is this run's leftover: the script runs the playbook's cleanup (`--tags cleanup`), then
# stops by pid whatever is still there. A run that started nothing (a bad argument, say) has
# nothing to clean up, and the script says nothing about it. Its scratch directory goes too.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/l4vip-rehearsal-run-$(id -u).XXXXXX") || exit 1
run=$scratch  # unique while the run lasts
# ansible-playbook finds the collection through a tree of the shape ansible_collections/l4vip/rollout.
mkdir -p "$scratch/collections/ansible_collections/l4vip" "$scratch/home"
ln -sfn "$here" "$scratch/collections/ansible_collections/l4vip/rollout"
# Ansible's own files (its temp dir, the traffic generator's async job status) stay in the scratch directory too.
export ANSIBLE_COLLECTIONS_PATH=$scratch/collections ANSIBLE_HOME=$scratch/home ANSIBLE_ASYNC_DIR=$scratch/async
# The report's tables print as they are (YAML keeps a string's lines), not as one JSON string of \n escapes.
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_CALLBACK_RESULT_FORMAT=yaml
export ANSIBLE_INVENTORY_UNPARSED_WARNING=false ANSIBLE_RETRY_FILES_ENABLED=false

playbook() { "$venv/bin/ansible-playbook" l4vip.rollout.rehearsal "$@"; }

# The pids of this run's processes that are still alive (not this script's own: it does not carry the marker).
leftovers() {
    grep -lzxF "L4VIP_REHEARSAL_RUN=$run" /proc/[0-9]*/environ 2>/dev/null | sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'
}

# Waits up to $1 tenths of a second for this run's processes to be gone; true when they are.
gone_within() {
    local tenths=$1
    while [ -n "$(leftovers)" ]; do
        [ "$tenths" -gt 0 ] || return 1
        sleep 0.1
        tenths=$((tenths - 1))
    done
}

cleanup() {
    # A process that is just finishing (an async wrapper writing its result) is not a leftover.
    gone_within 30 && return 0
    echo "rehearsal: stopping what this run left running (pids $(leftovers | paste -sd ' '))" >&2
    playbook --tags cleanup "$@" >/dev/null 2>&1
    gone_within 100 && return 0
    # shellcheck disable=SC2046  # one pid a word
    kill -TERM $(leftovers) 2>/dev/null
    gone_within 100 && return 0
    # shellcheck disable=SC2046
    kill -KILL $(leftovers) 2>/dev/null
    gone_within 20 && return 0
    echo "rehearsal: cleanup failed, still running: pids $(leftovers | paste -sd ' ')" >&2
    return 1
}

finish() {
    local status=$?
    trap - EXIT INT TERM
    cleanup "$@" || { [ "$status" -ne 0 ] || status=1; }
    rm -rf "$scratch"
    exit "$status"
}
trap 'finish "$@"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The marker goes to ansible-playbook alone (a prefix to a function call would also hold in the traps).
L4VIP_REHEARSAL_RUN=$run "$venv/bin/ansible-playbook" l4vip.rollout.rehearsal "$@"
