"""Fail when the collection tarball carries anything that is not the collection itself."""

from __future__ import annotations

import sys
import tarfile

FORBIDDEN = ('.venv/', '.ansible/', 'tests/output/', '__pycache__/', '.pytest_cache/', '.hypothesis/', '.git/', 'build/',
             'benchmarks/output/', 'rehearsal-report/')


def main(path: str) -> int:
    with tarfile.open(path) as tarball:
        names = tarball.getnames()
    bad = [name for name in names if any(f'/{part}' in f'/{name}/' for part in FORBIDDEN) or name.endswith('.pyc')]
    if bad:
        print(f'{path} carries {len(bad)} files that must not ship, such as: {", ".join(bad[:5])}', file=sys.stderr)
        return 1
    for required in ('MANIFEST.json', 'FILES.json', 'plugins/module_utils/_timing.py', 'meta/execution-environment.yml',
                     'meta/ee-requirements.txt', 'meta/ee-bindep.txt'):
        if required not in names:
            print(f'{path} lacks {required}', file=sys.stderr)
            return 1
    print(f'{path}: {len(names)} entries, none of them venvs, caches or test output')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
