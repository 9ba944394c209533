#!/usr/bin/env bash
# The local platform's certificate authority: made once under $HELLO_CA_DIR, kept, and the one issuer of the
# platform's server certificates (the token registry and its token issuer now, ingress TLS later).
# Usage: ca.sh up | server NAME SANS | down [--purge]
#   server: print the paths of NAME's certificate and key (SANS such as IP:127.0.0.1), issuing them if needed.
# Sourced by another platform script, it gives ca_server_cert NAME SANS, which sets CA_CRT and CA_KEY.
# The CA's certificate is $HELLO_CA_CERT (env.sh): trust that file to talk to the platform over TLS.
set -euo pipefail
CA_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$CA_SCRIPT_DIR/env.sh"
source "$CA_SCRIPT_DIR/lib.sh"

CA_KEY_FILE=$HELLO_CA_DIR/ca.key
CA_DAYS=3650
SERVER_DAYS=365
RENEW_SECONDS=86400 # a server certificate that expires within a day is issued anew

# ca_up: the CA's key (0600) and self-signed certificate, made when missing and kept.
ca_up() {
  require_commands openssl
  mkdir -p "$HELLO_CA_DIR/issued"
  chmod 0711 "$HELLO_CA_DIR" # others may reach the certificates (0644), never the keys (0600)
  if [[ -s $HELLO_CA_CERT && -s $CA_KEY_FILE ]]; then
    ca_trust_dir
    return 0
  fi
  info "making the local platform's CA in $HELLO_CA_DIR"
  (
    umask 077
    openssl ecparam -name prime256v1 -genkey -noout -out "$CA_KEY_FILE.tmp" 2>/dev/null
    openssl req -x509 -new -key "$CA_KEY_FILE.tmp" -subj "/CN=hello-pulumi local platform CA" -days "$CA_DAYS" \
      -sha256 -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$HELLO_CA_CERT.tmp"
  )
  mv "$CA_KEY_FILE.tmp" "$CA_KEY_FILE"
  chmod 0644 "$HELLO_CA_CERT.tmp"
  mv "$HELLO_CA_CERT.tmp" "$HELLO_CA_CERT"
  ca_trust_dir
}

# ca_trust_dir: $HELLO_CA_DIR/trust, in SSL_CERT_DIR (env.sh), holds the CA's certificate alone, under its own
# name (Go reads every file) and its subject hash (OpenSSL looks certificates up by it).
ca_trust_dir() {
  local trust=$HELLO_CA_DIR/trust hash
  hash=$(openssl x509 -in "$HELLO_CA_CERT" -noout -hash)
  [[ -L $trust/$hash.0 && $(readlink "$trust/$hash.0") == ca.crt ]] && cmp -s "$trust/ca.crt" "$HELLO_CA_CERT" && return 0
  rm -rf "$trust"
  mkdir -p "$trust"
  install -m 0644 "$HELLO_CA_CERT" "$trust/ca.crt"
  ln -s ca.crt "$trust/$hash.0"
}

# ca_server_cert NAME SANS: a server certificate for SANS (openssl's subjectAltName syntax), signed by the CA,
# issued when missing, expiring within a day, for other SANS, or from an earlier CA. Sets CA_CRT and CA_KEY.
ca_server_cert() {
  local name=$1 sans=$2 ext
  ca_up
  CA_CRT=$HELLO_CA_DIR/issued/$name.crt
  CA_KEY=$HELLO_CA_DIR/issued/$name.key
  if [[ -s $CA_CRT && -s $CA_KEY && $(cat "$CA_CRT.sans" 2>/dev/null) == "$sans" ]] &&
    openssl x509 -in "$CA_CRT" -noout -checkend "$RENEW_SECONDS" >/dev/null &&
    openssl verify -CAfile "$HELLO_CA_CERT" "$CA_CRT" >/dev/null 2>&1; then
    return 0
  fi
  info "issuing $name's certificate for $sans"
  ext=$(mktemp)
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=$sans" >"$ext"
  (
    umask 077
    openssl ecparam -name prime256v1 -genkey -noout -out "$CA_KEY.tmp" 2>/dev/null
    openssl req -new -key "$CA_KEY.tmp" -subj "/CN=$name" |
      openssl x509 -req -CA "$HELLO_CA_CERT" -CAkey "$CA_KEY_FILE" -set_serial "0x$(openssl rand -hex 16)" \
        -days "$SERVER_DAYS" -sha256 -extfile "$ext" -out "$CA_CRT.tmp" 2>/dev/null
  )
  rm -f "$ext"
  chmod 0644 "$CA_CRT.tmp"
  mv "$CA_KEY.tmp" "$CA_KEY"
  mv "$CA_CRT.tmp" "$CA_CRT"
  echo "$sans" >"$CA_CRT.sans"
}

ca_down() {
  if [[ ${1:-} == --purge ]]; then
    info "removing $HELLO_CA_DIR (the CA and every certificate it issued)"
    rm -rf "$HELLO_CA_DIR"
  fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  require_root "tooling/platform/ca.sh"
  case ${1:-} in
    up) ca_up ;;
    server) ca_server_cert "${2:?usage: ca.sh server NAME SANS}" "${3:?usage: ca.sh server NAME SANS}" && echo "$CA_CRT $CA_KEY" ;;
    down) ca_down "${2:-}" ;;
    *) die "usage: ca.sh up | server NAME SANS | down [--purge]" ;;
  esac
fi
