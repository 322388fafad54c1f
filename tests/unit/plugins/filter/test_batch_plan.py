from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.l4vip.rollout.plugins.filter.batch_plan import FilterModule

batch_plan = FilterModule().filters()['batch_plan']


def test_gives_the_play_its_hosts_and_serial():
    result = batch_plan(['vip_a'], {'vip_a': ['a1', 'a2', 'a3']}, [1, '50%'])
    assert (result['hosts'], result['serial']) == (['a1', 'a2', 'a3'], [1, 1, 1])
    assert result['batches'][0] == {'group': 'vip_a', 'number': 1, 'hosts': ['a1']}


def test_bad_serial_is_a_filter_error_naming_the_option():
    with pytest.raises(AnsibleFilterError, match=r"serial: 'most' is neither a host count nor a percentage"):
        batch_plan(['vip_a'], {'vip_a': ['a1']}, 'most')
