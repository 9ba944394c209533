# shellcheck shell=bash
# Shared locations of the local platform and the built toolchain; sourced by every script.
# Everything lives outside the repository so that a fresh clone reuses it.
: "${HELLO_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/hello-pulumi}"   # built binaries, Go caches (kept)
: "${HELLO_RUN:=/var/lib/hello-pulumi}"                             # platform data and sockets (root)
: "${HELLO_REGISTRY:=127.0.0.1:5000}"
: "${HELLO_REGISTRY_USER:=hello}"
: "${HELLO_BASE_IMAGE:=hello-pulumi/node-base:local}"
export HELLO_CACHE HELLO_RUN HELLO_REGISTRY HELLO_REGISTRY_USER HELLO_BASE_IMAGE
export HELLO_BASE_IMAGE_REF="$HELLO_REGISTRY/$HELLO_BASE_IMAGE"
# The base image pinned by the digest the registry serves (base-image.sh writes it): the verification Job's checker
# image on local-platform stacks, filled into this machine's copy of their stack file (settings/local_platform.py).
export HELLO_BASE_IMAGE_PINNED_FILE="$HELLO_RUN/base-image/pinned"
export HELLO_DOCKER_SOCK="$HELLO_RUN/docker/docker.sock"
export HELLO_REGISTRY_PASSWORD_FILE="$HELLO_RUN/registry/password"
# The platform's CA (tooling/platform/ca.sh): trust $HELLO_CA_CERT to reach the platform over TLS.
export HELLO_CA_DIR="$HELLO_RUN/ca"
export HELLO_CA_CERT="$HELLO_CA_DIR/ca.crt"
# Go programs (the docker-build provider asks the token issuer for BuildKit's push) and OpenSSL read the CAs in
# SSL_CERT_DIR besides the system's bundle file: the system's folder, then the one holding only the platform's CA.
case ":${SSL_CERT_DIR:-}:" in
  *":$HELLO_CA_DIR/trust:"*) ;;
  *) export SSL_CERT_DIR="${SSL_CERT_DIR:-/etc/ssl/certs}:$HELLO_CA_DIR/trust" ;;
esac
# The token-auth registry and its token issuer (tooling/platform/token-registry.sh), TLS from that CA.
: "${HELLO_TOKEN_REGISTRY:=127.0.0.1:5443}"
: "${HELLO_TOKEN_ISSUER:=127.0.0.1:5444}"
export HELLO_TOKEN_REGISTRY HELLO_TOKEN_ISSUER
export HELLO_TOKEN_REGISTRY_USER=hello                # pull and push on every repository
export HELLO_TOKEN_REGISTRY_READER=hello-reader       # pull only, and only on public/*
export HELLO_TOKEN_REGISTRY_PASSWORD_FILE="$HELLO_RUN/token-registry/password"
export HELLO_TOKEN_REGISTRY_READER_PASSWORD_FILE="$HELLO_RUN/token-registry/reader-password"
# Verification evidence (ops/evidence.py): the deploy jobs sign with the private key, promotion trusts the public
# key. Set both to a team's own key files (CI: an environment secret) to override the platform's (evidence-key.sh).
export HELLO_EVIDENCE_DIR="$HELLO_RUN/evidence"
: "${HELLO_EVIDENCE_KEY_FILE:=$HELLO_EVIDENCE_DIR/signing-key.pem}"
: "${HELLO_EVIDENCE_PUBLIC_KEY_FILE:=$HELLO_EVIDENCE_DIR/signing-key.pub}"
export HELLO_EVIDENCE_KEY_FILE HELLO_EVIDENCE_PUBLIC_KEY_FILE
export HELLO_BUILDKIT_SOCK="$HELLO_RUN/buildkit/buildkitd.sock"
# Our own buildx store, holding only the local BuildKit builder: pulumi-docker-build reads it.
export BUILDX_CONFIG="$HELLO_RUN/buildx"
# The BuildKit release that pulumi-docker-build's buildx client is built against.
export HELLO_BUILDKIT_VERSION=v0.31.0
export HELLO_BUILDKIT_BIN="$HELLO_CACHE/buildkit/$HELLO_BUILDKIT_VERSION/bin/buildkitd"
export HELLO_KUBECONFIG="$HELLO_RUN/kube/admin.kubeconfig"
# Last 1.34 patch the Go proxy serves; 1.35+ refuses cgroup v1 by default.
export HELLO_K8S_VERSION=v1.34.4
export HELLO_K8S_BIN="$HELLO_CACHE/k8s/$HELLO_K8S_VERSION/bin"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$HELLO_CACHE/go/mod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$HELLO_CACHE/go/build}"
export GOFLAGS=-mod=readonly # go uses the checksums committed in go.sum, never adds one (tooling/toolchain/gomod.sh)
export GOTOOLCHAIN=local

# say LABEL CMD...: run a long step, printing what it does and how long it took.
say() {
  local label=$1 start=$SECONDS
  shift
  echo ">> $label ..." >&2
  "$@"
  local rc=$?
  echo ">> $label: $((SECONDS - start))s (exit $rc)" >&2
  return $rc
}

# Pulumi's local file backend and the passphrase of its secrets provider: kept outside
# the repository (state must outlive a clone), never a Pulumi Cloud account.
: "${HELLO_STATE:=${XDG_STATE_HOME:-$HOME/.local/state}/hello-pulumi}"
export HELLO_STATE
: "${PULUMI_BACKEND_URL:=file://$HELLO_STATE/backend}"
export PULUMI_BACKEND_URL
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  export PULUMI_CONFIG_PASSPHRASE_FILE="$HELLO_STATE/passphrase"
fi
# The team's shared state store (tooling/platform/state-store.sh): versitygw, an S3 gateway, on loopback.
export HELLO_VERSITYGW_VERSION=v1.8.0
export HELLO_VERSITYGW_BIN="$HELLO_CACHE/versitygw/$HELLO_VERSITYGW_VERSION/bin/versitygw"
: "${HELLO_STATE_STORE:=127.0.0.1:7070}"
export HELLO_STATE_STORE
export HELLO_STATE_STORE_CREDENTIALS="$HELLO_RUN/state-store/credentials" # AWS_ACCESS_KEY_ID=, AWS_SECRET_ACCESS_KEY= (0600)
export HELLO_STATE_STORE_REGION=us-east-1
export HELLO_STATE_BUCKET=hello-pulumi-state
# PULUMI_BACKEND_URL for a stack kept there (gocloud's s3 URL parameters, as the pinned CLI reads them).
export HELLO_STATE_STORE_URL="s3://$HELLO_STATE_BUCKET?endpoint=http://$HELLO_STATE_STORE&use_path_style=true&region=$HELLO_STATE_STORE_REGION"
# The cluster's ingress controller (tooling/platform/ingress.sh): Traefik on loopback ports of this machine, with
# a default certificate from the platform's CA for the test domain below.
export HELLO_TRAEFIK_VERSION=v3.6.12 # v3.7 needs a module the Go proxy does not serve
export HELLO_TRAEFIK_BIN="$HELLO_CACHE/traefik/$HELLO_TRAEFIK_VERSION/bin/traefik"
: "${HELLO_INGRESS_HTTP:=127.0.0.1:8880}"
: "${HELLO_INGRESS_HTTPS:=127.0.0.1:8843}"
export HELLO_INGRESS_HTTP HELLO_INGRESS_HTTPS
export HELLO_INGRESS_DOMAIN=hello-pulumi.test
export HELLO_INGRESS_NAMESPACE=hello-ingress
export HELLO_INGRESS_CLASS=traefik
