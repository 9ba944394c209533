#!/usr/bin/env bash
# Start or stop the token-auth registry (Debian's docker-registry, `auth: token`) on $HELLO_TOKEN_REGISTRY and its
# token issuer (tooling/platform/token_issuer.py) on $HELLO_TOKEN_ISSUER, both over TLS from the platform's CA.
# Usage: token-registry.sh up | down [--purge]
# A client asks the registry, gets 401 with `Bearer realm="https://$HELLO_TOKEN_ISSUER/token"`, asks the issuer
# with HTTP Basic, and retries with the RS256 token: the dance of Docker Hub and GHCR, on loopback.
# Users: $HELLO_TOKEN_REGISTRY_USER (pull and push everywhere) and $HELLO_TOKEN_REGISTRY_READER (pull on public/*
# only), each with a generated password in a 0600 file (env.sh names them).
set -euo pipefail
PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PLATFORM_DIR/env.sh"
source "$PLATFORM_DIR/lib.sh"
# ca_server_cert
source "$PLATFORM_DIR/ca.sh"

DIR=$HELLO_RUN/token-registry
REGISTRY_PIDFILE=$DIR/registry.pid
REGISTRY_LOG=$DIR/registry.log
REGISTRY_CONFIG=$DIR/config.yml
REGISTRY_FINGERPRINT=$DIR/registry.fingerprint
ISSUER_PIDFILE=$DIR/issuer.pid
ISSUER_LOG=$DIR/issuer.log
ISSUER_CONFIG=$DIR/issuer.json
ISSUER_SCRIPT=$DIR/token_issuer.py # a copy: the running issuer does not depend on the checkout that started it
ISSUER_FINGERPRINT=$DIR/issuer.fingerprint
SIGNING_KEY=$DIR/signing.key
SIGNING_CERT=$DIR/signing.crt # the registry's rootcertbundle: it trusts tokens this certificate's key signed
ISSUER_REQUIREMENTS=$PLATFORM_DIR/token-issuer-requirements.txt
ISSUER_VENV=$HELLO_CACHE/token-issuer-venv
SERVICE=hello-pulumi-token-registry
ISSUER_NAME=hello-pulumi-token-issuer
PASSWORD_LENGTH=32
START_TIMEOUT=30
STOP_TIMEOUT=15

# The issuer's own venv, installed from its pinned requirements, again when they change.
ensure_issuer_venv() {
  local pins
  pins=$(sha256sum <"$ISSUER_REQUIREMENTS" | cut -d' ' -f1)
  [[ -x $ISSUER_VENV/bin/python && $(cat "$ISSUER_VENV/.pins" 2>/dev/null) == "$pins" ]] && return 0
  info "installing the token issuer's requirements into $ISSUER_VENV"
  # Debian's python3 makes venvs only with python3-venv (ensurepip).
  python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  rm -rf "$ISSUER_VENV"
  python3 -m venv "$ISSUER_VENV"
  "$ISSUER_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ISSUER_REQUIREMENTS"
  echo "$pins" >"$ISSUER_VENV/.pins"
}

# The RSA key the issuer signs tokens with (RS256), and its self-signed certificate; made once and kept.
ensure_signing_key() {
  [[ -s $SIGNING_KEY && -s $SIGNING_CERT ]] && return 0
  info "making the token issuer's signing key"
  (
    umask 077
    openssl genrsa -out "$SIGNING_KEY.tmp" 2048 2>/dev/null
    openssl req -x509 -new -key "$SIGNING_KEY.tmp" -subj "/CN=$ISSUER_NAME" -days 3650 -sha256 \
      -addext "keyUsage=critical,digitalSignature" -out "$SIGNING_CERT.tmp"
  )
  chmod 0644 "$SIGNING_CERT.tmp"
  mv "$SIGNING_KEY.tmp" "$SIGNING_KEY"
  mv "$SIGNING_CERT.tmp" "$SIGNING_CERT"
}

# The hosts of both addresses, as subjectAltName entries (IP: for an address, DNS: for a name).
sans() {
  local host seen=() out=()
  for host in "${HELLO_TOKEN_REGISTRY%:*}" "${HELLO_TOKEN_ISSUER%:*}"; do
    [[ " ${seen[*]} " == *" $host "* ]] && continue
    seen+=("$host")
    if [[ $host =~ ^[0-9.]+$ ]]; then out+=("IP:$host"); else out+=("DNS:$host"); fi
  done
  (IFS=,; echo "${out[*]}")
}

