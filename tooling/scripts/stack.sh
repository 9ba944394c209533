#!/usr/bin/env bash
# stack.sh STACK COMMAND [ARGS...]: run a pulumi command on a stack of this project,
# against the local file backend, creating the stack and its local secrets on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
stack=${1:?usage: stack.sh STACK COMMAND [ARGS...]}
shift
# The one reader of stack files (settings/stack_files.py) says which registry the stack pushes to,
# and fails, naming the file, when there is no such stack or its file is broken.
registry=$(.venv/bin/python -m settings.stack_files build-registry "$stack")

source tooling/scripts/backend.sh
pulumi stack select --non-interactive --create "$stack" >/dev/null

# A stack that builds and pushes to the local registry gets that registry's generated
# password, as a secret; it is set only when it differs, so the stack file stays put.
if [[ $registry == "$HELLO_REGISTRY" && -r $HELLO_REGISTRY_PASSWORD_FILE ]]; then
  password=$(<"$HELLO_REGISTRY_PASSWORD_FILE")
  if [[ $(pulumi config get registryPassword 2>/dev/null || true) != "$password" ]]; then
    # On standard input, never as an argument: every argument shows in ps.
    printf '%s' "$password" | pulumi config set --secret registryPassword
  fi
fi

# Previews and deployments run the policy pack at the stack's enforcement: its policy/config/<stack>.json,
# or every rule mandatory for a stack without one (settings/stack_files.py decides, for every path).
# `pulumi destroy` takes no policy pack: the rules check resources it would create or change, and it makes none.
policy=()
if [[ $1 == preview || $1 == up ]]; then
  policy_config=$(mktemp --suffix=.json)
  trap 'rm -f "$policy_config"' EXIT
  .venv/bin/python -m settings.stack_files policy-config "$stack" >"$policy_config"
  policy=(--policy-pack policy --policy-pack-config "$policy_config")
fi
pulumi "$@" "${policy[@]}" --non-interactive --stack "$stack"

if [[ $1 == up ]]; then
  port=$(pulumi stack output nodePort --stack "$stack")
  url="http://127.0.0.1:$port/"
  echo "The service answers at $url:"
  curl --silent --show-error --max-time 5 --retry 5 --retry-delay 1 --retry-all-errors "$url"
fi
