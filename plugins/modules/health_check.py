#!/usr/bin/python
# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: health_check
short_description: Put a web server's health-check file in or out of service
version_added: 0.1.0
description:
  - Takes a member out of an L4 VIP with an L7 health check, or brings it back, by renaming its health-check file
    (for example C(/var/www/html/health_check.html)) to a disabled name and back. While the file is gone the web
    server answers the L4's check with 404 and the L4 takes the member out of its binding list.
  - The file is renamed, never deleted and rewritten, so its content, owner, group, mode and modification time survive
    any number of toggles. Both names must be in one directory, where the rename is atomic.
  - Refuses, with a clear error and without changing anything, when both names exist, when the directory does not
    exist, when an option has a bad value, or when a name is a symlink that leads outside its directory (or to
    something that is not a regular file); the module never follows a symlink out of the docroot.
  - With O(verify_url) it then polls the URL until the web server answers as the new state requires, because a server
    may cache the file's existence for a while.
  - Runs inside the controller's process when the task's connection is V(local) without become (the member is the
    controller itself); anywhere else, as a module on the member. Set the variable C(l4vip_rollout_in_process) to
    V(false) to always run the module.
author:
  - l4vip.rollout maintainers (@l4vip)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would change; no file is renamed or created and O(verify_url) is not requested.
  diff_mode:
    support: full
    details: The diff shows the state before and after and which of the two names exists.
  platform:
    platforms: posix
