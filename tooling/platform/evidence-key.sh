#!/usr/bin/env bash
# The local platform's signing key for verification evidence (ops/evidence.py): an Ed25519 key made once under
# $HELLO_EVIDENCE_DIR and kept; the private key 0600 (root), its public key beside it (0644).
# Usage: evidence-key.sh up
# A deploy whose in-cluster verification passed signs "digest D passed in stack S" with the private key
# (HELLO_EVIDENCE_KEY_FILE); a promotion trusts only the public key (HELLO_EVIDENCE_PUBLIC_KEY_FILE).
set -euo pipefail
PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PLATFORM_DIR/env.sh"
source "$PLATFORM_DIR/lib.sh"

evidence_key_up() {
  require_commands openssl
  mkdir -p "$HELLO_EVIDENCE_DIR"
  chmod 0711 "$HELLO_EVIDENCE_DIR" # others may read the public key, never the private one
  if [[ -s $HELLO_EVIDENCE_KEY_FILE && -s $HELLO_EVIDENCE_PUBLIC_KEY_FILE ]]; then
    chmod 0600 "$HELLO_EVIDENCE_KEY_FILE"
    return 0
  fi
  info "making the verification evidence signing key in $HELLO_EVIDENCE_DIR"
  (umask 077 && openssl genpkey -algorithm ed25519 -out "$HELLO_EVIDENCE_KEY_FILE.tmp" 2>/dev/null)
  openssl pkey -in "$HELLO_EVIDENCE_KEY_FILE.tmp" -pubout -out "$HELLO_EVIDENCE_PUBLIC_KEY_FILE.tmp" 2>/dev/null
  chmod 0644 "$HELLO_EVIDENCE_PUBLIC_KEY_FILE.tmp"
  mv "$HELLO_EVIDENCE_PUBLIC_KEY_FILE.tmp" "$HELLO_EVIDENCE_PUBLIC_KEY_FILE"
  mv "$HELLO_EVIDENCE_KEY_FILE.tmp" "$HELLO_EVIDENCE_KEY_FILE"
}

case "${1:-}" in
  up) require_root "tooling/platform/evidence-key.sh up" && evidence_key_up ;;
  *) die "usage: evidence-key.sh up" ;;
esac
