# Settings and helpers shared by build.sh, up.sh and down.sh: versions, paths, addresses.
# shellcheck shell=bash disable=SC2034 # the settings are read by the scripts that source this file
# shellcheck source-path=SCRIPTDIR source=../env.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/env.sh"
# die, info, require_root, pid_of, start_background, stop_pidfile, wait_until, mounts_under
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

K8S_VERSION=$HELLO_K8S_VERSION
ETCD_VERSION=v3.6.16
PAUSE_TAG=3.10.1           # build/pause/Makefile TAG of that release
PAUSE_IMAGE=registry.local/pause:$PAUSE_TAG

K8S_HOME=$HELLO_CACHE/k8s/$K8S_VERSION
K8S_BIN=$HELLO_K8S_BIN
ETCD_HOME=$HELLO_CACHE/k8s/etcd-$ETCD_VERSION
PAUSE_ARCHIVE=$HELLO_CACHE/k8s/pause-$PAUSE_TAG.oci.tar

# Runtime state; everything the cluster writes lives here.
KUBE_RUN=$HELLO_RUN/kube
KUBE_PKI=$KUBE_RUN/pki
KUBE_LOGS=$KUBE_RUN/logs
KUBE_PIDS=$KUBE_RUN/pids
KUBELET_ROOT=$KUBE_RUN/kubelet
CTRD_RUN=$HELLO_RUN/containerd
CTRD_SOCK=$CTRD_RUN/containerd.sock
CNI_CONF_DIR=$HELLO_RUN/cni/net.d
CNI_BIN_DIR=/usr/lib/cni

# Addresses, all local to this machine: NODE_IF (a dummy interface, or a port-less bridge
# where the kernel lacks the dummy driver) carries the node IP; pods sit on POD_BRIDGE.
NODE_NAME=hello-node
NODE_IF=hello0
NODE_IP=10.213.0.1
POD_CIDR=10.214.0.0/24
POD_BRIDGE=hellocni0
SERVICE_CIDR=10.215.0.0/24
KUBERNETES_SERVICE_IP=10.215.0.1
APISERVER_PORT=6443
ETCD_CLIENT_URL=https://127.0.0.1:23790
ETCD_PEER_URL=https://127.0.0.1:23800
NODE_PORT_RANGE=30000-32767
# Metric of the fallback "unreachable" routes for the pod and service ranges: above the pod
# bridge's own route (metric 0), so they only apply while that route is absent.
FALLBACK_ROUTE_METRIC=4242

# Host sysctls the cluster changes: the bridge netfilter switch (up.sh), route_localnet
# (kube-proxy, for node ports on 127.0.0.1) and the kubelet's kernel tunables. up.sh saves
# their values before the first start in SYSCTL_SAVED; down.sh puts them back.
HOST_SYSCTLS=(net.bridge.bridge-nf-call-iptables net.ipv4.conf.all.route_localnet
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
SYSCTL_SAVED=$KUBE_RUN/sysctl.before

ctr_() { ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"; }

# component_pid NAME: pid of our running component NAME (also its binary's name) from its pid file.
component_pid() { pid_of "$KUBE_PIDS/$1.pid" "${1:0:15}"; }

# stop_component NAME: TERM, then KILL after 20 s; forgets how it was started.
stop_component() {
  stop_pidfile "$KUBE_PIDS/$1.pid" "${1:0:15}" 20
  rm -f "$KUBE_PIDS/$1".{fingerprint,since}
}
