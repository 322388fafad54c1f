"""l4_can: the roles ask the provider classes what an L4 can do, never a list of names of their own."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.l4vip.rollout.plugins.filter.l4_can import l4_can
from ansible_collections.l4vip.rollout.plugins.module_utils import _providers


@pytest.mark.parametrize('provider', _providers.PROVIDERS)
def test_the_answer_is_the_classes_declaration(provider):
    declared = _providers.provider_class(provider).capabilities
    assert l4_can({'provider': provider}) == sorted(c.name.lower() for c in declared)


def test_a_preset_answers_for_its_device_and_no_provider_is_the_timer():
    assert 'pool' in l4_can({'provider': 'http', 'preset': 'f5_bigip'}) and 'pool' not in l4_can({'provider': 'http'})
    assert l4_can({}) == ['batches']


@pytest.mark.parametrize(('options', 'said'), [
    ({'provider': 'f5'}, "provider: 'f5' is not a provider"),
    ('haproxy', "expected the L4 options as a dict, got 'haproxy'"),
])
def test_bad_options_are_refused_naming_them(options, said):
    with pytest.raises(AnsibleFilterError, match=said):
        l4_can(options)
