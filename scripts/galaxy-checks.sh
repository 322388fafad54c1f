#!/usr/bin/env bash
# The checks Galaxy and Automation Hub run on an upload, on the built tarball:
#   galaxy-importer (ansible-doc on every plugin and role, ansible-lint, the changelog, the tags),
#   antsibull-docs lint-collection-docs (the docs' schema and markup, every reference resolved).
# Both must pass without one warning. Usage: galaxy-checks.sh <tarball>; GALAXY_VENV holds the tools.
set -euo pipefail

tarball=$(realpath "$1")
venv=${GALAXY_VENV:?the venv with galaxy-importer and antsibull-docs}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/l4vip-galaxy.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export PATH=$venv/bin:$PATH ANSIBLE_HOME=$scratch/ansible-home ANSIBLE_LOCAL_TEMP=$scratch/ansible-tmp

# Galaxy's own settings where they are stricter than the importer's defaults; nothing from /etc.
cat > "$scratch/galaxy-importer.cfg" <<CFG
[galaxy-importer]
CHECK_REQUIRED_TAGS = True
RUN_ANSIBLE_DOC = True
RUN_ANSIBLE_LINT = True
TMP_ROOT_DIR = $scratch
CFG
(cd "$scratch" && GALAXY_IMPORTER_CONFIG=$scratch/galaxy-importer.cfg python -m galaxy_importer.main "$tarball") \
    > "$scratch/importer.log" 2>&1 || { cat "$scratch/importer.log"; echo "galaxy-importer failed on $tarball" >&2; exit 1; }
# The importer logs every finding as "LEVEL: message" and still succeeds on warnings.
if grep -E '^(WARNING|ERROR|CRITICAL):' "$scratch/importer.log"; then
    echo "galaxy-importer passed $tarball with the findings above" >&2
    exit 1
fi
grep -E '^Importing with|completed successfully' "$scratch/importer.log"

# Lint what ships: the tarball installed, not the checkout.
export ANSIBLE_COLLECTIONS_PATH=$scratch/collections
ansible-galaxy collection install --no-deps -p "$scratch/collections" "$tarball" > /dev/null
cd "$scratch/collections/ansible_collections/l4vip/rollout"
antsibull-docs lint-collection-docs --plugin-docs \
    --validate-collection-refs all --disallow-unknown-collection-refs .
echo "antsibull-docs lint-collection-docs: $tarball clean"
