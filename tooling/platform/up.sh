#!/usr/bin/env bash
# Start the local platform: Docker engine, registry, Node.js base image, token-auth registry and its issuer,
# BuildKit, then the cluster and its ingress controller if there is one.
# Idempotent: what already runs is left as it is. Needs root.
# HELLO_PLATFORM_CLUSTER=0 skips the cluster. HELLO_PLATFORM_UNAVAILABLE=1 makes it fail at once, doing nothing:
# a test sets it to prove that a stack which does not need the platform never starts it.
set -euo pipefail
if [[ ${HELLO_PLATFORM_UNAVAILABLE:-0} == 1 ]]; then
  echo "error: the local platform must not be started here (HELLO_PLATFORM_UNAVAILABLE=1), got a request to start it" >&2
  exit 1
fi
PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PLATFORM_DIR/env.sh"
source "$PLATFORM_DIR/lib.sh"

require_root "tooling/platform/up.sh"
lock_platform
# One install round for everything the parts below need; each part checks its own again.
# shellcheck disable=SC2046 # one word a command
say "packages" require_commands $(awk '!/^#/ && NF { print $1 }' "$PLATFORM_DIR/commands.tsv")
start=$SECONDS
say "engine" "$PLATFORM_DIR/engine.sh" up
# Before the registries, BuildKit and the cluster: they serve or trust certificates of this CA.
say "CA" "$PLATFORM_DIR/ca.sh" up
say "registry" "$PLATFORM_DIR/registry.sh" up
say "base image" "$PLATFORM_DIR/base-image.sh" up
say "registry login" "$PLATFORM_DIR/registry.sh" check-login
say "token registry" "$PLATFORM_DIR/token-registry.sh" up
say "evidence key" "$PLATFORM_DIR/evidence-key.sh" up
say "buildkit" "$PLATFORM_DIR/buildkit.sh" up
say "state store" "$PLATFORM_DIR/state-store.sh" up
if [[ -f $PLATFORM_DIR/cluster/up.sh && ${HELLO_PLATFORM_CLUSTER:-1} != 0 ]]; then
  # fd 9 is the platform lock: the cluster's daemons must not inherit it.
  say "cluster" bash "$PLATFORM_DIR/cluster/up.sh" 9>&-
  say "ingress controller" "$PLATFORM_DIR/ingress.sh" up
  ingress="  ingress:    http://$HELLO_INGRESS_HTTP and https://$HELLO_INGRESS_HTTPS (Traefik; IngressClass $HELLO_INGRESS_CLASS, default certificate *.$HELLO_INGRESS_DOMAIN)"
fi

cat <<SUMMARY
Platform up in $((SECONDS - start))s.
  export DOCKER_HOST=unix://$HELLO_DOCKER_SOCK
  registry:   $HELLO_REGISTRY (user $HELLO_REGISTRY_USER, password in $HELLO_REGISTRY_PASSWORD_FILE)
  token registry: https://$HELLO_TOKEN_REGISTRY, issuer https://$HELLO_TOKEN_ISSUER/token (user $HELLO_TOKEN_REGISTRY_USER, password in $HELLO_TOKEN_REGISTRY_PASSWORD_FILE; CA $HELLO_CA_CERT)
  base image: $HELLO_BASE_IMAGE (served as $HELLO_BASE_IMAGE_REF)
  buildkit:   unix://$HELLO_BUILDKIT_SOCK (buildx builder hello-buildkit in BUILDX_CONFIG=$BUILDX_CONFIG)
  state:      s3 on http://$HELLO_STATE_STORE (versitygw; credentials in $HELLO_STATE_STORE_CREDENTIALS)
${ingress:-  ingress:    none (no cluster)}
  logs:       $HELLO_RUN/docker/dockerd.log, $HELLO_RUN/registry/registry.log, $HELLO_RUN/token-registry/*.log, $HELLO_RUN/state-store/*.log
SUMMARY
