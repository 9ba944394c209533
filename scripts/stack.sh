#!/usr/bin/env bash
# stack.sh STACK COMMAND [ARGS...]: run a pulumi command on a stack of this project,
# against the local file backend, creating the stack and its local secrets on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:?usage: stack.sh STACK COMMAND [ARGS...]}
shift
[[ -f Pulumi.$stack.yaml ]] || { echo "error: no Pulumi.$stack.yaml; stacks are: $(ls Pulumi.*.yaml | sed 's/Pulumi\.\(.*\)\.yaml/\1/' | grep -v '^yaml$' | xargs)" >&2; exit 2; }

source scripts/backend.sh
pulumi stack select --non-interactive --create "$stack" >/dev/null

# A stack that builds and pushes to the local registry gets that registry's generated
# password, as a secret; it is set only when it differs, so the stack file stays put.
if grep -q "registry: $HELLO_REGISTRY" "Pulumi.$stack.yaml" && [[ -r $HELLO_REGISTRY_PASSWORD_FILE ]]; then
  password=$(<"$HELLO_REGISTRY_PASSWORD_FILE")
  if [[ $(pulumi config get registryPassword 2>/dev/null || true) != "$password" ]]; then
    pulumi config set --secret registryPassword -- "$password" <&-
  fi
fi

# Previews and deployments run the policy pack, with the stack's enforcement levels.
policy=()
if [[ ($1 == preview || $1 == up) && -f policy/config/$stack.json ]]; then
  policy=(--policy-pack policy --policy-pack-config "policy/config/$stack.json")
fi
pulumi "$@" "${policy[@]}" --non-interactive --stack "$stack"

if [[ $1 == up ]]; then
  port=$(pulumi stack output nodePort --stack "$stack")
  url="http://127.0.0.1:$port/"
  echo "The service answers at $url:"
  curl --silent --show-error --max-time 5 --retry 5 --retry-delay 1 --retry-all-errors "$url"
fi
