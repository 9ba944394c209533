#!/usr/bin/env bash
# Start the local single-node Kubernetes cluster; a fast no-op when it is already running.
#
# Usage: tooling/platform/cluster/up.sh
# Builds the binaries if needed (build.sh), then starts our own containerd, etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and the
# NetworkPolicy enforcer (netpol.sh) as background processes (pids and logs under
# $HELLO_RUN/kube), and waits until node hello-node is Ready and the default ServiceAccount
# exists. Pod traffic has no route off this machine (egress.sh). Admin kubeconfig: $HELLO_KUBECONFIG.
# A component whose command line or config changed since it was started is restarted.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"
# unchanged_since, record_unchanged
# shellcheck source=../unchanged.sh
source "$here/../unchanged.sh"

CONTAINERD_BIN=/usr/bin/containerd
# Its discovery cache stays with the cluster, not in ~/.kube.
kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$HELLO_KUBECONFIG" --cache-dir "$KUBE_RUN/kubectl-cache" "$@"; }
# api_get PATH: GET PATH from the API server as the admin of $HELLO_KUBECONFIG (same certificates);
# fails unless it answers 2xx. A third of kubectl's start-up time, for the yes/no questions below.
api_get() {
  curl -fsS --max-time 5 --cacert "$KUBE_PKI/ca.crt" --cert "$KUBE_PKI/admin.crt" --key "$KUBE_PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT$1"
}

preflight() {
  require_root "tooling/platform/cluster/up.sh"
  require_commands containerd containerd-shim-runc-v2 runc ctr iptables ip6tables ip openssl curl conntrack \
    sysctl modprobe "$CNI_BIN_DIR"/{bridge,host-local,loopback,portmap}
}

save_host_sysctls() {
  [[ -s $SYSCTL_SAVED ]] && return 0
  local key
  mkdir -p "$KUBE_RUN"
  for key in "${HOST_SYSCTLS[@]}"; do
    echo "$key=$(sysctl -n "$key")"
  done >"$SYSCTL_SAVED.tmp"
  mv "$SYSCTL_SAVED.tmp" "$SYSCTL_SAVED"
}

setup_network() {
  save_host_sysctls
  if ! ip link show "$NODE_IF" >/dev/null 2>&1; then
    # A port-less bridge stands in when the kernel has no dummy driver (true on this VM).
    ip link add "$NODE_IF" type dummy 2>/dev/null || ip link add "$NODE_IF" type bridge
  fi
  ip addr replace "$NODE_IP/32" dev "$NODE_IF"
  ip link set "$NODE_IF" up
  # Service traffic between pods on the bridge must traverse iptables (kube-proxy's DNAT), and
  # so must their traffic to each other (kube-router's NetworkPolicy rules).
  [[ -e /proc/sys/net/bridge ]] || modprobe br_netfilter
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
  # Pod and service addresses never leave the machine: without these routes, a node port
  # DNATed to a pod IP before the bridge exists (or to a stale endpoint) would follow the
  # default route out of the machine.
  ip route replace unreachable "$POD_CIDR" metric "$FALLBACK_ROUTE_METRIC"
  ip route replace unreachable "$SERVICE_CIDR" metric "$FALLBACK_ROUTE_METRIC"
  # Nor does a pod's packet: what arrives on the pod bridge has no route off the machine.
  "$here/egress.sh" up
}

# --- certificates -----------------------------------------------------------------------

# new_ca NAME CN: a self-signed CA, kept across runs.
new_ca() {
  local name=$1 cn=$2
  [[ -s $KUBE_PKI/$name.crt && -s $KUBE_PKI/$name.key ]] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$KUBE_PKI/$name.key" 2>/dev/null
  openssl req -x509 -new -key "$KUBE_PKI/$name.key" -subj "/CN=$cn" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$KUBE_PKI/$name.crt"
}

# lasts_a_day CRT: CRT is a certificate that does not expire within a day (`openssl x509 -checkend`).
# Its expiry, read by openssl, is kept beside it with its identity (unchanged.sh): while CRT is
# unchanged the kept date answers, without starting openssl for each certificate on every run.
lasts_a_day() {
  local crt=$1 kept not_after
  kept="${crt%/*}/.${crt##*/}.not-after"
  if unchanged_since "$kept.identity" "$crt" && { read -r not_after <"$kept"; } 2>/dev/null && [[ $not_after =~ ^[0-9]+$ ]]; then
    # -checkend's own test: it expires within the day unless notAfter is later than now + 1 day.
    return $((not_after > EPOCHSECONDS + 86400 ? 0 : 1))
  fi
  rm -f "$kept.identity"
  not_after=$(openssl x509 -in "$crt" -noout -enddate -checkend 86400) || return 1
  not_after=$(date -d "$(sed -n 's/^notAfter=//p' <<<"$not_after")" +%s) || return 0
  echo "$not_after" >"$kept"
  record_unchanged "$kept.identity" "$crt"
}

