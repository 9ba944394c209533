#!/usr/bin/env bash
# stack.sh STACK COMMAND [ARGS...]: run a pulumi command on a stack of this project,
# against the local file backend, creating the stack and its local secrets on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
stack=${1:?usage: stack.sh STACK COMMAND [ARGS...]}
shift
policy_config=$(mktemp --suffix=.json)
trap 'rm -f "$policy_config"' EXIT
# One Python call (delivery/stack_run.py, through settings/stack_files.py, the one reader of stack files)
# fails, naming the file, when there is no such stack or its file is broken; otherwise it writes the
# stack's policy config and says: this machine's copy of the stack file, whether the local registry's
# password must be stored in it, and whether the stack uses the local platform.
facts=$(.venv/bin/python -m delivery.stack_run prepare "$stack" "$policy_config")
mapfile -t facts <<<"$facts"
config_file=${facts[0]} password=${facts[1]} local_platform=${facts[2]}

source tooling/scripts/backend.sh
# Creating a stack writes its encryption salt into Pulumi.<stack>.yaml: create it beside a scratch copy of
# Pulumi.yaml instead, so that the tracked stack file is never written (the salt goes to this machine's copy).
# A stack the file backend already holds needs no question to the CLI (a CLI start costs 0.2 s).
if ! hello_stack_in_backend "$stack" && ! pulumi stack select --non-interactive "$stack" >/dev/null 2>&1; then
  scratch=$(mktemp -d)
  cp Pulumi.yaml "$scratch/"
  (cd "$scratch" && pulumi stack init --non-interactive --no-select "$stack" >/dev/null)
  rm -rf -- "$scratch"
fi

# Pulumi reads this machine's copy of the stack file (.state/stacks, 0600, ignored by git): the tracked
# file plus this machine's secrets and salt, so that nothing here ever changes the tracked file.
case $1 in
  up | preview | destroy | refresh | import | watch | config) set -- "$@" --config-file "$config_file" ;;
esac

# A stack that builds and pushes to the local registry gets that registry's generated password, as a
# secret, when the copy does not hold it yet (or the platform made a new one); then the copy stays put.
if [[ $password == set ]]; then
  # On standard input, never as an argument: every argument shows in ps.
  printf '%s' "$(<"$HELLO_REGISTRY_PASSWORD_FILE")" |
    pulumi config set --secret registryPassword --config-file "$config_file" --stack "$stack"
  .venv/bin/python -m delivery.stack_run remember-password "$stack"
fi

# Previews and deployments run the policy pack at the stack's enforcement: its policy/config/<stack>.json,
# or every rule mandatory for a stack without one (settings/stack_files.py decides, for every path).
# `pulumi destroy` takes no policy pack: the rules check resources it would create or change, and it makes none.
policy=()
if [[ $1 == preview || $1 == up ]]; then
  policy=(--policy-pack policy --policy-pack-config "$policy_config")
fi
# A deploy held to a review (REVIEWED=<file saved by `make review SAVE=<dir>`>) previews again first, and
# applies nothing when its changes differ from the ones reviewed (delivery/binding.py says how they differ).
if [[ -n ${REVIEWED:-} ]]; then
  if [[ $1 != up ]]; then
    printf 'REVIEWED holds only an up to a review, got %q\n' "$1" >&2
    exit 2
  fi
  .venv/bin/python -m delivery.binding check "$stack" "$REVIEWED"
fi
if [[ $1 == up ]]; then
  # An up whose rollout fails returns the stack to its last verified digest, unless given --no-rollback.
  .venv/bin/python -m delivery.rollback "$stack" "$policy_config" "$@"
else
  pulumi "$@" "${policy[@]}" --non-interactive --stack "$stack"
fi

if [[ $1 == up ]]; then
  port=$(pulumi stack output nodePort --stack "$stack")
  # Only the local platform's node is this machine; another cluster's nodes have addresses we don't know.
  if [[ $local_platform != yes ]]; then
    echo "The service listens on node port $port of every node of the stack's cluster."
    exit 0
  fi
  url="http://127.0.0.1:$port/"
  echo "The service answers at $url:"
  curl --silent --show-error --max-time 5 --retry 5 --retry-delay 1 --retry-all-errors "$url"
fi