write_issuer_config() {
  (umask 077 && cat >"$ISSUER_CONFIG" <<EOF
{
  "listen": "$HELLO_TOKEN_ISSUER",
  "tls_cert": "$CA_CRT",
  "tls_key": "$CA_KEY",
  "service": "$SERVICE",
  "issuer": "$ISSUER_NAME",
  "signing_key": "$SIGNING_KEY",
  "signing_cert": "$SIGNING_CERT",
  "users": {
    "$HELLO_TOKEN_REGISTRY_USER": {
      "password_file": "$HELLO_TOKEN_REGISTRY_PASSWORD_FILE",
      "rights": {"*": ["pull", "push"]}
    },
    "$HELLO_TOKEN_REGISTRY_READER": {
      "password_file": "$HELLO_TOKEN_REGISTRY_READER_PASSWORD_FILE",
      "rights": {"public/*": ["pull"]}
    }
  }
}
EOF
  )
  install -m 0644 "$PLATFORM_DIR/token_issuer.py" "$ISSUER_SCRIPT"
}

write_registry_config() {
  (umask 077 && cat >"$REGISTRY_CONFIG" <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $HELLO_TOKEN_REGISTRY
  secret: $(random_secret 32)
  tls:
    certificate: $CA_CRT
    key: $CA_KEY
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  token:
    realm: https://$HELLO_TOKEN_ISSUER/token
    service: $SERVICE
    issuer: $ISSUER_NAME
    rootcertbundle: $SIGNING_CERT
EOF
  )
}

status_of() { curl -s -o /dev/null -m 2 --cacert "$HELLO_CA_CERT" -w '%{http_code}' "$1"; }
# 401 on /v2/ and on /token without credentials: serving, and refusing anonymous clients.
registry_answers() { [[ $(status_of "https://$HELLO_TOKEN_REGISTRY/v2/") == 401 ]]; }
issuer_answers() { [[ $(status_of "https://$HELLO_TOKEN_ISSUER/token") == 401 ]]; }
start_issuer() {
  serve "token issuer" HELLO_TOKEN_ISSUER "$ISSUER_PIDFILE" "$ISSUER_LOG" "$ISSUER_FINGERPRINT" \
    "$(cat "$ISSUER_SCRIPT" "$ISSUER_CONFIG" "$ISSUER_VENV/.pins" "$CA_CRT" | sha256sum | cut -d' ' -f1)" \
    issuer_answers "expecting 401 on /token" -- "$ISSUER_VENV/bin/python" "$ISSUER_SCRIPT" "$ISSUER_CONFIG"
}

start_registry() {
  write_registry_config
  # The registry reads its certificate and the issuer's at start: a renewed one means a restart.
  serve "token registry" HELLO_TOKEN_REGISTRY "$REGISTRY_PIDFILE" "$REGISTRY_LOG" "$REGISTRY_FINGERPRINT" \
    "$(cat "$CA_CRT" "$SIGNING_CERT" | sha256sum | cut -d' ' -f1)" registry_answers "expecting 401 on /v2/" -- \
    docker-registry serve "$REGISTRY_CONFIG"
}

up() {
  require_root "tooling/platform/token-registry.sh"
  require_commands docker-registry openssl curl python3
  mkdir -p "$DIR/data"
  chmod 0700 "$DIR"
  ensure_secret_file "$HELLO_TOKEN_REGISTRY_PASSWORD_FILE" "$PASSWORD_LENGTH"
  ensure_secret_file "$HELLO_TOKEN_REGISTRY_READER_PASSWORD_FILE" "$PASSWORD_LENGTH"
  ca_server_cert token-registry "$(sans)"
  ensure_signing_key
  ensure_issuer_venv
  write_issuer_config
  start_issuer
  start_registry
  info "token registry on $HELLO_TOKEN_REGISTRY, issuer https://$HELLO_TOKEN_ISSUER/token, users" \
    "$HELLO_TOKEN_REGISTRY_USER and $HELLO_TOKEN_REGISTRY_READER"
}

down() {
  require_root "tooling/platform/token-registry.sh"
  stop_pidfile "$REGISTRY_PIDFILE" docker-registry "$STOP_TIMEOUT"
  stop_pidfile "$ISSUER_PIDFILE" python "$STOP_TIMEOUT"
  if [[ ${1:-} == --purge ]]; then
    info "removing $DIR (pushed images, passwords and the signing key)"
    rm -rf "$DIR"
  fi
}

case ${1:-} in
  up) up ;;
  down) down "${2:-}" ;;
  *) die "usage: token-registry.sh up | down [--purge]" ;;
esac
