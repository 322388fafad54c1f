"""The roles' profile option must name exactly the timing model's keys: their argument specs are written by hand."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

from ansible_collections.l4vip.rollout.plugins.module_utils._timing import PROFILE_DEFAULTS

ROLES = pathlib.Path(__file__).resolve().parents[2] / 'roles'
DEPLOY_ROLES = ('l7_vip_deploy', 'l4_vip_deploy')


def profile_option(role: str) -> dict:
    spec = yaml.safe_load((ROLES / role / 'meta' / 'argument_specs.yml').read_text(encoding='utf-8'))
    return spec['argument_specs']['main']['options'][f'{role}_profile']


@pytest.mark.parametrize('role', DEPLOY_ROLES)
def test_the_roles_profile_option_names_the_timing_models_keys(role):
    option = profile_option(role)
    assert (option['type'], option['default']) == ('dict', {})  # the defaults are the timing model's, filled in by the modules
    first = option['description'][0] if isinstance(option['description'], list) else option['description']
    assert first.startswith('The L4 profile ('), first
    listed = first.split(';')[0]  # the keys come before "; see docs/timing.md"
    assert re.findall(r'C\((\w+)\)', listed) == list(PROFILE_DEFAULTS)
