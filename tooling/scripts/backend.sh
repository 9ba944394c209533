# shellcheck shell=bash
# Sourced: log in to the local file backend, making its secrets passphrase on first use.
if [[ -n ${PULUMI_CONFIG_PASSPHRASE_FILE:-} && ! -s $PULUMI_CONFIG_PASSPHRASE_FILE ]]; then
  install -d -m 0700 "$(dirname "$PULUMI_CONFIG_PASSPHRASE_FILE")"
  (umask 077 && head -c 24 /dev/urandom | base64 >"$PULUMI_CONFIG_PASSPHRASE_FILE")
fi
if [[ $PULUMI_BACKEND_URL == file://* ]]; then
  mkdir -p "${PULUMI_BACKEND_URL#file://}"
fi
pulumi login --non-interactive "$PULUMI_BACKEND_URL" >/dev/null
