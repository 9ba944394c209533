#!/usr/bin/env bash
# Start or stop a private image registry (Debian's docker-registry) on $HELLO_REGISTRY, with htpasswd auth.
# Usage: registry.sh up | down [--purge] | check-login
#   check-login: log our engine in with a throwaway DOCKER_CONFIG, proving the credentials work.
set -euo pipefail
PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PLATFORM_DIR/env.sh"
source "$PLATFORM_DIR/lib.sh"
# ca_server_cert: the registry speaks TLS from the platform's CA, as the registries users bring speak HTTPS
source "$PLATFORM_DIR/ca.sh"

REGISTRY_DIR=$HELLO_RUN/registry
REGISTRY_PIDFILE=$REGISTRY_DIR/registry.pid
REGISTRY_LOG=$REGISTRY_DIR/registry.log
HTPASSWD_FILE=$REGISTRY_DIR/htpasswd
CONFIG_FILE=$REGISTRY_DIR/config.yml
FINGERPRINT_FILE=$REGISTRY_DIR/registry.fingerprint
PASSWORD_LENGTH=32
START_TIMEOUT=30
STOP_TIMEOUT=15

# bcrypt entry for the user, rewritten only when it no longer matches the password file.
ensure_htpasswd() {
  if [[ -s $HTPASSWD_FILE ]] &&
    htpasswd -v -i "$HTPASSWD_FILE" "$HELLO_REGISTRY_USER" <"$HELLO_REGISTRY_PASSWORD_FILE" >/dev/null 2>&1; then
    return 0
  fi
  (umask 077 && htpasswd -B -c -i "$HTPASSWD_FILE" "$HELLO_REGISTRY_USER" <"$HELLO_REGISTRY_PASSWORD_FILE" 2>/dev/null)
}

write_config() {
  local secret
  secret=$(random_secret 32)
  (umask 077 && cat >"$CONFIG_FILE" <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $HELLO_REGISTRY
  secret: $secret
  tls:
    certificate: $CA_CRT
    key: $CA_KEY
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: hello-pulumi
    path: $HTPASSWD_FILE
EOF
  )
}

# 401 on /v2/ over TLS from our CA means: serving, ours, and refusing anonymous clients.
registry_answers() {
  [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' --cacert "$HELLO_CA_CERT" "https://$HELLO_REGISTRY/v2/") == 401 ]]
}

# The host of $HELLO_REGISTRY as a subjectAltName entry (IP: for an address, DNS: for a name).
registry_san() {
  local host=${HELLO_REGISTRY%:*}
  if [[ $host =~ ^[0-9.]+$ ]]; then echo "IP:$host"; else echo "DNS:$host"; fi
}

up() {
  require_root "registry.sh"
  require_commands docker-registry htpasswd curl
  mkdir -p "$REGISTRY_DIR/data"
  chmod 0700 "$REGISTRY_DIR"
  ensure_secret_file "$HELLO_REGISTRY_PASSWORD_FILE" "$PASSWORD_LENGTH"
  ensure_htpasswd
  ca_server_cert registry "$(registry_san)"
  write_config
  # The registry reads its certificate at start: a renewed one means a restart.
  serve registry HELLO_REGISTRY "$REGISTRY_PIDFILE" "$REGISTRY_LOG" "$FINGERPRINT_FILE" \
    "$(sha256sum <"$CA_CRT" | cut -d' ' -f1)" registry_answers "expecting 401 on /v2/" -- \
    docker-registry serve "$CONFIG_FILE"
  info "registry on $HELLO_REGISTRY, user $HELLO_REGISTRY_USER"
}

down() {
  local purge=${1:-}
  require_root "registry.sh"
  stop_pidfile "$REGISTRY_PIDFILE" docker-registry "$STOP_TIMEOUT"
  if [[ $purge == --purge ]]; then
    info "removing $REGISTRY_DIR (pushed images and the password)"
    rm -rf "$REGISTRY_DIR"
  fi
}

# Credentials go to a temporary DOCKER_CONFIG, never to the user's ~/.docker.
check_login() {
  local config err rc=0
  config=$(mktemp -d)
  err=$(DOCKER_CONFIG=$config docker_ours login "$HELLO_REGISTRY" -u "$HELLO_REGISTRY_USER" --password-stdin \
    <"$HELLO_REGISTRY_PASSWORD_FILE" 2>&1 >/dev/null) || rc=$?
  rm -rf "$config"
  [[ $rc -eq 0 ]] || die "docker login $HELLO_REGISTRY as $HELLO_REGISTRY_USER failed: $err"
  info "docker login $HELLO_REGISTRY as $HELLO_REGISTRY_USER: ok"
}

case ${1:-} in
  up) up ;;
  down) down "${2:-}" ;;
  check-login) check_login ;;
  *) die "usage: registry.sh up | down [--purge] | check-login" ;;
esac
