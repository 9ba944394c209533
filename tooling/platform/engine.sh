#!/usr/bin/env bash
# Start or stop our own Docker engine (containerd + dockerd) on a private socket under $HELLO_RUN.
# Usage: engine.sh up | down [--purge]
set -euo pipefail
PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PLATFORM_DIR/env.sh"
source "$PLATFORM_DIR/lib.sh"

ENGINE_DIR=$HELLO_RUN/docker
DATA_ROOT=$ENGINE_DIR/data
EXEC_ROOT=$ENGINE_DIR/exec
DOCKERD_PIDFILE=$ENGINE_DIR/dockerd.pid
DOCKERD_LOG=$ENGINE_DIR/dockerd.log
# Our own containerd, not dockerd's built-in supervisor: dockerd 20.10 silently
# adopts a containerd already listening on /run/containerd/containerd.sock
# (for example the cluster's), which would mix the two platforms.
CONTAINERD_DIR=$ENGINE_DIR/containerd
CONTAINERD_SOCK=$CONTAINERD_DIR/containerd.sock
CONTAINERD_PIDFILE=$CONTAINERD_DIR/containerd.pid
CONTAINERD_LOG=$CONTAINERD_DIR/containerd.log
START_TIMEOUT=60
STOP_TIMEOUT=30
# bridge (default): docker0 + iptables NAT, needed by BuildKit builds, whose RUN
# steps fail with "network bridge not found" under none. none: no bridge, no
# firewall changes; only the legacy builder and --network none|host work.
ENGINE_NETWORK=${HELLO_DOCKER_NETWORK:-bridge}
# What the host had before dockerd first touched its network (removed by `down`).
NETWORK_BEFORE=$ENGINE_DIR/host-network.before
# Priority of the `ip rule` that leaves packets from containers on docker0 without a route off
# this machine (guard_container_egress); ahead of the main table's rule (32766).
CONTAINER_RULE_PRIORITY=4212

write_containerd_config() {
  mkdir -p "$CONTAINERD_DIR"
  cat >"$CONTAINERD_DIR/config.toml" <<EOF
version = 2
root = "$DATA_ROOT/containerd"
state = "$EXEC_ROOT/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""
EOF
}

# Settings stay in flags; the empty config file only keeps /etc/docker/daemon.json out.
write_dockerd_config() {
  echo '{}' >"$ENGINE_DIR/daemon.json"
}

network_flags() {
  case $ENGINE_NETWORK in
    none) echo --bridge=none --iptables=false --ip-masq=false --ip-forward=false ;;
    bridge) echo --iptables=true ;;
    *) die "HELLO_DOCKER_NETWORK must be none or bridge, got '$ENGINE_NETWORK'" ;;
  esac
}

dockerd_answers() { docker_ours info >/dev/null 2>&1; }
containerd_answers() { ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; }

# Record the host's firewall, forwarding and docker0 state before dockerd changes
# them, so that `down` takes back only dockerd's changes. Kept until `down`, so a
# crashed run's leftovers are not mistaken for the host's own.
record_host_network() {
  [[ -e $NETWORK_BEFORE ]] && return 0
  mkdir -p "$NETWORK_BEFORE.d"
  local table
  for table in filter nat; do
    iptables-save -t "$table" 2>/dev/null | grep -E '^(:|-A)' | sed 's/ \[[0-9]*:[0-9]*\]$//' >"$NETWORK_BEFORE.d/$table" || true
  done
  {
    echo "docker0=$(ip link show docker0 >/dev/null 2>&1 && echo present || echo absent)"
    echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
    echo "forward_policy=$(iptables -S FORWARD 2>/dev/null | sed -n 's/^-P FORWARD //p')"
    # dockerd 20.10 creates /run/docker/plugins whatever its exec-root.
    echo "run_docker=$([[ -e /run/docker ]] && echo present || echo absent)"
  } >"$NETWORK_BEFORE.tmp"
  mv "$NETWORK_BEFORE.tmp" "$NETWORK_BEFORE"
}

