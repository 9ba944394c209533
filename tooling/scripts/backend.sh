# shellcheck shell=bash
# Sourced: log in to the local file backend, making its secrets passphrase on first use.

# hello_private_dir DIR: DIR exists and only its owner may enter it (0700), even if it was there before.
hello_private_dir() {
  mkdir -p -- "$1" && chmod 0700 -- "$1"
}

# The state folder holds the passphrase file and, by default, the backend; the backend holds every
# stack's state. Both are private, however the passphrase is given.
if [[ -n ${HELLO_STATE:-} ]]; then
  hello_private_dir "$HELLO_STATE"
fi
if [[ -n ${PULUMI_CONFIG_PASSPHRASE_FILE:-} && ! -s $PULUMI_CONFIG_PASSPHRASE_FILE ]]; then
  install -d -m 0700 "$(dirname "$PULUMI_CONFIG_PASSPHRASE_FILE")"
  (umask 077 && head -c 24 /dev/urandom | base64 >"$PULUMI_CONFIG_PASSPHRASE_FILE")
fi
if [[ $PULUMI_BACKEND_URL == file://* ]]; then
  hello_backend_dir=${PULUMI_BACKEND_URL#file://}
  hello_backend_dir=${hello_backend_dir%%\?*}
  # file://~ is Pulumi's name for the home folder, whose mode is the user's business: there, the
  # backend's own .pulumi folder is made private instead.
  case $hello_backend_dir in
    "~" | "~/") hello_backend_dir=$HOME/.pulumi ;;
    "~/"*) hello_backend_dir=$HOME/${hello_backend_dir#"~/"} ;;
  esac
  hello_private_dir "$hello_backend_dir"
  unset hello_backend_dir
fi
unset -f hello_private_dir
pulumi login --non-interactive "$PULUMI_BACKEND_URL" >/dev/null
