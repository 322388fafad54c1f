#!/usr/bin/env bash
# Run `ansible-test sanity` on this checkout.
#
# ansible-test insists on a real .../ansible_collections/<namespace>/<name> directory, so the
# checkout is copied (with .git, so it sees exactly the tracked files) into such a tree.
# Every venv ansible-test builds first downloads a get-pip script; where that host cannot be
# reached (closed networks, proxies) a stand-in is cached that bootstraps pip with ensurepip.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$repo/.venv}
python=$venv/bin/python
scratch=$(mktemp -d "${TMPDIR:-/tmp}/l4vip-sanity.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

"$python" "$repo/scripts/get_pip_standin.py"

dest=$scratch/ansible_collections/l4vip/rollout
mkdir -p "$dest"
tar -C "$repo" --exclude=./.venv --exclude=./.ansible --exclude=./build --exclude=./context --exclude=./rehearsal-report --exclude=./tests/output --exclude=./benchmarks/output \
    --exclude='*/__pycache__' --exclude=./.pytest_cache --exclude=./.hypothesis -cf - . | tar -C "$dest" -xf -

cd "$dest"
# Untracked files would be skipped silently by ansible-test; include them like a commit would.
git add -A >/dev/null 2>&1 || true
PATH=$venv/bin:$PATH "$venv/bin/ansible-test" sanity --local --python "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no "$@"