before() { sed -n "s/^$1=//p" "$NETWORK_BEFORE" 2>/dev/null; }

# ip_families: the address families this kernel has (IPv6 can be switched off at boot).
ip_families() {
  echo -4
  [[ -e /proc/net/if_inet6 ]] && echo -6
  return 0
}

# In bridge mode dockerd turns net.ipv4.ip_forward on and masquerades docker0's subnet, so a
# container's packet to an outside address would leave by the host's default route. This rule
# answers every packet that arrives on docker0 with "unreachable" unless it is for one of this
# host's own addresses (the local table, priority 0, comes first). The route look-up happens
# before any FORWARD rule, so no ACCEPT that dockerd or another tool inserts, in any order, can
# let such a packet out. Set before dockerd starts (a rule may name an interface not yet there).
guard_container_egress() {
  local family
  for family in $(ip_families); do
    [[ $(ip "$family" rule show priority "$CONTAINER_RULE_PRIORITY" iif docker0) == *unreachable* ]] ||
      ip "$family" rule add priority "$CONTAINER_RULE_PRIORITY" iif docker0 unreachable
  done
}

forget_container_egress_guard() {
  local family
  for family in $(ip_families); do
    while ip "$family" rule del priority "$CONTAINER_RULE_PRIORITY" iif docker0 unreachable 2>/dev/null; do :; done
  done
}

up() {
  require_root "engine.sh"
  require_commands dockerd docker containerd ctr runc iptables iptables-save ip
  mkdir -p "$ENGINE_DIR" "$DATA_ROOT" "$EXEC_ROOT"
  guard_container_egress

  if pid_of "$DOCKERD_PIDFILE" dockerd >/dev/null && dockerd_answers; then
    info "dockerd already running (pid $(<"$DOCKERD_PIDFILE"))"
    return 0
  fi
  record_host_network

  local containerd_pid
  if ! containerd_pid=$(pid_of "$CONTAINERD_PIDFILE" containerd); then
    write_containerd_config
    rm -f "$CONTAINERD_SOCK"
    start_background "$CONTAINERD_PIDFILE" "$CONTAINERD_LOG" \
      containerd --config "$CONTAINERD_DIR/config.toml"
    containerd_pid=$STARTED_PID
  fi
  wait_until "$START_TIMEOUT" "containerd on $CONTAINERD_SOCK" "$CONTAINERD_LOG" "$containerd_pid" containerd_answers

  if pid_of "$DOCKERD_PIDFILE" dockerd >/dev/null; then
    # Alive but not answering: a previous start that never became ready.
    stop_pidfile "$DOCKERD_PIDFILE" dockerd "$STOP_TIMEOUT"
  fi
  write_dockerd_config
  rm -f "$HELLO_DOCKER_SOCK" "$DOCKERD_PIDFILE"
  # shellcheck disable=SC2046 # network_flags prints separate flags
  start_background "$ENGINE_DIR/dockerd.launch.pid" "$DOCKERD_LOG" \
    dockerd \
    --config-file "$ENGINE_DIR/daemon.json" \
    --host "unix://$HELLO_DOCKER_SOCK" \
    --data-root "$DATA_ROOT" \
    --exec-root "$EXEC_ROOT" \
    --pidfile "$DOCKERD_PIDFILE" \
    --containerd "$CONTAINERD_SOCK" \
    --storage-driver overlay2 \
    $(network_flags)
  rm -f "$ENGINE_DIR/dockerd.launch.pid"
  wait_until "$START_TIMEOUT" "dockerd on $HELLO_DOCKER_SOCK" "$DOCKERD_LOG" "$STARTED_PID" dockerd_answers
  info "dockerd $(docker_ours version --format '{{.Server.Version}}') (API $(docker_ours version --format '{{.Server.APIVersion}}')), client $(docker_ours version --format '{{.Client.Version}}')"
}

