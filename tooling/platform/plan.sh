#!/usr/bin/env bash
# Say, before a first run starts, which long steps it will take and roughly how long each lasts,
# so that nobody mistakes a cold build for a hang. Prints nothing when everything is built.
# Usage: tooling/platform/plan.sh
# Durations are those of a cold `.ci/run` on a new machine of the project's kind (2 cores),
# measured with ../shared/bin/fresh-machine --cold; see docs/platform.md, "First run, measured".
set -euo pipefail
PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PLATFORM_DIR/cluster/common.sh"
source "$PLATFORM_DIR/../toolchain/env.sh"

steps=()
step() { steps+=("$(printf '  %-48s ~%s' "$1" "$2")"); }

missing_commands=()
while read -r cmd _; do
  command -v "$cmd" >/dev/null 2>&1 || missing_commands+=("$cmd")
done < <(awk '!/^#/ && NF' "$PLATFORM_DIR/commands.tsv")
((${#missing_commands[@]} == 0)) || step "Debian packages (${#missing_commands[@]} commands missing)" "15 s"
# With a pulumi on PATH (the path mode of tooling/toolchain/mode.py) nothing is built.
[[ $HELLO_TOOLCHAIN_MODE == path ]] ||
  [[ -x $HELLO_PULUMI_BIN/pulumi && -x $HELLO_PROVIDERS_DIR/kubernetes-$HELLO_KUBERNETES_VERSION/pulumi-resource-kubernetes &&
    -x $HELLO_PROVIDERS_DIR/docker-build-$HELLO_DOCKER_BUILD_VERSION/pulumi-resource-docker-build ]] ||
  step "Pulumi CLI and plugins, from Go modules" "12-25 min"
[[ -n $(compgen -G "$HELLO_CACHE/base-image/rootfs-*.tar") ]] || step "Node.js base image, by debootstrap" "1 min"
[[ -x $HELLO_CACHE/token-issuer-venv/bin/python ]] || step "token issuer's Python packages, from PyPI" "10 s"
[[ -x $HELLO_BUILDKIT_BIN ]] || step "BuildKit daemon, from its Go module" "2.5 min"
[[ -x $HELLO_VERSITYGW_BIN ]] || step "versitygw (S3 state store), from its Go module" "3.5 min"
[[ -x $K8S_BIN/kube-apiserver && -x $K8S_BIN/etcd ]] || step "Kubernetes $K8S_VERSION and etcd, from Go modules" "10 min"
[[ -n $(compgen -G "$HELLO_CACHE/k8s/kube-router-*/kube-router") ]] || step "kube-router (NetworkPolicy), from its Go module" "3 min"
[[ -x $HELLO_TRAEFIK_BIN ]] || step "Traefik (ingress controller), from its Go module" "5-6 min"

((${#steps[@]} == 0)) && exit 0
echo "First run on this machine: these steps build what later runs reuse (cache: $HELLO_CACHE)."
printf '%s\n' "${steps[@]}"