# issue CA NAME SUBJECT EXT_KEY_USAGE [SANS]: a leaf certificate signed by CA, renewed when
# missing or expiring within a day.
issue() {
  local ca=$1 name=$2 subject=$3 eku=$4 sans=${5:-}
  local crt=$KUBE_PKI/$name.crt key=$KUBE_PKI/$name.key ext
  if [[ -s $crt && -s $key ]] && lasts_a_day "$crt"; then
    return 0
  fi
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$key" 2>/dev/null
  openssl req -new -key "$key" -subj "$subject" |
    openssl x509 -req -CA "$KUBE_PKI/$ca.crt" -CAkey "$KUBE_PKI/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 365 -sha256 -extfile "$ext" -out "$crt" 2>/dev/null
  rm -f "$ext"
}

make_pki() {
  (
    umask 077
    mkdir -p "$KUBE_PKI"
    new_ca ca hello-kubernetes-ca
    new_ca etcd-ca hello-etcd-ca  # separate CA: only the apiserver's client cert opens etcd
    issue etcd-ca etcd-server "/CN=hello-etcd" serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
    issue etcd-ca apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
    issue ca apiserver "/CN=kube-apiserver" serverAuth \
      "IP:127.0.0.1,IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP,DNS:localhost,DNS:$NODE_NAME,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    issue ca apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
    issue ca admin "/O=system:masters/CN=hello-admin" clientAuth
    issue ca controller-manager "/CN=system:kube-controller-manager" clientAuth
    issue ca scheduler "/CN=system:kube-scheduler" clientAuth
    issue ca kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
    issue ca kubelet-server "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE_NAME"
    issue ca kube-proxy "/CN=system:kube-proxy" clientAuth
    issue ca kube-router "/CN=hello:kube-router" clientAuth  # read-only role, granted by netpol.sh
    if [[ ! -s $KUBE_PKI/sa.key ]]; then
      openssl genrsa -out "$KUBE_PKI/sa.key" 2048 2>/dev/null
      openssl rsa -in "$KUBE_PKI/sa.key" -pubout -out "$KUBE_PKI/sa.pub" 2>/dev/null
    fi
  )
}

# write_kubeconfig FILE CERT CONTEXT: a kubeconfig with embedded credentials, mode 0600.
write_kubeconfig() {
  local file=$1 cert=$2 context=$3
  # The CA is the same in every kubeconfig: encoded once per run.
  [[ -n ${CA_BASE64:-} ]] || CA_BASE64=$(base64 -w0 "$KUBE_PKI/ca.crt")
  write_file "$file" 600 <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $context
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $CA_BASE64
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 "$KUBE_PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$KUBE_PKI/$cert.key")
contexts:
- name: $context
  context:
    cluster: $context
    user: $cert
current-context: $context
EOF
}

# write_file FILE MODE: stdin to FILE, touching it only when the content changed (keeps fingerprints
# stable). Text only; compared in the shell, as most runs find every file as it was.
write_file() {
  local file=$1 mode=$2 content old="" tmp
  IFS= read -r -d '' content || true
  [[ -f $file ]] && { IFS= read -r -d '' old <"$file" || true; }
  [[ -f $file && $old == "$content" ]] && return 0
  tmp=$(mktemp "$file.XXXX")
  chmod "$mode" "$tmp"
  printf '%s' "$content" >"$tmp"
  mv -f "$tmp" "$file"
}

# --- configuration files ---------------------------------------------------------------

