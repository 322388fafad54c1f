"""The L4 role's L3DSR pre-flight: before the start (which would let the L4's checks pass) a member that does not hold
the DSR VIP on a loopback interface stays out - still admin-disabled, never started - with the missing piece named.

The lab (tests/harness/lab.py: the emulator and two embedded servers on 127.0.0.x) is the L4 here; the member is this
machine, so the pre-flight reads this machine's own addresses and ARP settings, changing nothing. 198.18.0.250 is an
address no test puts on this machine's interfaces, so it is missing here whatever else the machine has; what the ARP
settings of this machine say is not asserted. The success path of the same check is shown over SSH, where the test
owns the hosts' addresses and settings (test_dsr_preflight_over_ssh.py).
"""

from __future__ import annotations

import json
import subprocess

from ansible_collections.l4vip.rollout.tests.harness.ansible import run_playbook
from ansible_collections.l4vip.rollout.tests.harness.lab import Lab

DSR_VIP = '198.18.0.250'
PROFILE = {'interval': 0.2, 'retry': 1, 'rise': 1, 'health_check': 'l4'}
PREFLIGHT = 'Check the member holds the DSR VIP on its loopback and ignores ARP for it'


def test_a_member_without_the_dsr_vip_on_lo_stays_out_and_is_not_started(tmp_path):
    addresses = json.loads(subprocess.run(['ip', '-j', 'addr', 'show'], capture_output=True, text=True, check=True, timeout=10).stdout)
    assert not any(a.get('local') == DSR_VIP for link in addresses for a in link['addr_info']), 'the test needs DSR_VIP absent here'
    started = tmp_path / 'started'
    with Lab(tmp_path, count=2, profile=PROFILE) as lab:
        lab.wait_all_bound()
        server = lab.servers['web1']
        variables = {
            'l4_vip_deploy_l4': {'provider': 'emulator', 'endpoint': lab.emulator.control_url, 'pool': 'web', 'member': 'web1',
                                 'poll_interval': 0.05, 'admin_disable': True},
            'l4_vip_deploy_profile': PROFILE,
            'l4_vip_deploy_service_port': server.port,
            'l4_vip_deploy_service_address': server.host,
            'l4_vip_deploy_stop_command': ['/bin/true'],
            'l4_vip_deploy_start_command': ['touch', str(started)],  # the in-process server never stops; the start leaves a mark
            'l4_vip_deploy_dsr_vip': DSR_VIP,
        }
        run = run_playbook(tmp_path, [{'name': 'deploy', 'ansible.builtin.include_role': {'name': 'l4vip.rollout.l4_vip_deploy'},
                                       'vars': variables}])
        assert run.returncode != 0
        refusal = run.task(PREFLIGHT)
        assert refusal['failed'] and f'vip: this member is not ready for direct server return of {DSR_VIP}: {DSR_VIP} is on no loopback ' \
            f'interface (add it, for example: ip addr add {DSR_VIP}/32 dev lo label lo:0)' in refusal['msg'], refusal
        assert refusal['loopback'] == [] and refusal['vip'] == DSR_VIP
        # Out and left out: disabled on the L4 and never enabled again, the start never ran; web2 untouched.
        assert [e['to'] for e in lab.events('web1', kind='admin')] == ['disabled']
        assert not started.exists()
        assert (lab.member('web1')['bound'], lab.member('web2')['bound']) == (False, True)
        assert f"l4_vip_deploy stopped on localhost at '{PREFLIGHT}': vip: this member is not ready" in run.stderr, run.stderr[-2000:]
