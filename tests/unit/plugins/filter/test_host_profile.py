"""Which L4 profile a host's deploy role gets in rolling_deploy, and the refusal of two that differ."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.l4vip.rollout.plugins.filter.host_profile import host_profile


def test_rolling_deploy_profile_first_then_the_l7_role_then_the_l4_role():
    assert host_profile('web1', {'interval': 2}, {'interval': 2}) == {'interval': 2}
    assert host_profile('web1', None, {'interval': 3}, {'interval': 4}) == {'interval': 3}
    assert host_profile('web1', None, None, {'interval': 4}) == {'health_check': 'l4', 'interval': 4}
    assert host_profile('web1') == {}


def test_the_l4_roles_own_profile_may_still_name_its_health_check():
    assert host_profile('web1', None, None, {'health_check': 'l7'}) == {'health_check': 'l7'}


def test_two_profiles_that_differ_are_refused_naming_both_and_the_host():
    with pytest.raises(AnsibleFilterError) as refused:
        host_profile('web1', {'interval': 2}, {'interval': 30}, {'interval': 2})
    assert str(refused.value).startswith('rolling_deploy_profile: {"interval": 2} and l7_vip_deploy_profile: {"interval": 30} are both set '
                                         'for web1 and differ')
    with pytest.raises(AnsibleFilterError, match=r'and l7_vip_deploy_profile: \{"retry": 2\} and l4_vip_deploy_profile: \{"retry": 3\}'):
        host_profile('web2', {'retry': 1}, {'retry': 2}, {'retry': 3})


@pytest.mark.parametrize(('given', 'name'), [({'rolling_deploy': 'fast'}, 'rolling_deploy_profile'), ({'l4': [1]}, 'l4_vip_deploy_profile')])
def test_a_profile_that_is_no_dict_is_refused_by_its_name(given, name):
    with pytest.raises(AnsibleFilterError, match=f'^{name}: expected a dict'):
        host_profile('web1', **given)