write_configs() {
  mkdir -p "$KUBE_RUN" "$KUBE_LOGS" "$KUBE_PIDS" "$KUBELET_ROOT" "$KUBE_RUN/pod-logs" \
    "$CTRD_RUN/certs.d/$HELLO_REGISTRY" "$CNI_CONF_DIR" "$HELLO_RUN/cni/ipam"
  chmod 700 "$KUBE_RUN" "$CTRD_RUN"
  write_kubeconfig "$HELLO_KUBECONFIG" admin hello-local
  write_kubeconfig "$KUBE_RUN/controller-manager.kubeconfig" controller-manager hello-local
  write_kubeconfig "$KUBE_RUN/scheduler.kubeconfig" scheduler hello-local
  write_kubeconfig "$KUBE_RUN/kubelet.kubeconfig" kubelet-client hello-local
  write_kubeconfig "$KUBE_RUN/kube-proxy.kubeconfig" kube-proxy hello-local
  write_kubeconfig "$KUBE_RUN/kube-router.kubeconfig" kube-router hello-local

  # Registry credentials go into containerd's config so that the kubelet's pulls from the
  # project registry need no imagePullSecrets; hence mode 0600.
  local auth_block=""
  if [[ -s $HELLO_REGISTRY_PASSWORD_FILE ]]; then
    auth_block="
    [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"$HELLO_REGISTRY\".auth]
      auth = \"$(printf '%s:%s' "$HELLO_REGISTRY_USER" "$(cat "$HELLO_REGISTRY_PASSWORD_FILE")" | base64 -w0)\""
  else
    info "note: $HELLO_REGISTRY_PASSWORD_FILE not found; pulls from $HELLO_REGISTRY will be anonymous (rerun up.sh once the registry is set up)"
  fi
  write_file "$CTRD_RUN/config.toml" 600 <<EOF
# Generated by tooling/platform/cluster/up.sh. Our own containerd: nothing shared with the host's or dockerd's.
version = 2
root = "$CTRD_RUN/root"
state = "$CTRD_RUN/state"
temp = "$CTRD_RUN/tmp"

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$CTRD_RUN/containerd.sock.ttrpc"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CTRD_RUN/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    netns_mounts_under_state_dir = true
    disable_apparmor = true
    # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this machine's root lacks.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$CTRD_RUN/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$CNI_BIN_DIR"
      conf_dir = "$CNI_CONF_DIR"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$CTRD_RUN/certs.d"$auth_block
EOF
  write_file "$CTRD_RUN/certs.d/$HELLO_REGISTRY/hosts.toml" 644 <<EOF
# The project registry speaks TLS from the platform's CA (tooling/platform/registry.sh).
server = "https://$HELLO_REGISTRY"

[host."https://$HELLO_REGISTRY"]
  capabilities = ["pull", "resolve"]
  ca = "$HELLO_CA_CERT"
EOF
  # The token registry speaks TLS from the platform's CA. No credentials here: pods pull from it with their
  # stack's imagePullSecret, as on a user's cluster. containerd reads certs.d at each pull: no restart.
  if [[ -s $HELLO_CA_CERT ]]; then
    mkdir -p "$CTRD_RUN/certs.d/$HELLO_TOKEN_REGISTRY"
    write_file "$CTRD_RUN/certs.d/$HELLO_TOKEN_REGISTRY/hosts.toml" 644 <<EOF
# The platform's token-auth registry (tooling/platform/token-registry.sh), TLS from the platform's CA.
server = "https://$HELLO_TOKEN_REGISTRY"

[host."https://$HELLO_TOKEN_REGISTRY"]
  capabilities = ["pull", "resolve"]
  ca = "$HELLO_CA_CERT"
EOF
  fi

  # ipMasq is off: pods talk to each other and to the host, never to outside addresses.
  # No CNI firewall plugin: its per-pod ACCEPT rules, inserted at the top of FORWARD, would let
  # traffic past the NetworkPolicy rules; kube-router accepts what the policies allow.
  write_file "$CNI_CONF_DIR/10-hello.conflist" 644 <<EOF
{
  "cniVersion": "1.0.0",
  "name": "hello-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$HELLO_RUN/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  write_file "$KUBE_RUN/kubelet.yaml" 644 <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $KUBE_PKI/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $KUBE_PKI/kubelet-server.crt
tlsPrivateKeyFile: $KUBE_PKI/kubelet-server.key
containerRuntimeEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: []
podLogsDir: $KUBE_RUN/pod-logs
# Image GC is off so that the locally imported pause image (and the app images) stay:
# containerd 1.6 cannot report pinned images.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  nodefs.inodesFree: 2%
  imagefs.available: 2%
EOF

  write_file "$KUBE_RUN/kube-proxy.yaml" 644 <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $POD_CIDR
clientConnection:
  kubeconfig: $KUBE_RUN/kube-proxy.kubeconfig
# Node ports answer on loopback (tests use 127.0.0.1:<nodePort>) and on the dummy node IP only.
nodePortAddresses: ["127.0.0.1/32", "$NODE_IP/32"]
iptables:
  localhostNodePorts: true
# Leave the host's conntrack sysctls alone.
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

# --- processes --------------------------------------------------------------------------

# ensure NAME WATCHED_FILES CMD...: start component NAME (CMD's binary has that name) unless it
# already runs with the same command line and watched file contents; restart it when they changed.
ensure() {
  local name=$1 watched=$2 fingerprint pid
  shift 2
  # shellcheck disable=SC2086 # WATCHED_FILES is a space-separated list
  fingerprint=$({ printf '%s\n' "$@"; cat $watched; } | sha256sum | cut -d' ' -f1)
  if pid=$(component_pid "$name"); then
    if [[ $(cat "$KUBE_PIDS/$name.fingerprint" 2>/dev/null) == "$fingerprint" ]]; then
      info "$name: running (pid $pid)"
      return 0
    fi
    info "$name: configuration changed, restarting"
    stop_component "$name"
  fi
  start_background "$KUBE_PIDS/$name.pid" "$KUBE_LOGS/$name.log" "$@"
  echo "$fingerprint" >"$KUBE_PIDS/$name.fingerprint"
  echo $((EPOCHSECONDS - 1)) >"$KUBE_PIDS/$name.since"
  info "$name: started (pid $STARTED_PID, log $KUBE_LOGS/$name.log)"
}

# wait_for NAME SECONDS WHAT CMD...: wait until CMD succeeds while component NAME runs; on
# failure show the end of NAME's log.
wait_for() {
  local name=$1 timeout=$2 what=$3 pid
  shift 3
  pid=$(component_pid "$name") ||
    die "$name is not running; last lines of $KUBE_LOGS/$name.log:"$'\n'"$(tail -n 30 "$KUBE_LOGS/$name.log" 2>/dev/null)"
  wait_until "$timeout" "$what" "$KUBE_LOGS/$name.log" "$pid" "$@"
}

start_containerd() {
  ensure containerd "$CTRD_RUN/config.toml" "$CONTAINERD_BIN" --config "$CTRD_RUN/config.toml"
  wait_for containerd 30 containerd ctr --address "$CTRD_SOCK" version
  if [[ -z $(ctr_ images ls -q "name==$PAUSE_IMAGE") ]]; then
    say "import $PAUSE_IMAGE" ctr_ images import "$PAUSE_ARCHIVE" >/dev/null
  fi
}

start_etcd() {
  ensure etcd "$KUBE_PKI/etcd-server.crt" "$K8S_BIN/etcd" \
    --name hello --data-dir "$KUBE_RUN/etcd" \
    --listen-client-urls "$ETCD_CLIENT_URL" --advertise-client-urls "$ETCD_CLIENT_URL" \
    --listen-peer-urls "$ETCD_PEER_URL" --initial-advertise-peer-urls "$ETCD_PEER_URL" \
    --initial-cluster "hello=$ETCD_PEER_URL" --initial-cluster-state new \
    --cert-file "$KUBE_PKI/etcd-server.crt" --key-file "$KUBE_PKI/etcd-server.key" \
    --trusted-ca-file "$KUBE_PKI/etcd-ca.crt" --client-cert-auth \
    --peer-cert-file "$KUBE_PKI/etcd-server.crt" --peer-key-file "$KUBE_PKI/etcd-server.key" \
    --peer-trusted-ca-file "$KUBE_PKI/etcd-ca.crt" --peer-client-cert-auth \
    --log-level warn
}

etcd_healthy() {
  curl -fsS --max-time 2 --cacert "$KUBE_PKI/etcd-ca.crt" --cert "$KUBE_PKI/apiserver-etcd-client.crt" \
    --key "$KUBE_PKI/apiserver-etcd-client.key" "$ETCD_CLIENT_URL/health" | grep -q '"health":"true"'
}

start_apiserver() {
  ensure kube-apiserver "$KUBE_PKI/apiserver.crt" "$K8S_BIN/kube-apiserver" \
    --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" --advertise-address "$NODE_IP" \
    --etcd-servers "$ETCD_CLIENT_URL" --etcd-cafile "$KUBE_PKI/etcd-ca.crt" \
    --etcd-certfile "$KUBE_PKI/apiserver-etcd-client.crt" --etcd-keyfile "$KUBE_PKI/apiserver-etcd-client.key" \
    --tls-cert-file "$KUBE_PKI/apiserver.crt" --tls-private-key-file "$KUBE_PKI/apiserver.key" \
    --client-ca-file "$KUBE_PKI/ca.crt" \
    --kubelet-client-certificate "$KUBE_PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$KUBE_PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$KUBE_PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range "$NODE_PORT_RANGE" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$KUBE_PKI/sa.pub" --service-account-signing-key-file "$KUBE_PKI/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false
}

start_node_and_controllers() {
  ensure kube-controller-manager "$KUBE_RUN/controller-manager.kubeconfig" \
    "$K8S_BIN/kube-controller-manager" --kubeconfig "$KUBE_RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$KUBE_RUN/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$KUBE_RUN/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false \
    --cluster-name hello --allocate-node-cidrs=false --service-cluster-ip-range "$SERVICE_CIDR" \
    --cluster-signing-cert-file "$KUBE_PKI/ca.crt" --cluster-signing-key-file "$KUBE_PKI/ca.key" \
    --service-account-private-key-file "$KUBE_PKI/sa.key" --root-ca-file "$KUBE_PKI/ca.crt" \
    --use-service-account-credentials=true
  ensure kube-scheduler "$KUBE_RUN/scheduler.kubeconfig" "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$KUBE_RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig "$KUBE_RUN/scheduler.kubeconfig" \
    --authorization-kubeconfig "$KUBE_RUN/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
  ensure kubelet "$KUBE_RUN/kubelet.yaml $KUBE_RUN/kubelet.kubeconfig $KUBE_PKI/kubelet-server.crt" \
    "$K8S_BIN/kubelet" --config "$KUBE_RUN/kubelet.yaml" --kubeconfig "$KUBE_RUN/kubelet.kubeconfig" \
    --root-dir "$KUBELET_ROOT" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  ensure kube-proxy "$KUBE_RUN/kube-proxy.yaml $KUBE_RUN/kube-proxy.kubeconfig" \
    "$K8S_BIN/kube-proxy" --config "$KUBE_RUN/kube-proxy.yaml"
}

# node_ready SINCE: the node reports Ready with a heartbeat not older than SINCE (epoch seconds),
# so that a status left in etcd by an earlier run does not count.
# A condition is a flat JSON object (no braces inside), found by its "type"; its keys in any order.
node_ready() {
  local since=$1 node ready
  node=$(api_get "/api/v1/nodes/$NODE_NAME?pretty=false") || return 1
  [[ $node =~ \{[^{}]*\"type\":\"Ready\"[^{}]*\} ]] || return 1
  ready=${BASH_REMATCH[0]}
  [[ $ready == *'"status":"True"'* && $ready =~ \"lastHeartbeatTime\":\"([^\"]+)\" ]] &&
    (($(date -d "${BASH_REMATCH[1]}" +%s) >= since))
}

main() {
  local start=$SECONDS
  preflight
  if [[ ! -x $K8S_BIN/kubelet || ! -x $K8S_BIN/etcd || ! -s $PAUSE_ARCHIVE ]] ||
    ! ls "$K8S_BIN"/{kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy,kubectl} >/dev/null 2>&1; then
    say "build cluster binaries" "$here/build.sh"
  fi
  say "network ($NODE_IF $NODE_IP)" setup_network
  say "certificates" make_pki
  say "configuration files" write_configs
  start_containerd
  start_etcd
  say "wait for etcd" wait_for etcd 60 etcd etcd_healthy
  start_apiserver
  say "wait for kube-apiserver" wait_for kube-apiserver 120 kube-apiserver api_get /readyz
  start_node_and_controllers
  say "wait for kubelet" wait_for kubelet 60 kubelet curl -fsS --max-time 2 http://127.0.0.1:10248/healthz
  say "wait for node $NODE_NAME Ready" wait_for kubelet 180 "node $NODE_NAME Ready" \
    node_ready "$(cat "$KUBE_PIDS/kubelet.since")"
  say "wait for kube-proxy" wait_for kube-proxy 60 kube-proxy curl -fsS --max-time 2 http://127.0.0.1:10256/healthz
  say "network policy (kube-router)" "$here/netpol.sh" up
  say "wait for default ServiceAccount" wait_for kube-controller-manager 120 "ServiceAccount default/default" \
    api_get /api/v1/namespaces/default/serviceaccounts/default
  echo ">> cluster up in $((SECONDS - start))s: kubectl --kubeconfig $HELLO_KUBECONFIG get nodes" >&2
}

main "$@"
