#!/usr/bin/env bash
# Start or stop a BuildKit daemon for the docker-build provider, and register it as a buildx
# "remote" builder in our own buildx store ($BUILDX_CONFIG).
# Usage: buildkit.sh build | up | down [--purge]
#
# Why: pulumi-docker-build does not build on dockerd's own builder; without another builder
# it creates a docker-container one, which pulls moby/buildkit from Docker Hub. A buildkitd
# built from its Go module and run on the host needs no image at all.
set -euo pipefail
PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PLATFORM_DIR/env.sh"
source "$PLATFORM_DIR/lib.sh"

BUILDKIT_VERSION=$HELLO_BUILDKIT_VERSION
BUILDKIT_BIN=$HELLO_BUILDKIT_BIN
BUILDKIT_DIR=$HELLO_RUN/buildkit
BUILDKIT_PIDFILE=$BUILDKIT_DIR/buildkitd.pid
BUILDKIT_LOG=$BUILDKIT_DIR/buildkitd.log
BUILDKIT_CONFIG=$BUILDKIT_DIR/buildkitd.toml
BUILDER_NAME=hello-buildkit

build() {
  [[ -x $BUILDKIT_BIN ]] && return 0
  # `go install pkg@version` refuses modules with exclude lines, so build from a wrapper module.
  local wrapper=$HELLO_CACHE/buildkit/$BUILDKIT_VERSION/wrapper
  mkdir -p "$wrapper"
  printf 'module hello-pulumi/buildkitd\n\ngo 1.24\n\nrequire github.com/moby/buildkit %s\n' "$BUILDKIT_VERSION" >"$wrapper/go.mod"
  (
    cd "$wrapper"
    say "resolving buildkit $BUILDKIT_VERSION modules" go mod download github.com/moby/buildkit
    say "building buildkitd $BUILDKIT_VERSION from its Go module" \
      go build -trimpath -ldflags "-s -w" -o "$BUILDKIT_BIN.tmp" github.com/moby/buildkit/cmd/buildkitd
  )
  mv "$BUILDKIT_BIN.tmp" "$BUILDKIT_BIN"
}

write_config() {
  mkdir -p "$BUILDKIT_DIR" "$BUILDX_CONFIG/instances"
  # The local registry speaks plain HTTP; builds need no network of their own (no RUN
  # step downloads anything), so the worker shares the host's and needs no CNI.
  cat >"$BUILDKIT_CONFIG" <<TOML
root = "$BUILDKIT_DIR/root"
[grpc]
  address = ["unix://$HELLO_BUILDKIT_SOCK"]
[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  networkMode = "host"
  gc = true
  gckeepstorage = "2GB"
[worker.containerd]
  enabled = false
[registry."$HELLO_REGISTRY"]
  http = true
  insecure = true
TOML
  # A buildx store entry for a "remote" builder: the provider picks the first builder it can dial.
  cat >"$BUILDX_CONFIG/instances/$BUILDER_NAME" <<JSON
{"Name":"$BUILDER_NAME","Driver":"remote","Nodes":[{"Name":"${BUILDER_NAME}0","Endpoint":"unix://$HELLO_BUILDKIT_SOCK","Platforms":null,"DriverOpts":null,"Flags":null,"Files":null}],"Dynamic":false}
JSON
}

up() {
  require_root "tooling/platform/buildkit.sh"
  require_commands runc
  build
  write_config
  if pid_of "$BUILDKIT_PIDFILE" buildkitd >/dev/null; then
    return 0
  fi
  start_background "$BUILDKIT_PIDFILE" "$BUILDKIT_LOG" "$BUILDKIT_BIN" --config "$BUILDKIT_CONFIG"
  wait_until 60 buildkitd "$BUILDKIT_LOG" "$STARTED_PID" test -S "$HELLO_BUILDKIT_SOCK"
}

down() {
  stop_pidfile "$BUILDKIT_PIDFILE" buildkitd 20
  local mount
  while read -r mount; do umount -l "$mount" 2>/dev/null || true; done < <(mounts_under "$BUILDKIT_DIR" | sort -r)
  if [[ ${1:-} == --purge ]]; then
    rm -rf "$BUILDKIT_DIR" "$BUILDX_CONFIG"
  fi
}

case "${1:-}" in
build) build ;;
up) up ;;
down) shift; down "$@" ;;
*) echo "usage: $0 build | up | down [--purge]" >&2; exit 2 ;;
esac
