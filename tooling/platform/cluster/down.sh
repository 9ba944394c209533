#!/usr/bin/env bash
# Stop the local cluster and remove everything it put on the host; safe to run repeatedly.
#
# Usage: tooling/platform/cluster/down.sh [--purge]
# Stops kubelet, kube-proxy, kube-router, the pods' containers, our containerd and the control
# plane; unmounts what they mounted under $HELLO_RUN; deletes the hello0/hellocni0 interfaces, the
# pods' network namespaces and veths, the pod bridge's routing rule and table, kube-router's
# ipsets, and the KUBE-*/CNI-* iptables chains and their rules.
# Keeps etcd data, certificates, kubeconfigs and pulled images unless --purge is given.
# Never touches dockerd's containerd, docker's data under $HELLO_RUN/docker, or DOCKER-* rules.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"

CNI_NETNS_DIR=$CTRD_RUN/state/io.containerd.grpc.v1.cri/netns

purge=false
case ${1:-} in
  --purge) purge=true ;;
  "") ;;
  *) die "usage: $0 [--purge]" ;;
esac

require_root "tooling/platform/cluster/down.sh"

# Our directories under $HELLO_RUN (the docker engine keeps its own there too).
our_dirs=("$KUBE_RUN" "$CTRD_RUN" "$HELLO_RUN/cni")

# Kill every task of our containerd and delete its containers. Pods stay in the API and the
# kubelet recreates them on the next up.sh.
remove_containers() {
  component_pid containerd >/dev/null || return 0
  local ids id i
  ids=$(ctr_ tasks ls -q 2>/dev/null || true)
  for id in $ids; do ctr_ tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 || true; done
  # The CRI plugin deletes a task itself once it sees it exit; delete what it leaves.
  for ((i = 0; i < 50; i++)); do
    [[ -z $(ctr_ tasks ls -q 2>/dev/null) ]] && break
    sleep 0.2
  done
  for id in $(ctr_ tasks ls -q 2>/dev/null || true); do
    ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true
  done
  for id in $(ctr_ containers ls -q 2>/dev/null || true); do
    ctr_ containers delete "$id" >/dev/null 2>&1 || info "warning: could not delete container $id"
  done
  [[ -z $ids ]] || info "removed $(wc -w <<<"$ids") pod containers"
}

# Containers and shims that outlived our containerd (it crashed, or a task would not go):
# runc's state under our root knows the containers; the shims name our socket.
kill_leftovers() {
  local root id proc pid cmdline
  for root in "$CTRD_RUN"/runc/*/; do
    [[ -d $root ]] || continue
    for id in $(runc --root "$root" list -q 2>/dev/null); do
      info "removing leftover container $id"
      runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true
    done
  done
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    cmdline=$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline") || continue
    if [[ $cmdline == *containerd-shim* && " $cmdline " == *" -address $CTRD_SOCK "* ]]; then
      info "killing leftover shim $pid"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

# Mount points below our directories, deepest first.
our_mounts() {
  local dir
  for dir in "${our_dirs[@]}"; do mounts_under "$dir"; done | sort -r -u
}

unmount_all() {
  local mnt n=0
  while IFS= read -r mnt; do
    [[ -n $mnt ]] || continue
    umount "$mnt" 2>/dev/null || umount -l "$mnt" || info "warning: could not unmount $mnt"
    n=$((n + 1))
  done < <(our_mounts)
  # A mount can be stacked; repeat while something is left.
  if ((n > 0)) && [[ -n $(our_mounts) ]]; then unmount_all; fi
  rm -rf "$CNI_NETNS_DIR"
  ((n == 0)) || info "unmounted $n mounts"
}

# delete_iptables_leftovers CMD: rules that jump to or mention our chains, CIDRs or bridge,
# then the KUBE-*/CNI-* chains themselves.
delete_iptables_leftovers() {
  local ipt=$1 table rule chain pattern
  command -v "$ipt" >/dev/null || return 0
  pattern="KUBE-|CNI-|${POD_CIDR%.*}\.|${SERVICE_CIDR%.*}\.|$POD_BRIDGE|$NODE_IF"
  for table in $("$ipt-save" 2>/dev/null | sed -n 's/^\*//p'); do
    while IFS= read -r rule; do
      eval "$ipt -w -t $table -D ${rule#-A }" 2>/dev/null || info "warning: $ipt -t $table: could not delete: $rule"
    done < <("$ipt-save" -t "$table" | grep -E '^-A ' | grep -E -- "$pattern" | grep -vE '^-A (KUBE|CNI)-')
    for chain in $("$ipt-save" -t "$table" | sed -nE 's/^:((KUBE|CNI)-[^ ]+) .*/\1/p'); do
      "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$ipt-save" -t "$table" | sed -nE 's/^:((KUBE|CNI)-[^ ]+) .*/\1/p'); do
      "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || info "warning: $ipt -t $table: could not delete chain $chain"
    done
  done
}

