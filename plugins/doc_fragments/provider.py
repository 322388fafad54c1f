# Copyright (c) 2026, l4vip.rollout contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Must match provider_argument_spec() in plugins/module_utils/_providers.py, and say what each provider can do as its class
    # there declares it; unit tests hold them together.
    DOCUMENTATION = r'''
options:
  provider:
    description:
      - How the module reaches the L4.
      - V(timer) asks nothing and waits the timing model's worst case for O(profile).
      - V(emulator) asks the embedded emulator's control API at O(endpoint).
      - V(haproxy) asks HAProxy's runtime API (C(stats socket ... level admin)) at O(endpoint).
      - V(http) asks any REST API of an L4 (F5 iControl REST, NetScaler NITRO, A10 aXAPI...) at O(endpoint) and reads the
        answer with O(query); with O(preset) it speaks a known device's dialect instead.
      - V(access_log) reads the web server's own access log at O(endpoint) and counts the health checks it answered.
      - V(ipvs) reads and changes the IPVS table (LVS, keepalived) of the host the L4 steps run on, with C(ipvsadm) (or, to
        read only, C(/proc/net/ip_vs)); O(pool) is the virtual service's C(address:port), O(member) the real server's.
      - V(aws_elbv2) asks an AWS Elastic Load Balancing v2 target group (ALB, NLB) through boto3; O(pool) is the target
        group's ARN, O(member) the target's id. A target is bound while C(DescribeTargetHealth) says C(healthy);
        deregistering it is both V(drain) and V(disabled) (the group's deregistration delay is the drain), registering it
        V(enabled). Needs the C(boto3) Python library where the L4 steps run.
      - Only V(emulator), V(haproxy) and V(ipvs) can count the L4's sessions; V(emulator), V(haproxy), V(ipvs) and
        V(aws_elbv2) can list the pool; V(emulator), V(haproxy), V(http), V(ipvs) and V(aws_elbv2) can set an admin state.
        With O(preset), V(http) can do what its device can.
    type: str
    choices: [timer, emulator, haproxy, http, access_log, ipvs, aws_elbv2]
    default: timer
  endpoint:
    description:
      - Where the L4 answers. The control API's base URL for V(emulator) (for example C(http://127.0.0.1:8099)); a unix
        socket path or C(host:port) for V(haproxy); the URL to C(GET) for V(http) (the device's base URL with O(preset));
        the access log's path for V(access_log); the C(ipvsadm) command for V(ipvs) (C(ipvsadm) from the path when not
        given); for V(aws_elbv2) the ELBv2 API's URL when it is not AWS's own for the region (a VPC endpoint, say).
      - Required with every provider but V(timer), V(ipvs) and V(aws_elbv2).
    type: str
  pool:
    description:
      - The pool the member belongs to, as the L4 names it - with V(emulator) the VIP's name (the emulator balances VIPs),
        with V(haproxy) the backend's, with V(ipvs) the virtual service's C(address:port), with V(aws_elbv2) the target
        group's ARN. Required with V(emulator), V(haproxy), V(ipvs) and V(aws_elbv2).
    type: str
  member:
    description:
      - The member's name as the L4 knows it (with V(ipvs), the real server's C(address:port); with V(aws_elbv2), the
        target's id - an instance id, an IP address or an ARN). With V(emulator), V(haproxy), V(ipvs) and V(aws_elbv2),
        this or O(members) is required.
    type: str
  members:
    description:
      - A batch - several members of O(pool), as the L4 names them - to act on in one task, with the providers that
        answer for a whole pool in one request (V(emulator), V(haproxy), V(ipvs), V(aws_elbv2), V(http) with O(preset);
        V(timer) waits once for all). The modules that
        report per member return each member's own result under C(members).
      - O(member) alone is a batch of one.
    type: list
    elements: str
  query:
    description:
      - V(http) only. A JMESPath expression over the JSON answer that yields the member's state, for example C(state)
        for F5 iControl REST or C(servicegroup_servicegroupmember_binding[0].svrstate) for NetScaler NITRO.
    type: str
  down_values:
    description:
      - V(http) only. Answers of O(query) that mean the member is out of the binding list. Text compares case-insensitively.
    type: list
    elements: raw
    default: [down]
  up_values:
    description:
      - V(http) only. Answers of O(query) that mean the member is bound. Anything else counts as in between.
    type: list
    elements: raw
    default: [up]
  headers:
    description:
      - V(http) only. Request headers, such as an authentication token. Never logged.
    type: dict
    default: {}
  preset:
    description:
      - V(http) only. A device's REST dialect, which fills in the URLs, the state query and values, the admin requests, the
        session count and the pool listing; O(endpoint) is then the device's base URL, O(pool) and O(member) name the
        pool and the member as the device does, and O(username) and O(password) log in. O(query) and C(admin_request)
        are not used with a preset.
      - V(f5_bigip) - BIG-IP iControl REST (C(https://bigip)); O(pool) C(web) or C(/Partition/web), O(member) C(node:port).
        Logs in for an C(X-F5-Auth-Token).
      - V(netscaler) - NetScaler / ADC NITRO (C(https://adc)); O(pool) the service group, O(member) C(servername:port).
        Logs in for a C(NITRO_AUTH_TOKEN) session; V(drain) is a graceful disable.
      - V(haproxy_dataplane) - HAProxy Data Plane API with its version (C(http://lb:5555/v3) or C(.../v2)); O(pool) the
        backend, O(member) the server. Basic authentication.
      - V(nginx_plus) - NGINX Plus API with its version (C(http://lb:8080/api/9)); O(pool) the upstream, or
        C(stream/<upstream>) for a stream upstream (no V(drain) there), O(member) the peer's C(address:port). Basic
        authentication when O(username) is given.
      - V(a10) - A10 aXAPI v3 (C(https://thunder)); O(pool) the service group, O(member) C(name:port). Logs in for a signature
        it sends as C(Authorization) C(A10 <signature>). No V(drain) state.
      - V(alteon) - Radware Alteon REST (C(https://alteon)); O(pool) the real server group, O(member) the real server's
        index. Observes, counts sessions and lists the group; no admin state. Basic authentication.
      - V(kemp) - Kemp LoadMaster API v2 (C(https://loadmaster)); O(pool) the virtual service's C(address:port), O(member)
        the real server's C(address:port). No V(drain) state and no session count.
      - V(envoy) - Envoy's admin interface (C(http://127.0.0.1:9901)); O(pool) the cluster, O(member) the host's
        C(address:port). Observes, counts sessions (C(cx_active)) and lists the cluster; it sets nothing, and has no login.
    type: str
    choices: [f5_bigip, netscaler, haproxy_dataplane, nginx_plus, a10, alteon, kemp, envoy]
  username:
    description:
      - V(http) with O(preset) only. The account the preset logs in with.
    type: str
  password:
    description:
      - V(http) with O(preset) only. The account's password. Never logged.
    type: str
  validate_certs:
    description:
      - V(http) only. Whether to verify the L4's TLS certificate. Leave it on; use O(ca_path) for a private CA.
    type: bool
    default: true
  ca_path:
    description:
      - V(http) only. A CA bundle to verify the L4's certificate with.
    type: path
  health_check_uri:
    description:
      - V(access_log) only. The URI the L4 requests; O(profile.health_check_path) when not given.
    type: str
  sources:
    description:
      - V(access_log) only. The addresses the L4's health checks come from (its self IPs). Empty counts every client
        that requests O(health_check_uri).
    type: list
    elements: str
    default: []
  region:
    description:
      - V(aws_elbv2) only. The AWS region; the target group's own, read from its ARN, when not given (a different one is
        refused).
    type: str
  target_port:
    description:
      - V(aws_elbv2) only. The port the target is registered on. Needed when the same target is registered on several
        ports of the group; registering a member again uses it, else the port it had, else the group's port.
      - Not named C(port), which M(l4vip.rollout.session_drain) takes for the server's own service port.
    type: int
  aws_access_key:
    description:
      - V(aws_elbv2) only. The AWS access key id. Never logged. When not given, boto3 finds credentials its own way - the
        environment (C(AWS_ACCESS_KEY_ID), C(AWS_SECRET_ACCESS_KEY), C(AWS_SESSION_TOKEN)), O(aws_profile) or the shared
        configuration, or the instance's role.
    type: str
  aws_secret_key:
    description:
      - V(aws_elbv2) only. The AWS secret access key, with O(aws_access_key). Never logged.
    type: str
  aws_session_token:
    description:
      - V(aws_elbv2) only. The session token of temporary credentials. Never logged.
    type: str
  aws_profile:
    description:
      - V(aws_elbv2) only. A profile of the AWS configuration files of the host that runs the L4 steps.
    type: str
  poll_interval:
    description:
      - Seconds between two questions to the L4 while waiting.
    type: float
    default: 0.1
'''
