#!/usr/bin/env bash
# Build the Node.js base image $HELLO_BASE_IMAGE from Debian packages (no registry pull), into our engine.
# Usage: base-image.sh up
# The slimmed root filesystem is cached under $HELLO_CACHE/base-image, so after a
# wipe of the engine's data the image comes back with one `docker import`.
set -euo pipefail
PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PLATFORM_DIR/env.sh"
source "$PLATFORM_DIR/lib.sh"

SUITE=bookworm
MIRROR=${HELLO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the rootfs recipe below changes, so the cached tarball is rebuilt.
RECIPE=2
CACHE_DIR=$HELLO_CACHE/base-image
ROOTFS_TAR=$CACHE_DIR/rootfs-$SUITE-r$RECIPE.tar
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The conventional unprivileged id (as in distroless images), named so that
# `USER 65532:65532` shows as nonroot in ps and the shell.
NONROOT_ID=65532

# Files a running Node.js app never reads: package indexes and caches, docs, man
# pages, translations. Copyright files stay.
slim_rootfs() {
  local root=$1
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/* \
    "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/lintian \
    "$root"/usr/share/locale/* "$root"/usr/share/doc-base
  find "$root"/usr/share/doc -mindepth 1 -not -type d -not -name copyright -delete
  find "$root"/usr/share/doc -mindepth 1 -type d -empty -delete
  # debootstrap leaves the build host's name and resolver behind.
  rm -f "$root"/etc/hostname "$root"/etc/resolv.conf
  mkdir -p "$root/home/nonroot"
  chown "$NONROOT_ID:$NONROOT_ID" "$root/home/nonroot"
  grep -q '^nonroot:' "$root/etc/passwd" ||
    echo "nonroot:x:$NONROOT_ID:$NONROOT_ID:nonroot:/home/nonroot:/usr/sbin/nologin" >>"$root/etc/passwd"
  grep -q '^nonroot:' "$root/etc/group" || echo "nonroot:x:$NONROOT_ID:" >>"$root/etc/group"
}

# --cache-dir keeps the downloaded .debs, so a recipe change needs no new download.
run_debootstrap() {
  debootstrap --variant=minbase --include=nodejs --cache-dir="$CACHE_DIR/debs" \
    "$SUITE" "$1" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1
}

build_rootfs_tar() {
  require_commands debootstrap
  local work=$CACHE_DIR/build
  rm -rf "$work"
  mkdir -p "$work/rootfs" "$CACHE_DIR/debs"
  say "debootstrap $SUITE (minbase + nodejs)" run_debootstrap "$work/rootfs" ||
    { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed; full log in $CACHE_DIR/debootstrap.log"; }
  slim_rootfs "$work/rootfs"
  tar -C "$work/rootfs" --numeric-owner -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$work"
  find "$CACHE_DIR" -maxdepth 1 -name "rootfs-*.tar" ! -path "$ROOTFS_TAR" -delete
}

up() {
  require_root "base-image.sh"
  # A found image proves the engine answers; only otherwise is it asked whether it does.
  if docker_ours image inspect "$HELLO_BASE_IMAGE" >/dev/null 2>&1; then
    info "base image $HELLO_BASE_IMAGE already present"
    return 0
  fi
  docker_ours info >/dev/null 2>&1 || die "our Docker engine is not answering on $HELLO_DOCKER_SOCK; run tooling/platform/engine.sh up first"
  [[ -s $ROOTFS_TAR ]] || build_rootfs_tar
  docker_ours import \
    --change "ENV PATH=$IMAGE_PATH" \
    --change "ENV NODE_ENV=production" \
    --change 'CMD ["node"]' \
    --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase with nodejs, built by tooling/platform/base-image.sh\"" \
    --message "debootstrap $SUITE minbase + nodejs (recipe $RECIPE)" \
    "$ROOTFS_TAR" "$HELLO_BASE_IMAGE" >/dev/null
  info "base image $HELLO_BASE_IMAGE: node $(docker_ours run --rm --network none "$HELLO_BASE_IMAGE" node --version), $(docker_ours image inspect --format '{{.Size}}' "$HELLO_BASE_IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"
}

# Records the base image pinned by its served digest in $HELLO_BASE_IMAGE_PINNED_FILE: the checker image of
# local-platform stacks' verification (a digest differs per machine, so no tracked file can hold it).
record_pinned() {
  local digest=$1
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "the registry must serve $HELLO_BASE_IMAGE_REF by a sha256 digest, got '$digest'"
  mkdir -p "$(dirname "$HELLO_BASE_IMAGE_PINNED_FILE")"
  printf '%s@%s\n' "${HELLO_BASE_IMAGE_REF%:*}" "$digest" >"$HELLO_BASE_IMAGE_PINNED_FILE.tmp"
  mv -f "$HELLO_BASE_IMAGE_PINNED_FILE.tmp" "$HELLO_BASE_IMAGE_PINNED_FILE"
}

# BuildKit (the docker-build provider's builder) cannot see the engine's images, so the base
# image is also served by the local registry, as $HELLO_BASE_IMAGE_REF.
publish() {
  local repository=${HELLO_BASE_IMAGE%:*} tag=${HELLO_BASE_IMAGE##*:} digest
  if digest=$(served_digest "$repository" "$tag"); then
    record_pinned "$digest"
    info "base image already served as $HELLO_BASE_IMAGE_REF ($digest)"
    return 0
  fi
  { docker_ours tag "$HELLO_BASE_IMAGE" "$HELLO_BASE_IMAGE_REF" && push_ours "$HELLO_BASE_IMAGE_REF"; } ||
    die "could not push $HELLO_BASE_IMAGE_REF"
  record_pinned "$(served_digest "$repository" "$tag")"
  info "base image pushed as $HELLO_BASE_IMAGE_REF"
}

case ${1:-} in
  up) up && publish ;;
  *) die "usage: base-image.sh up" ;;
esac
