# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Running the emulator: the core wired to its control API, and the command line the l4_emulator module starts.

    python -m ansible_collections.l4vip.rollout.plugins.module_utils._emulator.daemon --config emulator.yml

Internal to the l4vip.rollout collection; not a public API. This is the one file that imports
both the core and the API (``with_control_api``), so neither has to know the other. The process
runs until SIGTERM or SIGINT, writes its pidfile and state file once ready and removes them at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.api import serve_control
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import ConfigError, EmulatorConfig, control_warnings, load_config
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.core import Emulator


def with_control_api(config: EmulatorConfig) -> Emulator:
    """An emulator that serves its control API once started: how the daemon and the tests' threads build one."""
    return Emulator(config, serve_control)


def _write_atomically(path: str, text: str) -> None:
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.replace(tmp, path)


async def serve_forever(config: EmulatorConfig, pidfile: str | None, state_file: str | None) -> None:
    """Run until SIGTERM or SIGINT; the state file says where the control API listens."""
    emulator = with_control_api(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await emulator.start()
    try:
        if pidfile:
            _write_atomically(pidfile, f'{os.getpid()}\n')
        if state_file:
            _write_atomically(state_file, json.dumps(emulator.status(), indent=2))
        _say(sys.stdout, f'l4vip emulator ready: control {emulator.control_url}, VIPs ' +
             ', '.join(f'{n} {v.listen}' for n, v in emulator.vips.items()))
        await stop.wait()
    finally:
        await emulator.stop()
        for path in (pidfile, state_file):
            if path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def _say(stream: t.TextIO, line: str) -> None:
    """Command-line output (this file is module_utils, where print() is reserved for modules)."""
    stream.write(line + '\n')
    stream.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='l4vip-emulator', description='The embedded L4 emulator of l4vip.rollout.')
    parser.add_argument('--config', required=True, help='configuration file (JSON, or YAML with PyYAML)')
    parser.add_argument('--pidfile', help='write the process id here once ready; removed at exit')
    parser.add_argument('--state-file', help='write the control URL and listening addresses here (JSON) once ready')
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (OSError, ConfigError) as error:
        _say(sys.stderr, f'l4vip-emulator: {args.config}: {error}')
        return 2
    for warning in control_warnings(config):
        _say(sys.stderr, f'l4vip-emulator: warning: {warning}')
    try:
        asyncio.run(serve_forever(config, args.pidfile, args.state_file))
    except OSError as error:
        _say(sys.stderr, f'l4vip-emulator: cannot listen: {error}')
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())  # not sys.exit: ansible-test's pylint bans it in module_utils
