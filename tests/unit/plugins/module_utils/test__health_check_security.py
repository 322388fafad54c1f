"""The health-check toggle keeps owner, group and mode, and never follows a symlink out of the docroot silently.

What test__health_check.py already shows: content, mode, owner and mtime survive set_state toggles (a foreign
owner when run as root); a ``path`` symlink to a file outside the docroot is refused. Added here: the same through
``run`` (the module's whole task) with the owner and the group each foreign and different, for several modes, and
for a link inside the docroot (its target untouched); the symlink refusal for ``disabled_path`` too, for relative
``../`` links, for a link inside that chains to one outside, with the error
naming the link and its target and nothing changed anywhere (the outside file included); and a docroot reached
through a symlinked directory is not mistaken for an escape.
"""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _health_check as hc
from ansible_collections.l4vip.rollout.plugins.module_utils._health_check import (
    IN_SERVICE,
    OUT_OF_SERVICE,
    FilesError,
    health_check_files,
    read_state,
)
from ansible_collections.l4vip.rollout.tests.harness.environment import root_required  # noqa: F401  pylint: disable=unused-import
from ansible_collections.l4vip.rollout.tests.unit.plugins.module_utils.test__health_check import (  # noqa: F401  pylint: disable=unused-import
    CONTENT,
    docroot,
    files,
    make_file,
)

FOREIGN_UID = 4242
FOREIGN_GID = 4343

# chown to a foreign uid/gid needs root: skipped without it, a failure on CI (tests/harness/environment.py).
needs_root = pytest.mark.usefixtures('root_required')


def identity(name):
    """What a toggle must keep, read without following a link."""
    info = os.lstat(name)
    return info.st_ino, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_mtime_ns


def tree(*directories):
    """Every entry under the directories, with identity and content: a refusal must change none of it."""
    result = {}
    for directory in directories:
        for root, dirs, names in os.walk(directory):
            for name in sorted(dirs + names):
                path = os.path.join(root, name)
                content = open(path, 'rb').read() if os.path.isfile(path) and not os.path.islink(path) else None
                link = os.readlink(path) if os.path.islink(path) else None
                result[path] = (identity(path), content, link)
    return result


@needs_root
@pytest.mark.parametrize('mode', [0o600, 0o640, 0o604, 0o444])
def test_owner_group_and_mode_survive_the_module_task(files, mode):
    make_file(files.path, mode=mode)
    os.chown(files.path, FOREIGN_UID, FOREIGN_GID)
    original = identity(files.path)
    assert original[2:4] == (FOREIGN_UID, FOREIGN_GID)  # really foreign, and owner and group differ
    for cycle in range(3):
        out = hc.run({'path': files.path, 'state': OUT_OF_SERVICE})
        assert out['changed'] and identity(files.disabled_path) == original, cycle
        back = hc.run({'path': files.path, 'state': IN_SERVICE, 'content': 'ignored\n'})
        assert back['changed'] and identity(files.path) == original, cycle
    assert open(files.path, encoding='utf-8').read() == CONTENT


@needs_root
def test_a_link_inside_is_renamed_and_its_foreign_target_untouched(files):
    target = os.path.join(files.directory, 'health_check.real')
    make_file(target, mode=0o604)
    os.chown(target, FOREIGN_UID, FOREIGN_GID)
    os.symlink('health_check.real', files.path)
    before = identity(target)
    hc.run({'path': files.path, 'state': OUT_OF_SERVICE})
    hc.run({'path': files.path, 'state': IN_SERVICE})
    assert identity(target) == before and os.readlink(files.path) == 'health_check.real'


@pytest.mark.parametrize('which', ['path', 'disabled_path'])
@pytest.mark.parametrize('how', ['absolute', 'relative', 'chained'])
def test_a_link_out_of_the_docroot_is_refused_naming_it(tmp_path, files, which, how):
    outside = tmp_path / 'secret.txt'
    make_file(str(outside), 'secret\n', mode=0o600)
    link = files.path if which == 'path' else files.disabled_path
    if how == 'absolute':
        os.symlink(outside, link)
    elif how == 'relative':
        os.symlink('../secret.txt', link)
    else:  # a link inside the docroot, to a second link inside, that leaves it
        os.symlink(outside, os.path.join(files.directory, 'hop'))
        os.symlink('hop', link)
    before = tree(files.directory, str(tmp_path))
    desired = OUT_OF_SERVICE if which == 'path' else IN_SERVICE
    for attempt in ({'state': desired}, {'state': 'query'}, {'state': desired, 'content': 'x\n'}):
        with pytest.raises(FilesError) as raised:
            hc.run(dict(attempt, path=files.path))
        message = str(raised.value)
        assert message.startswith(f'{which}: {link} is a symlink to {outside}, outside {files.directory}; '), message
        assert 'refusing to follow a symlink out of the docroot' in message
        assert raised.value.detail == {which: link, 'link_target': str(outside)}
    assert tree(files.directory, str(tmp_path)) == before  # nothing changed, the outside file least of all


def test_a_docroot_reached_through_a_symlinked_directory_is_not_an_escape(tmp_path):
    real = tmp_path / 'srv-www'
    real.mkdir()
    alias = tmp_path / 'html'
    os.symlink(real, alias)
    files = health_check_files(str(alias / 'health_check.html'))
    make_file(files.path)
    os.symlink('health_check.html', str(alias / 'hc-alias.html'))
    assert read_state(files) == IN_SERVICE
    aliased = health_check_files(str(alias / 'hc-alias.html'))
    assert read_state(aliased) == IN_SERVICE  # a link to a file in the same (real) directory
    assert hc.run({'path': files.path, 'state': OUT_OF_SERVICE})['changed']
    assert os.path.isfile(real / 'health_check.html.disabled')
