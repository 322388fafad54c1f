# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The embedded L4 emulator: VIPs, health checks, a session table and a control API.

Internal to the l4vip.rollout collection; not a public API. Standard library only, so that it
runs wherever the collection's modules run. It behaves like the L4 docs/how-it-works.md
describes, in direct-server-return spirit: a new client connection goes to a bound member (up
or Suspect, administratively enabled); a member marked down keeps its sessions until it closes
them or they idle out; with ``reset_on_port_fail`` its clients get RST while its own side stays
open. One concern per file, imported by its own name (this file imports nothing, so that
``python -m ...daemon`` loads only what the daemon needs): ``config`` (the configuration),
``health`` (a member's check and state machine), ``datapath`` (VIP listener, connections,
sessions), ``metrics`` (Prometheus text), ``core`` (the Emulator), ``api`` (the control API),
``daemon`` (the two wired together, and the command line: ``python -m`` it).
"""
