"""The profile doc fragment must document exactly the timing model's keys and defaults."""

from __future__ import annotations

import yaml

from ansible_collections.l4vip.rollout.plugins.doc_fragments.profile import ModuleDocFragment
from ansible_collections.l4vip.rollout.plugins.module_utils._timing import PROFILE_ARGUMENT_SPEC


def test_profile_fragment_matches_argument_spec():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']['profile']
    spec = PROFILE_ARGUMENT_SPEC
    assert documented['type'] == spec['type']
    assert documented['default'] == spec['default']
    assert set(documented['suboptions']) == set(spec['options'])
    for key, option in spec['options'].items():
        doc = documented['suboptions'][key]
        assert doc['type'] == option['type'], key
        assert doc['default'] == option['default'], key
        assert doc.get('choices') == option.get('choices'), key
        assert doc['description'], key