# Shims outlive a dockerd that died; ours are the ones that name our socket. The
# container's init goes first (its pid namespace goes with it): killing only the
# shim would leave the container's processes running.
stop_our_shims() {
  local pid child
  for pid in $(pgrep -f containerd-shim || true); do
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-address $CONTAINERD_SOCK" || continue
    info "stopping a leftover container and its containerd-shim (pid $pid)"
    for child in $(pgrep -P "$pid" || true); do
      kill -KILL "$child" 2>/dev/null || true
      wait_gone "$child" 10 || true
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || true
  done
}

unmount_leftovers() {
  local target
  for target in $(mounts_under "$ENGINE_DIR"); do
    info "unmounting $target"
    umount "$target" 2>/dev/null || umount -l "$target"
  done
}

# Take back dockerd's changes to the host: the rules and DOCKER* chains that were not
# there before, the FORWARD policy (dockerd sets DROP when it turns forwarding on)
# net.ipv4.ip_forward, the docker0 bridge and /run/docker.
restore_host_network() {
  [[ -e $NETWORK_BEFORE ]] || return 0
  local table rules rule chain policy forward removed_rules=0 removed_chains=0
  for table in filter nat; do
    rules=$(iptables-save -t "$table" 2>/dev/null | grep -E '^-A .*(DOCKER|docker0)' |
      grep -vxF -f "$NETWORK_BEFORE.d/$table" | sed 's/^-A //' || true)
    while read -r rule; do
      [[ -n $rule ]] || continue
      # eval: the saved rule keeps iptables-save's quoting (comments with spaces).
      eval "iptables -t $table -D $rule"
      removed_rules=$((removed_rules + 1))
    done <<<"$rules"
    for chain in $(iptables-save -t "$table" 2>/dev/null | sed -n 's/^:\(DOCKER[^ ]*\) .*/\1/p'); do
      grep -q "^:$chain " "$NETWORK_BEFORE.d/$table" && continue
      iptables -t "$table" -F "$chain"
      iptables -t "$table" -X "$chain"
      removed_chains=$((removed_chains + 1))
    done
  done
  ((removed_rules + removed_chains == 0)) ||
    info "removed dockerd's iptables rules ($removed_rules) and DOCKER* chains ($removed_chains)"
  policy=$(before forward_policy)
  if [[ -n $policy && $(iptables -S FORWARD 2>/dev/null | sed -n 's/^-P FORWARD //p') != "$policy" ]]; then
    info "iptables -P FORWARD $policy"
    iptables -P FORWARD "$policy"
  fi
  forward=$(before ip_forward)
  if [[ -n $forward && $(cat /proc/sys/net/ipv4/ip_forward) != "$forward" ]]; then
    info "net.ipv4.ip_forward=$forward"
    echo "$forward" >/proc/sys/net/ipv4/ip_forward
  fi
  if [[ $(before docker0) == absent ]] && ip link show docker0 >/dev/null 2>&1; then
    info "ip link delete docker0"
    ip link delete docker0
  fi
  if [[ $(before run_docker) == absent ]]; then
    rmdir /run/docker/plugins /run/docker 2>/dev/null || true
  fi
  rm -rf "$NETWORK_BEFORE" "$NETWORK_BEFORE.d"
}

down() {
  local purge=${1:-}
  require_root "engine.sh"
  stop_pidfile "$DOCKERD_PIDFILE" dockerd "$STOP_TIMEOUT"
  stop_our_shims
  stop_pidfile "$CONTAINERD_PIDFILE" containerd "$STOP_TIMEOUT"
  rm -f "$HELLO_DOCKER_SOCK" "$CONTAINERD_SOCK"
  unmount_leftovers
  restore_host_network
  forget_container_egress_guard
  if [[ $purge == --purge ]]; then
    info "removing $ENGINE_DIR (images, containers, build cache)"
    rm -rf "$ENGINE_DIR"
  fi
}

case ${1:-} in
  up) up ;;
  down) down "${2:-}" ;;
  *) die "usage: engine.sh up | down [--purge]" ;;
esac
