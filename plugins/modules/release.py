#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: release
short_description: Prepare a release directory, switch the current symlink to it atomically, or roll it back
version_added: 0.1.0
description:
  - Manages releases in the common C(releases/<version>) and C(current) symlink layout under a base directory O(path).
    Each release is a directory C(<path>/releases/<version>); C(<path>/current) is a symlink to the live one, and the
    web server serves through it (for example nginx C(root /srv/app/current/public;)).
  - Splits a deploy in two. While the member still serves, O(state=prepared) makes the release directory and returns
    RV(release_path) for the tasks that unpack or build the release into it. Inside the out-of-service window,
    O(state=current) does only the switch.
  - The switch makes a new symlink under a temporary name in the base directory and renames it over C(current). A
    rename replaces a name atomically, so a request that resolves C(current) at any moment finds the old release or
    the new one, never nothing. C(current) is never removed and then created again.
  - Before the switch the module points the symlink C(<path>/previous) at the release C(current) named, so that
    O(state=rolled_back) can point C(current) back to it. A rollback leaves C(previous) as it is; rolling back a
    second time changes nothing.
  - The module records when each release became current in C(<path>/release-history.json), and keeps the O(keep)
    most recent releases by that record. It uses the record instead of the directories' modification times because
    unpacking (tar, M(ansible.builtin.unarchive), C(rsync -a)) sets a directory's mtime from the archive or the
    source. A release that never became current ranks by its directory's mtime, usually the time it was prepared.
  - The symlinks it makes are relative (C(releases/<version>)), so the tree can be moved or mounted elsewhere.
    Absolute symlinks into the same C(releases/) directory, which other deploy tools make, are read as well.
  - Refuses, changing nothing, when C(current) or C(previous) exists and is not a symlink to a release under
    C(<path>/releases) (for example a real directory from an earlier deploy), or when the release to switch to does
    not exist or is empty.
  - O(version) is one directory name, so no path this module touches can be outside O(path).
author:
  - l4vip.rollout maintainers (@l4vip)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would change, including the releases that would be removed; nothing is created, switched
      or removed. A switch in check mode needs the release to exist already, so it fails when only a check-mode
      O(state=prepared) task before it would have created the release.
  diff_mode:
    support: full
    details: The diff shows, before and after, the release C(current) names, the release C(previous) names and the
      releases present, most recent first.
  platform:
    platforms: posix
options:
  path:
    description:
      - Absolute path of the base directory that holds C(releases/), C(current), C(previous) and
        C(release-history.json).
      - With O(state=prepared) it is created when missing, but its parent directory must exist.
    type: path
    required: true
  version:
    description:
      - The release, as a directory name under C(<path>/releases/). It cannot contain C(/) or start with C(.), which
        keeps every release inside O(path). Hidden names are reserved for the module's temporary entries.
      - Required with O(state=prepared) and O(state=current); not used by the other states.
    type: str
  state:
    description:
      - V(prepared) makes sure C(<path>/releases/<version>) exists. When it is missing the module creates it empty,
        together with O(path) and C(releases/) when they are missing, each with O(mode). It returns RV(release_path)
        for the tasks that fill it. It never touches C(current), and a directory that exists is left as it is. It
        also removes the releases past O(keep) now, while the member serves, so that the switch usually has none left
        to remove inside the out-of-service window.
      - V(current) switches C(current) to C(releases/<version>) in one rename, after pointing C(previous) at the
        release C(current) named. Then it removes the releases past O(keep). It refuses when the release does not
        exist, or is empty unless O(allow_empty=true). When C(current) already names the release, nothing is
        switched.
      - V(rolled_back) points C(current) back at the release C(previous) names, in one rename. It fails when there is
        no C(previous), and changes nothing when C(current) already names that release.
      - V(query) changes nothing. It returns the release C(current) names, the one C(previous) names and the releases
        present.
    type: str
    choices: [prepared, current, rolled_back, query]
    default: current
  keep:
    description:
      - With O(state=current) and O(state=prepared), how many releases to keep. The current release and the one it
        replaced (the one C(previous) names) are always kept, whatever O(keep) is, so a rollback is always possible;
        so is the release O(state=prepared) prepares. The other releases kept are the most recent ones.
      - A release's recency is when it last became current. A release that never became current counts by its
        directory's mtime, usually the time it was prepared.
      - V(0) removes no release.
    type: int
    default: 5
  allow_empty:
    description:
      - Whether O(state=current) and O(state=rolled_back) may make an empty release directory current. By default an
        empty release is refused, because it usually means the unpacking did not run.
    type: bool
    default: false
  mode:
    description:
      - The permissions of the directories O(state=prepared) creates, as an octal string such as V('0750'). The umask
        does not apply. An existing directory keeps its permissions.
      - The default lets the web server read the release.
    type: raw
    default: '0755'
