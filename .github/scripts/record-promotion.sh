#!/usr/bin/env bash
# Records on main what `make promote FROM TO` deployed: the target's Pulumi.<stack>.yaml, which the promotion
# writes only once the target is deployed. A promotion that changed nothing ("already runs") records nothing and
# succeeds; a push that main refuses (main moved) is retried once on top of main; if that fails too, the job
# fails saying that the target runs the promoted image unrecorded, with the commit to apply by hand.
# Writes commit=<sha> (what the next job checks out) and promoted=true|false to $GITHUB_OUTPUT.
set -euo pipefail

from=${1:?usage: record-promotion.sh FROM TO} to=${2:?usage: record-promotion.sh FROM TO}
file="Pulumi.$to.yaml"
summary=${GITHUB_STEP_SUMMARY:-/dev/null}
output=${GITHUB_OUTPUT:-/dev/null}

say() { printf '%s\n' "$*" | tee -a "$summary"; }

if git diff --quiet -- "$file"; then
  say "Nothing was promoted from $from to $to: $to already runs that image, so there is nothing to record."
  printf 'commit=%s\npromoted=false\n' "$(git rev-parse HEAD)" >>"$output"
  exit 0
fi
git config user.name "github-actions"
git config user.email "github-actions@users.noreply.github.com"
git commit --quiet -m "Promote $from to $to" -- "$file"
for attempt in 1 2; do
  if git push --quiet origin HEAD:main; then
    say "Promoted from $from to $to, recorded on main as $(git rev-parse --short HEAD)."
    printf 'commit=%s\npromoted=true\n' "$(git rev-parse HEAD)" >>"$output"
    exit 0
  fi
  [[ $attempt == 1 ]] || break
  # main moved since the checkout: put the record on top of it, unless it changed the same file.
  git fetch --quiet origin main
  if ! git rebase --quiet origin/main; then
    git rebase --abort
    break
  fi
done
echo "::error::$to runs the image promoted from $from, but main refused its record ($file): it is deployed and" \
  "NOT recorded; apply the commit below to main by hand (git am), or the next promotion will not know what runs"
{
  printf '%s runs the image promoted from %s, but main refused its record. Apply this to main:\n\n```\n' "$to" "$from"
  git format-patch -1 --stdout HEAD
  printf '```\n'
} | tee -a "$summary"
exit 1
