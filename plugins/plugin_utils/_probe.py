# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The probe's options: checked once, defaults filled, turned into the traffic generator's arguments.

Internal to the l4vip.rollout collection; not a public API. Runs on the controller.
"""

from __future__ import annotations

import math
import os
import typing as t

from ansible_collections.l4vip.rollout.plugins.module_utils._options import OptionError
from ansible_collections.l4vip.rollout.plugins.plugin_utils.lab._http_client import target_from_url

# A gentle load, safe against a production VIP: two keep-alive clients at two requests a second
# each, and two fresh connections a second - about six requests a second in all.
DEFAULTS: dict[str, t.Any] = {
    'host_header': None,
    'validate_certs': True,
    'ca_path': None,
    'keepalive_clients': 2,
    'keepalive_interval': 0.5,
    'new_connection_rate': 2.0,
    'timeout': 2.0,
    'max_failed': 0,
    'dir': 'rollout-report',
}


def _number(options: t.Mapping[str, t.Any], key: str, integer: bool, positive: bool) -> float | int:
    value = options[key]
    try:
        if isinstance(value, bool):
            raise ValueError
        number: float | int = int(value) if integer else float(value)
        if integer and float(value) != number:
            raise ValueError
    except (TypeError, ValueError):
        raise OptionError(key, value, f"expected {'a whole number' if integer else 'a number'}") from None
    if math.isnan(number) or math.isinf(number) or number < 0 or (positive and number == 0):
        raise OptionError(key, value, f"expected {'a positive' if positive else 'a non-negative'} number")
    return number


def _flag(options: t.Mapping[str, t.Any], key: str) -> bool:
    value = options[key]
    if isinstance(value, bool):
        return value
    if str(value).lower() in ('yes', 'true', 'on', '1'):
        return True
    if str(value).lower() in ('no', 'false', 'off', '0'):
        return False
    raise OptionError(key, value, 'expected true or false')


def probe_options(raw: t.Any) -> dict[str, t.Any]:
    """The options with defaults filled; OptionError for the first one that is wrong."""
    if not isinstance(raw, t.Mapping):
        raise OptionError('<options>', raw, 'expected a dictionary with at least urls')
    unknown = sorted(set(raw) - set(DEFAULTS) - {'urls'})
    if unknown:
        raise OptionError(unknown[0], raw[unknown[0]], f"unknown option; the options are urls, {', '.join(DEFAULTS)}")
    options = dict(DEFAULTS, **{key: value for key, value in raw.items() if value is not None})
    urls = options.get('urls')
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, t.Sequence) or not urls:
        raise OptionError('urls', options.get('urls'), 'expected one or more http:// or https:// URLs of the VIP')
    for url in urls:
        try:
            target_from_url(str(url), options['host_header'])
        except ValueError:
            raise OptionError('urls', url, 'expected http:// or https:// URLs with a host, and a port from 1 to 65535 if any') from None
    options['urls'] = [str(url) for url in urls]
    options['validate_certs'] = _flag(options, 'validate_certs')
    for key, integer, positive in (('keepalive_clients', True, False), ('keepalive_interval', False, False),
                                   ('new_connection_rate', False, False), ('timeout', False, True), ('max_failed', True, False)):
        options[key] = _number(options, key, integer, positive)
    if options['keepalive_clients'] == 0 and options['new_connection_rate'] == 0:
        raise OptionError('keepalive_clients and new_connection_rate', 0, 'expected one of them above 0, or the probe sends nothing')
    if options['ca_path'] and not options['validate_certs']:
        raise OptionError('ca_path', options['ca_path'], 'expected none while validate_certs is false (pick one)')
    # Relative to where ansible-playbook was started, as a user reads it.
    options['dir'] = os.path.abspath(os.path.expanduser(str(options['dir'])))
    options['arguments'] = probe_arguments(options)
    return options


def probe_arguments(options: t.Mapping[str, t.Any]) -> list[str]:
    """The traffic generator's command-line arguments for these options (no output paths)."""
    arguments = [f'--url={url}' for url in options['urls']]
    if options['host_header']:
        arguments += ['--host-header', str(options['host_header'])]
    if not options['validate_certs']:
        arguments.append('--insecure')
    elif options['ca_path']:
        arguments += ['--ca-path', str(options['ca_path'])]
    arguments += ['--keepalive', str(options['keepalive_clients']), '--interval', str(options['keepalive_interval']),
                  '--rate', str(options['new_connection_rate']), '--timeout', str(options['timeout']),
                  '--source', 'probe', '--records', 'failed']
    return arguments
