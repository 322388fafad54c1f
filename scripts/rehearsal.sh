#!/usr/bin/env bash
# Run the rehearsal (l4vip.rollout.rehearsal) from this checkout, and clean up after it also
# when it fails or is interrupted. Extra arguments go to ansible-playbook, e.g.
#   scripts/rehearsal.sh -e '{"rehearsal_profile": {"interval": 5, "retry": 2}}'
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
scratch=${TMPDIR:-/tmp}/l4vip-rehearsal-run-$(id -u)
# ansible-playbook finds the collection through a tree of the shape ansible_collections/l4vip/rollout.
mkdir -p "$scratch/collections/ansible_collections/l4vip" "$scratch/home"
ln -sfn "$here" "$scratch/collections/ansible_collections/l4vip/rollout"
export ANSIBLE_COLLECTIONS_PATH=$scratch/collections ANSIBLE_HOME=$scratch/home ANSIBLE_LOCALHOST_WARNING=false
export ANSIBLE_INVENTORY_UNPARSED_WARNING=false ANSIBLE_RETRY_FILES_ENABLED=false

playbook() { "$venv/bin/ansible-playbook" l4vip.rollout.rehearsal "$@"; }

cleanup() {
    trap - INT TERM
    echo "rehearsal: stopping what it started"
    playbook --tags cleanup "$@" >/dev/null 2>&1 || echo "rehearsal: cleanup failed; run: $0 --tags cleanup" >&2
}
trap 'cleanup "$@"; exit 130' INT TERM

playbook "$@"
status=$?
if [ "$status" -ne 0 ]; then
    cleanup "$@"
fi
exit "$status"
