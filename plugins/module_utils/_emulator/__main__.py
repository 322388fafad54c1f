# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``python -m ansible_collections.l4vip.rollout.plugins.module_utils._emulator --config emulator.yml``: the daemon.

Internal to the l4vip.rollout collection; not a public API. Importing it runs nothing, so that
``_emulator_service`` can import it for Ansible to ship it with the l4_emulator module.
"""

from __future__ import annotations

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.daemon import main

if __name__ == '__main__':
    raise SystemExit(main())