notes:
  - Run one task per base directory at a time; the module does not lock the base directory.
  - When a removal is cut short, a hidden C(releases/.removing.<version>.<token>) directory is left behind. It is
    never listed as a release, and the next O(state=current) task deletes it.
seealso:
  - module: ansible.builtin.unarchive
  - module: l4vip.rollout.health_check
'''

EXAMPLES = r'''
# The prepare tasks: they run on the member while it still serves (the roles' ..._prepare_tasks).
- name: Make the release directory of version 1.4.2
  l4vip.rollout.release:
    path: /srv/app
    version: "1.4.2"
    state: prepared
  register: release

- name: Unpack the release into it
  ansible.builtin.unarchive:
    src: "files/app-1.4.2.tar.gz"
    dest: "{{ release.release_path }}"
  when: not (ansible_check_mode and release.changed)  # in check mode a new release directory is not there to unpack into

# The deploy tasks: only the switch, done while the member is out of the VIP (the roles' ..._deploy_tasks).
- name: Make 1.4.2 the current release, keeping the last 5
  l4vip.rollout.release:
    path: /srv/app
    version: "1.4.2"
    state: current
  register: switch

- name: Say what changed
  ansible.builtin.debug:
    msg: "current {{ switch.current }}, was {{ switch.previous }}, removed {{ switch.removed }}"

# A rollback: point current back at the release it replaced.
- name: Roll back to the previous release
  l4vip.rollout.release:
    path: /srv/app
    state: rolled_back

- name: Read what is current, what a rollback would go to and which releases are present
  l4vip.rollout.release:
    path: /srv/app
    state: query
  register: releases

- name: Keep only the current release and the one it replaced
  l4vip.rollout.release:
    path: /srv/app
    version: "1.4.3"
    state: current
    keep: 2
'''

RETURN = r'''
path:
  description: The base directory.
  type: str
  returned: always, except when an option value is refused
  sample: /srv/app
version:
  description: The release the task prepared or made current.
  type: str
  returned: with O(state=prepared) and O(state=current)
  sample: 1.4.2
release_path:
  description:
    - The release's directory, C(<path>/releases/<version>). Unpack the release into it.
    - With O(state=rolled_back) and O(state=query), the directory of the release C(current) names after the task,
      V(null) when there is none.
  type: str
  returned: success
  sample: /srv/app/releases/1.4.2
current:
  description: The release C(current) names after the task (in check mode, would name), V(null) when there is none.
  type: str
  returned: success
  sample: 1.4.2
previous:
  description:
    - The release C(previous) names after the task, the one O(state=rolled_back) points C(current) back to; V(null)
      when there is none.
    - After a switch, the release C(current) named before it. After a rollback, the same as RV(current).
  type: str
  returned: success
  sample: 1.4.1
releases:
  description: The releases present after the task, most recent first (the order O(keep) counts in).
  type: list
  elements: str
  returned: success
  sample: [1.4.2, 1.4.1, 1.4.0]
removed:
  description: The releases the task removed (in check mode, would remove), most recent first; only O(state=prepared)
    and O(state=current) remove releases.
  type: list
  elements: str
  returned: success
  sample: [1.3.9]
rolled_back_from:
  description: The release C(current) named before a rollback; V(null) when the rollback changed nothing.
  type: str
  returned: with O(state=rolled_back)
  sample: 1.4.2
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _release as release


class ReleaseModule(AnsibleModule):
    """AnsibleModule, minus the file facts it adds to any result that has a ``path``."""

    def add_path_info(self, kwargs: dict) -> dict:
        # They would describe the base directory as a file (owner, mode, size...), which is not what the task is about.
        return kwargs


def main() -> None:
    module = ReleaseModule(
        argument_spec=release.argument_spec(),
        required_if=[('state', release.PREPARED, ('version',)), ('state', release.CURRENT, ('version',))],
        supports_check_mode=True,
    )
    try:
        result = release.run(module.params, check_mode=module.check_mode, want_diff=module._diff)
    except release.ERRORS as error:
        module.fail_json(msg=str(error), **error.detail)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
