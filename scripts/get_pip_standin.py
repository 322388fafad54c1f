"""Make ansible-test's pip bootstrap work where its get-pip download host cannot be reached.

ansible-test runs a cached ``~/.ansible/test/cache/get_pip_<version>.py`` if it exists and
downloads it otherwise. When the download host is unreachable, this writes a stand-in that
bootstraps pip with the interpreter's own ``ensurepip`` and then installs the pinned pip from
the configured package index. ensurepip runs in a subprocess: in-process it resets pip's
configuration, which drops settings such as a corporate CA bundle.
"""

from __future__ import annotations

import pathlib
import re
import sys
import urllib.request

import ansible_test

STANDIN = '''\
"""Stand-in for get-pip.py written by l4vip.rollout's scripts/get_pip_standin.py."""
import subprocess
import sys

ignored = {'--no-setuptools', '--no-wheel'}
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + [a for a in sys.argv[1:] if a not in ignored])
'''


def pinned_pip_version() -> str:
    source = pathlib.Path(ansible_test.__file__).parent / '_internal' / 'python_requirements.py'
    match = re.search(r"pip='([0-9.]+)'", source.read_text())
    if not match:
        raise SystemExit(f'cannot find the pip version ansible-test pins in {source}')
    return match.group(1)


def main() -> None:
    version = pinned_pip_version()
    cache = pathlib.Path.home() / '.ansible' / 'test' / 'cache' / f"get_pip_{version.replace('.', '_')}.py"
    if cache.exists():
        return
    url = f'https://ci-files.testing.ansible.com/ansible-test/get-pip-{version}.py'
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - fixed https URL
            answer.read(1)
        return  # reachable: let ansible-test fetch the real script itself
    except OSError as error:
        print(f'get-pip {version} is not reachable ({error}); caching an ensurepip stand-in at {cache}', file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(STANDIN)


if __name__ == '__main__':
    main()
