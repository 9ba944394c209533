# shellcheck shell=bash
# Sourced: make the local file backend and its secrets passphrase on first use, both private.
# Pulumi finds the backend through PULUMI_BACKEND_URL (tooling/platform/env.sh): no `pulumi login`,
# which would cost a CLI start and change the user's current backend in their Pulumi home.

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
hello_backend_dir=
if [[ $PULUMI_BACKEND_URL == file://* ]]; then
  hello_backend_dir=${PULUMI_BACKEND_URL#file://}
  hello_backend_dir=${hello_backend_dir%%\?*}
  # file://~ is Pulumi's name for the home folder, whose mode is the user's business: there, the
  # backend's own .pulumi folder is made private instead.
  case $hello_backend_dir in
    "~" | "~/") hello_backend_dir=$HOME ;;
    "~/"*) hello_backend_dir=$HOME/${hello_backend_dir#"~/"} ;;
  esac
  if [[ $hello_backend_dir == "$HOME" ]]; then
    hello_private_dir "$HOME/.pulumi"
  else
    hello_private_dir "$hello_backend_dir"
  fi
fi
unset -f hello_private_dir

# hello_stack_in_backend STACK: whether the file backend holds this project's STACK (its checkpoint).
# Only a shortcut for callers that would otherwise ask the CLI: on a no, or on another backend, they ask it.
hello_stack_in_backend() {
  [[ -n $hello_backend_dir ]] || return 1
  local checkpoint="$hello_backend_dir/.pulumi/stacks/hello-world/$1.json"
  [[ -f $checkpoint || -f $checkpoint.gz ]]
}