cleanup_network() {
  # kube-proxy's own cleanup first (it knows its rules best), only when it left something.
  if [[ -x $K8S_BIN/kube-proxy && -d $KUBE_LOGS ]] &&
    { iptables-save; ip6tables-save; } 2>/dev/null | grep -q '^:KUBE-'; then
    "$K8S_BIN/kube-proxy" --cleanup >"$KUBE_LOGS/kube-proxy-cleanup.log" 2>&1 ||
      info "note: kube-proxy --cleanup reported errors (see $KUBE_LOGS/kube-proxy-cleanup.log)"
  fi
  delete_iptables_leftovers iptables
  delete_iptables_leftovers ip6tables
  local veth
  for veth in $(ip -o link show master "$POD_BRIDGE" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
    ip link delete "$veth" 2>/dev/null || true
  done
  ip link delete "$POD_BRIDGE" 2>/dev/null || true
  ip link delete "$NODE_IF" 2>/dev/null || true
  ip route delete unreachable "$POD_CIDR" metric "$FALLBACK_ROUTE_METRIC" 2>/dev/null || true
  ip route delete unreachable "$SERVICE_CIDR" metric "$FALLBACK_ROUTE_METRIC" 2>/dev/null || true
  "$here/egress.sh" down
  # The pods' IP leases and libcni's cached results (fixed under /var/lib/cni) refer to
  # sandboxes that are gone.
  rm -rf "$HELLO_RUN/cni/ipam"
  local result id
  for result in /var/lib/cni/results/hello-pods-*-eth0; do
    [[ -e $result ]] || continue
    id=${result#/var/lib/cni/results/hello-pods-}
    id=${id%-eth0}
    rm -f "$result" "/var/lib/cni/results/cni-loopback-$id-lo"
  done
  rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
}

# The kubelet's pod cgroups (cgroupfs driver, cgroup v1); only empty directories go.
remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

# Paths the kubelet hard-codes whatever its --root-dir: container log links and the
# device plugin registration socket.
remove_kubelet_host_files() {
  local link
  for link in /var/log/containers/*.log; do
    [[ -L $link && $(readlink "$link") == "$KUBE_RUN/pod-logs/"* ]] && rm -f "$link"
  done
  rmdir /var/log/containers 2>/dev/null || true
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null || true
}

restore_host_sysctls() {
  [[ -s $SYSCTL_SAVED ]] || return 0
  local line
  while IFS= read -r line; do
    sysctl -qw "$line" || info "warning: could not restore $line"
  done <"$SYSCTL_SAVED"
  info "restored host sysctls: $(paste -sd' ' "$SYSCTL_SAVED")"
  rm -f "$SYSCTL_SAVED"
}

stop_control_plane() {
  stop_component kube-scheduler
  stop_component kube-controller-manager
  stop_component kube-apiserver
  stop_component etcd
}

main() {
  local start=$SECONDS
  say "stop kubelet" stop_component kubelet
  say "stop kube-proxy" stop_component kube-proxy
  say "stop kube-router" "$here/netpol.sh" down
  say "remove pod containers" remove_containers
  say "stop containerd" stop_component containerd
  kill_leftovers
  say "stop control plane" stop_control_plane
  say "unmount" unmount_all
  say "network cleanup" cleanup_network
  restore_host_sysctls
  remove_cgroups
  remove_kubelet_host_files
  if $purge; then
    rm -rf "${our_dirs[@]}" "$HELLO_KUBECONFIG"
    info "purged ${our_dirs[*]} and $HELLO_KUBECONFIG"
  fi
  echo ">> cluster down in $((SECONDS - start))s" >&2
}

main "$@"
