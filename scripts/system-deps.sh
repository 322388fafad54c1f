#!/usr/bin/env bash
# Install the Debian packages the tests run for real: nginx and HAProxy (the real web server
# and L4), iptables (the L4 role's health-check firewall rule), socat (HAProxy's runtime socket), shellcheck (ansible-test's shell lint), wrk (the benchmarks' load generator),
# openssh-server (sshd on each host of the multi-host topology, tests/harness/netns.py),
# libcairo2 (the library CairoSVG renders the report's picture with, in the tests).
# Nothing is installed when all commands are already there. Installing starts no service: the
# tests run their own sshd per namespace, so a policy-rc.d keeps the package's from starting.
set -euo pipefail

declare -A package_of=([nginx]=nginx [haproxy]=haproxy [iptables]=iptables [socat]=socat [shellcheck]=shellcheck [wrk]=wrk [sshd]=openssh-server)
missing=()
for command in "${!package_of[@]}"; do
    if ! PATH=$PATH:/usr/sbin:/sbin command -v "$command" >/dev/null 2>&1; then
        missing+=("${package_of[$command]}")
    fi
done
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libcairo\.so\.2 '; then
    missing+=(libcairo2)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]} and this is not a Debian-like system (no apt-get); install them by hand." >&2
    exit 1
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "system-deps: missing ${missing[*]}; run as root or with passwordless sudo, or: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
echo "system-deps: installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    # Exit 101: invoke-rc.d starts no service; removed again after the install.
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 755 "$policy"
    trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
