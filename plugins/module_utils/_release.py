# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Releases under one base directory, and the switch of the ``current`` link between them.

Internal to the l4vip.rollout collection; not a public API.

The layout, under the base directory ``path``::

    releases/<version>/     one directory per release, prepared while the member still serves
    current -> releases/<version>     the live release; the web server serves through it
    previous -> releases/<version>    what ``current`` named before the last switch: the rollback target
    release-history.json    when each release last became current: which releases are kept

Why it is done this way:
- ``current`` is replaced by a new link made under a temporary name in the same directory and
  renamed over it. rename(2) replaces a name atomically, so whoever resolves ``current`` at any
  instant finds the old release or the new one, never nothing (unlink-then-create would leave a
  moment without it, and a request in that moment fails).
- ``previous`` is written before ``current``: a switch cut short between the two leaves both
  naming the old release, and running it again completes it. The other order would leave
  ``current`` switched and ``previous`` stale, and a later rollback would go to the wrong release.
- Links are relative (``releases/<version>``), so the tree survives being moved or mounted
  elsewhere; absolute links into the same ``releases/`` (other tools make those) are read too.
- Releases are ranked by when they last became current, as recorded by this module, not by
  their directory's mtime: unpacking (tar, unarchive, rsync -a) sets a directory's mtime from the
  archive or the source. A release that never became current (just prepared, or never switched
  to) ranks by its mtime, which is when it was prepared unless its unpacking set another.
- A release is removed by renaming it to a hidden name first, then deleting it: one cut short
  never looks like a release that ``state=current`` could switch to. The next removal finishes it.
- Every refusal is decided before anything changes.

Over 400 lines on purpose: reading the layout, its three atomic changes (a link, the history, a
removal) and the four states that use them guard one another, and read best side by side.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import secrets
import shutil
import stat
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import SYSTEM_CLOCK, Clock

PREPARED = 'prepared'
CURRENT = 'current'
ROLLED_BACK = 'rolled_back'
QUERY = 'query'
STATES = (PREPARED, CURRENT, ROLLED_BACK, QUERY)

RELEASES_DIR = 'releases'
CURRENT_LINK = 'current'
PREVIOUS_LINK = 'previous'
HISTORY_FILE = 'release-history.json'
REMOVING_PREFIX = '.removing.'  # a release being removed; hidden, so never listed or switched to
DEFAULT_KEEP = 5
DEFAULT_MODE = 0o755
HISTORY_MODE = 0o644
TEMPORARY_NAME_TRIES = 5  # random names; a clash needs a leftover of a crashed run with the same token
_OCTAL_MODE = re.compile(r'^0?[0-7]{3,4}$')


def argument_spec() -> dict[str, t.Any]:
    """The options of the release module (documented in the module)."""
    return dict(
        path=dict(type='path', required=True),
        version=dict(type='str'),
        state=dict(type='str', choices=list(STATES), default=CURRENT),
        keep=dict(type='int', default=DEFAULT_KEEP),
        allow_empty=dict(type='bool', default=False),
        mode=dict(type='raw', default=f'{DEFAULT_MODE:04o}'),
    )


class ReleaseError(Exception):
    """The tree is in a state the module refuses to change, or a change failed; ``detail`` goes to ``fail_json``."""

    def __init__(self, msg: str, **detail: t.Any) -> None:
        super().__init__(msg)
        self.detail = detail


ERRORS = (ReleaseError, OptionError)


# --- option values ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Layout:
    """The names under one base directory; every path the module touches is built here, from a checked version."""

    base: str

    @property
    def releases(self) -> str:
        return os.path.join(self.base, RELEASES_DIR)

    @property
    def history(self) -> str:
        return os.path.join(self.base, HISTORY_FILE)

    def link(self, name: str) -> str:
        return os.path.join(self.base, name)

    def release(self, version: str) -> str:
        return os.path.join(self.releases, version)