options:
  path:
    description:
      - Absolute path of the health-check file as the web server serves it when the member is in service.
    type: path
    required: true
  state:
    description:
      - V(in_service) makes O(path) exist, renaming O(disabled_path) back or, when neither exists, creating it
        from O(content).
      - V(out_of_service) renames O(path) to O(disabled_path). When neither exists the task fails, because a mistyped
        O(path) looks the same and passing would leave the real file in service.
      - V(query) changes nothing and returns the current state, V(missing) when neither name exists.
    type: str
    choices: [in_service, out_of_service, query]
    default: in_service
  disabled_path:
    description:
      - The name the file has while out of service. Defaults to O(path) with C(.disabled) appended.
      - Must be in the same directory as O(path), which keeps the rename atomic and on one filesystem.
    type: path
  content:
    description:
      - Content of the file to create with O(state=in_service) when neither O(path) nor O(disabled_path) exists.
        It is created with mode C(0644), so the web server can read it. Ignored in every other case.
      - Without it, O(state=in_service) fails when neither name exists.
    type: str
  verify_url:
    description:
      - After the change (also when nothing changed unless O(verify_unchanged=false), never in check mode) GET this URL
        until it answers 200 for O(state=in_service), or an HTTP status other than 2xx for O(state=out_of_service), as
        the L4's check would see it.
      - Redirects are not followed and no proxy is used, like an L4's check. A connection error is not an answer;
        polling goes on.
      - With O(state=query), a check before a rollout that changes nothing; when the file is in service the URL must
        answer 200 (within O(verify_timeout)). Out of service it is not requested, since its web server may be stopped.
    type: str
  verify_timeout:
    description:
      - Seconds to keep polling O(verify_url). On timeout the task fails with the last status or error seen.
    type: float
    default: 30.0
  verify_poll_interval:
    description:
      - Seconds between two requests to O(verify_url).
    type: float
    default: 0.5
  verify_unchanged:
    description:
      - Whether to request O(verify_url) also when the file already had the wanted name.
      - V(false) suits a rollout's step out of service. A file already out was put there by an earlier run, which may have
        stopped the web server too, and a refused connection verifies nothing; one task then does what a
        O(state=query) task followed by a conditional O(verify_url) would.
    type: bool
    default: true
  dsr_vip:
    description:
      - The VIP of an L3DSR (direct server return) L4, which answers its clients from the member itself. With
        O(state=in_service), before anything is renamed, the module checks that this member is ready to answer them - the
        VIP is on a loopback interface (C(lo), often as the alias C(lo:0)), on no other interface, and the interfaces that
        face the L4 do not answer ARP for it - C(arp_ignore) at least 1 and C(arp_announce) 2, where the kernel uses the
        larger of C(net.ipv4.conf.all) and the interface's own value.
      - When anything is missing the task fails with an error that lists each missing piece, and nothing is renamed, so the
        member stays out of the VIP. The module only reads (C(ip -j addr show) and C(/proc/sys/net/ipv4/conf)); it never
        adds or removes an address, and never takes the VIP down.
      - With O(state=query), RV(dsr) reports the same findings and the task does not fail on them. With
        O(state=out_of_service) it is not checked, since taking a member out is never refused for it.
      - For an IPv6 VIP only the addresses are checked (ARP is IPv4's).
    type: str
  dsr_interface:
    description:
      - With O(dsr_vip), the interface that faces the L4, the only one whose ARP settings are checked.
      - When not given, every interface that could answer ARP for the VIP is checked - up, not loopback, not C(NOARP),
        not a bridge port or bond slave.
    type: str
  start_command:
    description:
      - With O(state=in_service) only, the web server's start as an argv (no shell), for example
        V([systemctl, start, nginx]). It runs first - after the files' own refusals, before the O(dsr_vip) check and the
        rename - so that the member comes back in one task; the task is then always V(changed).
      - When it exits non-zero the task fails with its exit code and output, and nothing is renamed, so the member stays
        out of the VIP. Not run in check mode.
      - One task instead of a start task and a health-check task, so one module run less over SSH while the member is out
        of the VIP.
    type: list
    elements: str
notes:
  - A rename does not change a file's modification time but does change its inode change time and the directory's
    modification time.
'''

EXAMPLES = r'''
- name: Take the member out of the VIP and check that the web server answers 404
  l4vip.rollout.health_check:
    path: /var/www/html/health_check.html
    state: out_of_service
    verify_url: http://127.0.0.1/health_check.html
    verify_timeout: 10

- name: Bring it back, creating the file on a fresh server
  l4vip.rollout.health_check:
    path: /var/www/html/health_check.html
    state: in_service
    content: "OK\n"
    verify_url: http://127.0.0.1/health_check.html

- name: Read the current state
  l4vip.rollout.health_check:
    path: /var/www/html/health_check.html
    state: query
  register: health_check

- name: Before a rollout, check the URL serves the file (200) while it is in service
  l4vip.rollout.health_check:
    path: /var/www/html/health_check.html
    state: query
    verify_url: http://127.0.0.1/health_check.html
    verify_timeout: 5

- name: Back in service behind an L3DSR L4, only if the member holds the VIP on lo and ignores ARP for it
  l4vip.rollout.health_check:
    path: /var/www/html/health_check.html
    state: in_service
    dsr_vip: 10.0.0.100

- name: Start the web server, then bring the member back and wait until the server answers 200
  l4vip.rollout.health_check:
    path: /var/www/html/health_check.html
    state: in_service
    start_command: [systemctl, start, nginx]
    verify_url: http://127.0.0.1/health_check.html

- name: Keep the disabled copy under another name in the same directory
  l4vip.rollout.health_check:
    path: /srv/www/health_check.html
    disabled_path: /srv/www/health_check.html.off
    state: out_of_service
'''

RETURN = r'''
state:
  description:
    - The state after the task (in check mode, the state it would have), V(in_service) or V(out_of_service).
    - With O(state=query), the current state, which may also be V(missing) when neither name exists.
  type: str
  returned: success, and on failure of the verification
  sample: out_of_service
previous_state:
  description: The state before the task, V(in_service), V(out_of_service) or V(missing).
  type: str
  returned: success, and on failure of the verification
  sample: in_service
changed_at:
  description:
    - When the file took its present name, in seconds since the epoch - from then on the L4's checks get the answer of
      RV(state). Pass it to M(l4vip.rollout.member_wait)'s O(l4vip.rollout.member_wait#module:since).
    - The time of the rename when the task changed it; otherwise the file's last status change (ctime), which a rename
      sets. In check mode with a change pending, the time of the task.
  type: float
  returned: success, except with O(state=query)
  sample: 1795526400.25
path:
  description: The health-check file's path.
  type: str
  returned: always, except when an option value is refused
  sample: /var/www/html/health_check.html
disabled_path:
  description: The name of the file while out of service.
  type: str
  returned: always, except when an option value is refused
  sample: /var/www/html/health_check.html.disabled
dsr:
  description:
    - What the L3DSR pre-flight found for O(dsr_vip); on a refusal it is also in the failed result.
  type: dict
  returned: when O(dsr_vip) is given with O(state=in_service) or O(state=query)
  contains:
    vip:
      description: The VIP checked.
      type: str
      sample: 10.0.0.100
    loopback:
      description: The labels of the loopback interfaces that hold the VIP (empty when none does).
      type: list
      elements: str
      sample: [lo:0]
    also_on:
      description: The other interfaces that hold the VIP (it should be none).
      type: list
      elements: str
      sample: []
    arp:
      description: Per interface checked, the C(arp_ignore) and C(arp_announce) the kernel uses (the larger of C(all)'s and its own).
      type: dict
      sample: {eth0: {arp_ignore: 1, arp_announce: 2}}
    missing:
      description: What is missing for DSR, one sentence each; empty when the member is ready.
      type: list
      elements: str
      sample: []
start:
  description:
    - What O(start_command) did; on its failure also in the failed result, with its C(stdout) and C(stderr).
  type: dict
  returned: when O(start_command) is given, not in check mode
  contains:
    rc:
      description: The start command's exit code.
      type: int
      sample: 0
    seconds:
      description: How long the start command took.
      type: float
      sample: 0.31
verify:
  description:
    - What the requests to O(verify_url) saw.
    - On failure it also holds C(error), the last connection error (or V(null)), and C(expected).
  type: dict
  returned: when O(verify_url) is given, not in check mode
  contains:
    url:
      description: The URL requested.
      type: str
      sample: http://127.0.0.1/health_check.html
    status:
      description: The last HTTP status, V(null) when the last request got no answer.
      type: int
      sample: 404
    attempts:
      description: How many requests were made.
      type: int
      sample: 3
    elapsed:
      description: Seconds from the first request to the last answer.
      type: float
      sample: 1.02
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l4vip.rollout.plugins.module_utils import _health_check as health_check


class HealthCheckModule(AnsibleModule):
    """AnsibleModule, minus the file facts it adds to any result that has a ``path``."""

    def add_path_info(self, kwargs: dict) -> dict:
        # They would overwrite ``state`` (in_service...) with the file type (``file``), and describe
        # whichever name happens to be ``path`` rather than the health-check file.
        return kwargs


def main() -> None:
    module = HealthCheckModule(
        argument_spec=health_check.argument_spec(),
        supports_check_mode=True,
    )
    try:
        result = health_check.run(module.params, check_mode=module.check_mode, want_diff=module._diff,
                                  run_command=module.run_command)
    except health_check.ERRORS as error:
        module.fail_json(msg=str(error), **error.detail)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
