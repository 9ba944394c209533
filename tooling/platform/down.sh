#!/usr/bin/env bash
# Stop the local platform (ingress controller and cluster first, then BuildKit, the registries and the engine) and take back dockerd's host changes.
# Usage: down.sh [--purge]   --purge also deletes images, registry contents, the registry passwords and the CA.
# Data stays by default so that the next up.sh is a warm start. Needs root.
set -euo pipefail
PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PLATFORM_DIR/env.sh"
source "$PLATFORM_DIR/lib.sh"

purge=
case ${1:-} in
  "") ;;
  --purge) purge=--purge ;;
  *) die "usage: down.sh [--purge]" ;;
esac
require_root "tooling/platform/down.sh"
lock_platform

# Every part is stopped even when an earlier one fails; the failures are reported at the end.
failed=()
if [[ -f $PLATFORM_DIR/cluster/down.sh && ${HELLO_PLATFORM_CLUSTER:-1} != 0 ]]; then
  say "ingress controller" "$PLATFORM_DIR/ingress.sh" down || failed+=(ingress)
  say "cluster" bash "$PLATFORM_DIR/cluster/down.sh" $purge 9>&- || failed+=(cluster)
fi
say "state store" "$PLATFORM_DIR/state-store.sh" down $purge || failed+=(state-store)
say "buildkit" "$PLATFORM_DIR/buildkit.sh" down $purge || failed+=(buildkit)
say "token registry" "$PLATFORM_DIR/token-registry.sh" down $purge || failed+=(token-registry)
say "registry" "$PLATFORM_DIR/registry.sh" down $purge || failed+=(registry)
say "ca" "$PLATFORM_DIR/ca.sh" down $purge || failed+=(ca)
say "engine" "$PLATFORM_DIR/engine.sh" down $purge || failed+=(engine)
[[ ${#failed[@]} -eq 0 ]] || die "could not stop cleanly: ${failed[*]}"
echo "Platform down${purge:+ and purged}."
