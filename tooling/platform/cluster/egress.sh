#!/usr/bin/env bash
# Keep pod traffic on this machine: whatever arrives on the pod bridge is routed only by a table
# that holds the platform's own routes and an unreachable default.
#
# Usage: tooling/platform/cluster/egress.sh up | down   (up.sh and down.sh run it)
#
# Why routing and not a firewall rule: forwarding is on whenever the cluster runs (the bridge
# plugin's isGateway turns net.ipv4.ip_forward on, and so does dockerd in bridge mode), so a pod's
# packet to an outside address is forwarded unless a FORWARD rule stops it, and any tool may insert
# an ACCEPT above ours, as the CNI firewall plugin does for every pod. The route look-up comes
# before FORWARD: a packet whose route is unreachable is refused by the kernel and never reaches
# a firewall rule, so no rule, in any order, can let it out. Only an `ip rule` of a lower
# priority could come first, and tests/e2e/test_network.py checks that there is none.
# Packets to this host's own addresses still arrive: the local table (priority 0) comes first.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"

# The routing table for packets that arrive on the pod bridge, and the priority of the rule that
# selects it: ahead of main (32766) and of the rules VPN clients add (5210 and up for Tailscale).
POD_TABLE=4213
POD_RULE_PRIORITY=4213

# families: the address families this kernel has (IPv6 can be switched off at boot).
families() {
  echo -4
  [[ -e /proc/net/if_inet6 ]] && echo -6
  return 0
}

up() {
  require_root "tooling/platform/cluster/egress.sh"
  require_commands ip iptables iptables-save
  # The bridge plugin adopts an existing bridge; creating it here lets the table name it before
  # the first pod starts.
  ip link show "$POD_BRIDGE" >/dev/null 2>&1 || ip link add "$POD_BRIDGE" type bridge
  ip link set "$POD_BRIDGE" up
  ip -4 route replace "$POD_CIDR" dev "$POD_BRIDGE" table "$POD_TABLE"
  local family
  for family in $(families); do
    ip "$family" route replace unreachable default table "$POD_TABLE"
    [[ -n $(ip "$family" rule show priority "$POD_RULE_PRIORITY" iif "$POD_BRIDGE" table "$POD_TABLE") ]] ||
      ip "$family" rule add priority "$POD_RULE_PRIORITY" iif "$POD_BRIDGE" table "$POD_TABLE"
  done
  forget_forward_reject
}

# The FORWARD REJECT that earlier versions relied on, outranked by any ACCEPT inserted above it.
forget_forward_reject() {
  local rules rule
  rules=$(iptables-save -t filter 2>/dev/null | grep -E '^-A FORWARD .*"hello-cluster: pods stay on this machine"' || true)
  while IFS= read -r rule; do
    # eval: the saved rule keeps iptables-save's quoting of the comment.
    [[ -z $rule ]] || eval "iptables -w -t filter -D ${rule#-A }"
  done <<<"$rules"
}

down() {
  require_root "tooling/platform/cluster/egress.sh"
  local family
  for family in $(families); do
    while ip "$family" rule del priority "$POD_RULE_PRIORITY" iif "$POD_BRIDGE" table "$POD_TABLE" 2>/dev/null; do :; done
    ip "$family" route flush table "$POD_TABLE" 2>/dev/null || true
  done
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up | down" ;;
esac