def layout(path: t.Any) -> Layout:
    if not isinstance(path, str) or not os.path.isabs(path):
        raise OptionError('path', path, 'expected an absolute path')
    base = os.path.normpath(path)
    if base == '/':
        raise OptionError('path', path, 'expected a directory other than /')
    return Layout(base)


def version_name(value: t.Any, option: str = 'version') -> str:
    """One directory name under releases/: so a release's path can never leave the base."""
    expected = 'expected a directory name (no /, not . or .., not starting with .)'
    if not isinstance(value, str) or not value or '/' in value or '\x00' in value or value.startswith('.'):
        raise OptionError(option, value, expected)
    return value


def mode_option(value: t.Any) -> int:
    """An octal mode: ``'0755'`` or an integer (a YAML ``0755`` arrives as 493)."""
    if value is None:
        return DEFAULT_MODE
    if isinstance(value, str) and _OCTAL_MODE.match(value):
        return int(value, 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    raise OptionError('mode', value, "expected an octal mode such as '0755'")


def keep_option(value: t.Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OptionError('keep', value, 'expected a number of releases, 0 (keep all) or more')
    return value


# --- reading the tree ---------------------------------------------------------------------

def read_link(tree: Layout, name: str) -> str | None:
    """The version the link ``name`` (current or previous) names; None when it does not exist.

    Refuses a real directory or file under that name, and a link that names anything but a release under releases/.
    """
    path = tree.link(name)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ReleaseError(f'path: cannot read {path}: {error.strerror}', path=tree.base) from None
    if not stat.S_ISLNK(info.st_mode):
        kind = 'a directory' if stat.S_ISDIR(info.st_mode) else 'not a symlink'
        raise ReleaseError(
            f'path: {path} is {kind}; {name} must be a symlink to a release under {tree.releases}, so that a switch '
            f'can replace it in one rename. Move the live files to {tree.releases}/<version> and replace {path} with '
            f'a symlink to that directory (or remove it)', path=tree.base, link=path)
    target = os.readlink(path)
    resolved = os.path.normpath(os.path.join(tree.base, target))
    parent, version = os.path.split(resolved)
    if not _same_directory(parent, tree.releases) or not version_name_ok(version):
        raise ReleaseError(f'path: {path} points to {target}, which is not a release under {tree.releases}; '
                           'refusing to replace a link that names something else', path=tree.base, link=path,
                           link_target=target)
    return version


def _same_directory(one: str, other: str) -> bool:
    if one == other:
        return True
    try:
        return os.path.samefile(one, other)  # the base reached through another path (a symlinked /srv, say)
    except OSError:
        return False


def version_name_ok(value: str) -> bool:
    try:
        version_name(value)
    except OptionError:
        return False
    return True


def read_history(tree: Layout) -> dict[str, float]:
    """Version -> when it last became current (epoch seconds); empty when the file does not exist."""
    try:
        with open(tree.history, encoding='utf-8') as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ReleaseError(f'path: cannot read {tree.history}: {error}; remove it and the releases are ranked by their '
                           'mtime', path=tree.base) from None
    became_current = data.get('became_current') if isinstance(data, dict) else None
    if not isinstance(became_current, dict) or not all(
            isinstance(when, (int, float)) and not isinstance(when, bool) for when in became_current.values()):
        raise ReleaseError(f'path: {tree.history} is not a release history; remove it and the releases are ranked by '
                           'their mtime', path=tree.base)
    return {str(version): float(when) for version, when in became_current.items()}


def ranked_releases(tree: Layout, history: t.Mapping[str, float]) -> list[str]:
    """The releases present, the most recent first: by when each became current, else by its directory's mtime."""
    try:
        entries = list(os.scandir(tree.releases))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise ReleaseError(f'path: cannot list {tree.releases}: {error.strerror}', path=tree.base) from None
    ranks = {entry.name: history.get(entry.name, entry.stat(follow_symlinks=False).st_mtime)
             for entry in entries if version_name_ok(entry.name) and entry.is_dir(follow_symlinks=False)}
    return sorted(ranks, key=lambda version: (-ranks[version], version))


def check_release(tree: Layout, version: str, allow_empty: bool, option: str = 'version') -> None:
    """Refuse to make ``version`` current unless it is a real, non-empty directory under releases/."""
    path = tree.release(version)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ReleaseError(f'{option}: the release {version!r} does not exist ({path}); prepare it first '
                           '(state=prepared, then unpack into release_path)', path=tree.base, release_path=path) from None
    if not stat.S_ISDIR(info.st_mode):
        raise ReleaseError(f'{option}: {path} is not a directory; a release must be a directory under {tree.releases}',
                           path=tree.base, release_path=path)
    if not allow_empty and not os.listdir(path):
        raise ReleaseError(f'{option}: the release {version!r} is empty ({path}); refusing to serve an empty release '
                           '(did the unpack run? allow_empty=true makes it current anyway)',
                           path=tree.base, release_path=path)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the links name and which releases are present, the most recent first."""

    current: str | None
    previous: str | None
    releases: tuple[str, ...]

    def as_diff(self) -> dict[str, t.Any]:
        return {'current': self.current, 'previous': self.previous, 'releases': list(self.releases)}


def read_snapshot(tree: Layout, history: t.Mapping[str, float] | None = None) -> Snapshot:
    if history is None:
        history = read_history(tree)
    return Snapshot(read_link(tree, CURRENT_LINK), read_link(tree, PREVIOUS_LINK),
                    tuple(ranked_releases(tree, history)))


# --- which releases go --------------------------------------------------------------------

def releases_to_remove(ranked: t.Sequence[str], keep: int, protected: t.Iterable[str | None]) -> list[str]:
    """All but ``keep`` releases: the protected ones (current, and the one it replaced) first, then the most recent.

    The protected ones stay even when there are more of them than ``keep``; ``keep`` 0 removes nothing.
    """
    if keep == 0:
        return []
    kept = {version for version in protected if version is not None}
    for version in ranked:
        if len(kept) >= keep:
            break
        kept.add(version)
    return [version for version in ranked if version not in kept]


# --- changing the tree --------------------------------------------------------------------

def _temporary_name(directory: str, purpose: str) -> str:
    return os.path.join(directory, f'.{purpose}.{secrets.token_hex(6)}.tmp')


def _sync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable: after a crash the link names what the task reported."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):  # a filesystem that cannot sync a directory: done anyway
            raise ReleaseError(f'cannot sync {directory}: {error.strerror}', path=directory) from None


def replace_link(tree: Layout, name: str, version: str) -> None:
    """Point the link ``name`` at releases/<version> in one rename: there is no moment without it."""
    target = os.path.join(RELEASES_DIR, version)
    final = tree.link(name)
    for unused in range(TEMPORARY_NAME_TRIES):
        temporary = _temporary_name(tree.base, name)
        try:
            os.symlink(target, temporary)
            break
        except FileExistsError:
            continue
        except OSError as error:
            raise ReleaseError(f'cannot create a link in {tree.base}: {error.strerror}', path=tree.base) from None
    else:
        raise ReleaseError(f'cannot find a free temporary name in {tree.base}', path=tree.base)
    try:
        os.rename(temporary, final)
    except OSError as error:
        os.unlink(temporary)
        raise ReleaseError(f'cannot rename {temporary} to {final}: {error.strerror}', path=tree.base) from None
    _sync_directory(tree.base)


def remove_link(tree: Layout, name: str) -> None:
    try:
        os.unlink(tree.link(name))
    except FileNotFoundError:
        pass


def write_history(tree: Layout, history: t.Mapping[str, float]) -> None:
    """Replace the history file in one rename, so a reader never finds half of it."""
    temporary = _temporary_name(tree.base, HISTORY_FILE)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0),
                             HISTORY_MODE)
        with os.fdopen(descriptor, 'w', encoding='utf-8') as handle:
            os.fchmod(descriptor, HISTORY_MODE)
            json.dump({'became_current': dict(sorted(history.items()))}, handle, indent=2)
            handle.write('\n')
            handle.flush()
            os.fsync(descriptor)
        os.rename(temporary, tree.history)
    except OSError as error:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise ReleaseError(f'cannot write {tree.history}: {error.strerror}', path=tree.base) from None


def remove_release(tree: Layout, version: str) -> None:
    hidden = os.path.join(tree.releases, f'{REMOVING_PREFIX}{version}.{secrets.token_hex(6)}')
    try:
        os.rename(tree.release(version), hidden)
        shutil.rmtree(hidden)
    except OSError as error:
        raise ReleaseError(f'cannot remove the release {version!r} ({tree.release(version)}): {error.strerror}',
                           path=tree.base) from None


def finish_removals(tree: Layout) -> None:
    """Delete what a removal cut short left behind (only names this module gives, never a release)."""
    for entry in os.scandir(tree.releases):
        if entry.name.startswith(REMOVING_PREFIX) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def _make_directory(path: str, mode: int) -> None:
    try:
        os.mkdir(path, mode)
        os.chmod(path, mode)  # exactly ``mode``, whatever the umask
    except FileExistsError:
        pass
    except OSError as error:
        raise ReleaseError(f'cannot create {path}: {error.strerror}', path=path) from None


# --- the states ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Outcome:
    """The tree before and after the task (in check mode, as it would be after)."""

    before: Snapshot
    after: Snapshot
    release_path: str | None = None
    removed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.before != self.after


def prepare(tree: Layout, version: str, mode: int, keep: int = DEFAULT_KEEP, check_mode: bool = False) -> Outcome:
    """Make sure releases/<version> exists (created empty, with the base and releases/ when missing); never touch current.

    The releases past ``keep`` go now, while the member still serves, so the switch has none left to remove in the window.
    """
    history = read_history(tree)
    before = read_snapshot(tree, history)  # a current that is not a release link is refused now, while the member serves
    path = tree.release(version)
    exists = os.path.lexists(path)
    if exists and (os.path.islink(path) or not os.path.isdir(path)):
        raise ReleaseError(f'version: {path} exists and is not a directory; a release must be a directory under '
                           f'{tree.releases}', path=tree.base, release_path=path)
    if not exists and not os.path.isdir(os.path.dirname(tree.base)):
        raise ReleaseError(f'path: {os.path.dirname(tree.base)}, the parent of {tree.base}, does not exist (is path '
                           'mistyped?)', path=tree.base)
    if exists or check_mode:
        ranked = before.releases if exists else (version,) + before.releases  # just made: the most recent by mtime
    else:
        for directory in (tree.base, tree.releases, path):
            if not os.path.isdir(directory):
                _make_directory(directory, mode)
        ranked = tuple(ranked_releases(tree, history))
    removed = tuple(releases_to_remove(ranked, keep, (before.current, before.previous, version)))
    after = Snapshot(before.current, before.previous, tuple(release for release in ranked if release not in removed))
    if removed and not check_mode:
        if any(release in history for release in removed):
            write_history(tree, {release: when for release, when in history.items() if release in after.releases})
        _remove_releases(tree, removed)
    return Outcome(before, after, path, removed)


def _remove_releases(tree: Layout, removed: t.Iterable[str]) -> None:
    for release in removed:
        remove_release(tree, release)
    finish_removals(tree)


def switch(tree: Layout, version: str, keep: int, allow_empty: bool = False, check_mode: bool = False,
           clock: Clock = SYSTEM_CLOCK) -> Outcome:
    """Make releases/<version> current in one rename, remember the one it replaced, remove releases past ``keep``."""
    history = read_history(tree)
    before = read_snapshot(tree, history)
    check_release(tree, version, allow_empty)
    switching = before.current != version
    previous = before.current if switching else before.previous
    if switching:
        history = dict(history, **{version: clock.time()})
    ranked = ranked_releases(tree, history)
    removed = tuple(releases_to_remove(ranked, keep, (version, previous)))
    after = Snapshot(version, previous, tuple(release for release in ranked if release not in removed))
    if check_mode:
        return Outcome(before, after, tree.release(version), removed)
    if switching:
        # previous first: a switch cut short between the two leaves both naming the old release, never a stale rollback.
        if previous is None:
            remove_link(tree, PREVIOUS_LINK)
        elif previous != before.previous:
            replace_link(tree, PREVIOUS_LINK, previous)
        replace_link(tree, CURRENT_LINK, version)
    if switching or removed:
        write_history(tree, {release: when for release, when in history.items() if release in after.releases})
    _remove_releases(tree, removed)
    return Outcome(before, after, tree.release(version), removed)


def roll_back(tree: Layout, allow_empty: bool = False, check_mode: bool = False, clock: Clock = SYSTEM_CLOCK) -> Outcome:
    """Point current back at the release ``previous`` names; ``previous`` stays, so a second rollback changes nothing."""
    history = read_history(tree)
    before = read_snapshot(tree, history)
    target = before.previous
    if target is None:
        raise ReleaseError(f'state: nothing to roll back to - {tree.link(PREVIOUS_LINK)} does not exist (no switch has '
                           'replaced a release here yet)', path=tree.base, current=before.current)
    if before.current == target:
        return Outcome(before, before, tree.release(target))
    check_release(tree, target, allow_empty, option='state')
    history = dict(history, **{target: clock.time()})
    after = Snapshot(target, target, tuple(ranked_releases(tree, history)))
    if not check_mode:
        replace_link(tree, CURRENT_LINK, target)
        write_history(tree, {release: when for release, when in history.items() if release in after.releases})
    return Outcome(before, after, tree.release(target))


def query(tree: Layout) -> Outcome:
    before = read_snapshot(tree)
    return Outcome(before, before, tree.release(before.current) if before.current else None)


# --- the whole task -----------------------------------------------------------------------

def run(params: t.Mapping[str, t.Any], check_mode: bool = False, want_diff: bool = False,
        clock: Clock = SYSTEM_CLOCK) -> dict[str, t.Any]:
    """Validate every option, then do the state's change; the module's result."""
    tree = layout(params.get('path'))
    state = params.get('state') or CURRENT
    if state not in STATES:
        raise OptionError('state', state, f'expected one of {", ".join(STATES)}')
    keep = keep_option(params.get('keep', DEFAULT_KEEP))
    mode = mode_option(params.get('mode'))
    allow_empty = bool(params.get('allow_empty', False))
    version = params.get('version')
    if state in (PREPARED, CURRENT):
        if version is None:
            raise OptionError('version', version, f'expected the release directory name, required with state={state}')
        version = version_name(version)

    if state == PREPARED:
        outcome = prepare(tree, t.cast(str, version), mode, keep, check_mode)
    elif state == CURRENT:
        outcome = switch(tree, t.cast(str, version), keep, allow_empty, check_mode, clock)
    elif state == ROLLED_BACK:
        outcome = roll_back(tree, allow_empty, check_mode, clock)
    else:
        outcome = query(tree)

    result: dict[str, t.Any] = {
        'changed': outcome.changed, 'path': tree.base, 'release_path': outcome.release_path,
        'current': outcome.after.current, 'previous': outcome.after.previous,
        'releases': list(outcome.after.releases), 'removed': list(outcome.removed),
    }
    if state in (PREPARED, CURRENT):
        result['version'] = version
    if state == ROLLED_BACK:
        result['rolled_back_from'] = outcome.before.current if outcome.changed else None
    if want_diff:
        result['diff'] = {'before': outcome.before.as_diff(), 'after': outcome.after.as_diff()}
    return result
