# shellcheck shell=bash
# Builds from committed Go wrapper modules, shared by tooling/toolchain/build.sh, the platform's daemons
# (buildkit.sh, state-store.sh, ingress.sh, cluster/netpol.sh: gomod_build) and tooling/platform/cluster/build.sh:
# one lock per part, and go commands that use only the checksums committed in the wrapper's go.sum.
#
# Sourced after platform/env.sh, whose GOFLAGS=-mod=readonly makes a go command fail on a
# checksum or requirement the wrapper lacks instead of adding it. sum.golang.org is unreachable
# here, so nothing can vouch for a first download: the committed go.sum is the only record of
# what the proxy served, and gomod_refresh (each script's `refresh-sums` target) is the one
# path that writes it, on purpose, for a person to review and commit.
export GOSUMDB=off

# How long a build waits for another build of the same part (seconds). A cold Kubernetes build
# takes up to 45 minutes on two cores; waiting for it beats building the same thing twice.
: "${HELLO_BUILD_LOCK_WAIT:=3600}"

GOMOD_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

gomod_fail() {
  echo "error: $*" >&2
  exit 1
}

# gomod_rel PATH: PATH relative to the repository, for messages.
gomod_rel() { echo "${1#"$GOMOD_REPO"/}"; }

# gomod_lock PART: hold $HELLO_CACHE/locks/PART.lock until this shell exits, so that two builds
# of PART at once never write the same outputs. Waits at most HELLO_BUILD_LOCK_WAIT seconds for
# a build that holds it. Take it in a subshell when the script later starts a daemon, which
# would otherwise inherit the lock.
gomod_lock() {
  local part=$1 lock holder
  lock=$HELLO_CACHE/locks/$part.lock
  mkdir -p "${lock%/*}"
  exec {GOMOD_LOCK_FD}>>"$lock"
  if ! flock -n "$GOMOD_LOCK_FD"; then
    holder=$(cat "$lock" 2>/dev/null || true)
    echo ">> $part: another $part build holds $lock (${holder:-holder unknown}); waiting up to ${HELLO_BUILD_LOCK_WAIT}s" >&2
    flock -w "$HELLO_BUILD_LOCK_WAIT" "$GOMOD_LOCK_FD" ||
      gomod_fail "$part: another $part build still holds $lock after ${HELLO_BUILD_LOCK_WAIT}s (${holder:-holder unknown}); let it finish, or stop it, and run again (HELLO_BUILD_LOCK_WAIT sets the wait)"
  fi
  # Who holds it, for the message of a build that waits; the lock itself is the flock.
  { echo "pid $BASHPID ($0), since $(date -Is)" >"$lock"; } 2>/dev/null || true
}

# gomod_prepare WRAPPER DEST: copy the committed wrapper module to the scratch dir DEST, where
# generated files may be added without touching the repository. Prints DEST.
gomod_prepare() {
  local wrapper=$1 dest=$2
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  cp -R "$wrapper" "$dest"
  chmod -R u+w "$dest"
  echo "$dest"
}

# gomod_required WRAPPER MODULE: the version WRAPPER/go.mod requires of MODULE (empty if none).
gomod_required() {
  local pattern=${2//./\\.}
  sed -nE "s#^(require[[:space:]]+|[[:space:]]+)${pattern}[[:space:]]+(v[^[:space:]]*).*#\2#p" "$1/go.mod" | head -n 1
}

# gomod_require_pin WRAPPER MODULE VERSION REFRESH: fail unless the committed WRAPPER/go.mod
# already requires MODULE at VERSION, the version the scripts pin, naming the REFRESH command
# that moves the wrapper (go.mod and go.sum) to it.
gomod_require_pin() {
  local wrapper=$1 module=$2 want=$3 refresh=$4 have
  have=$(gomod_required "$wrapper" "$module")
  [[ $have == "$want" ]] && return 0
  gomod_fail "$(gomod_rel "$wrapper")/go.mod requires $module ${have:-at no version}, but the build pins $want; to move the wrapper to $want on purpose, run \`$refresh\`, review \`git diff -- $(gomod_rel "$wrapper")\` and commit go.mod and go.sum"
}

# gomod_explain WRAPPER REFRESH LOG: when LOG (a failed go command's stderr) shows a checksum or
# requirement that WRAPPER's committed go.mod/go.sum lack or contradict, name the modules and
# the REFRESH command. Go's own hint (go get, go mod download) would write go.sum in passing.
gomod_explain() {
  local wrapper=$1 refresh=$2 log=$3 found
  found=$(sed -nE \
    -e 's/.*missing go\.sum entry for module providing package ([^ ]+).*/  - the module providing package \1: no checksum of its files (h1:)/p' \
    -e 's/(^|.* )([^ ]+@[^ :]+): missing go\.sum entry for go\.mod file.*/  - \2: no checksum of its go.mod (\/go.mod h1:)/p' \
    -e 's/.*verifying ([^ ]+@[^ :]+): checksum mismatch.*/  - \1: what the proxy served does not match the committed checksum/p' \
    -e 's/.*updates to go\.mod needed.*/  - go.mod: a requirement is missing or out of date/p' "$log" | sort -u)
  [[ -n $found ]] || return 0
  cat >&2 <<EOF
error: the committed go.mod and go.sum of $(gomod_rel "$wrapper") do not cover this build:
$found
Builds use only committed checksums (GOFLAGS=-mod=readonly; GOSUMDB=off, as sum.golang.org is
unreachable): do not run the \`go get\` or \`go mod download\` that go suggests.
To change the sums on purpose: $refresh
then review \`git diff -- $(gomod_rel "$wrapper")\` and commit it.
EOF
}

# gomod_run WRAPPER REFRESH CMD...: run a go command, its output shown as it comes; when it
# fails over the wrapper's checksums or requirements, explain (gomod_explain).
gomod_run() {
  local wrapper=$1 refresh=$2 log rc=0
  shift 2
  log=$(mktemp)
  { "$@" 2>&1 1>&3 3>&- | tee "$log" >&2; } 3>&1 || rc=$?
  ((rc == 0)) || gomod_explain "$wrapper" "$refresh" "$log"
  rm -f "$log"
  return "$rc"
}

# gomod_check_unchanged SCRATCH WRAPPER REFRESH: fail when go.mod or go.sum in the scratch copy
# SCRATCH differ from the committed WRAPPER's: no go command of a build may write them, so a
# difference means one did, and what it wrote was never reviewed.
gomod_check_unchanged() {
  local scratch=$1 wrapper=$2 refresh=$3 f changed=()
  for f in go.mod go.sum; do
    cmp -s "$scratch/$f" "$wrapper/$f" || changed+=("$f")
  done
  ((${#changed[@]} == 0)) && return 0
  for f in "${changed[@]}"; do diff -u "$wrapper/$f" "$scratch/$f" >&2 || true; done
  gomod_fail "the build changed ${changed[*]} of its copy of $(gomod_rel "$wrapper") ($scratch); builds must not add or change checksums. To change them on purpose, run \`$refresh\`, review \`git diff -- $(gomod_rel "$wrapper")\` and commit it"
}

# gomod_build PART WRAPPER MODULE VERSION PACKAGE BIN REFRESH [GO_BUILD_FLAG...]: build the main PACKAGE from
# a scratch copy of the committed WRAPPER, which must require MODULE at VERSION, to BIN, unless BIN exists.
# Holds PART's build lock meanwhile (a subshell: a daemon the caller starts next never inherits it). Every
# module is resolved first, so a missing checksum stops the build before a long compile; BIN is kept only if
# the copy's go.mod and go.sum are still as committed. CGO_ENABLED and the like come from the environment.
gomod_build() (
  local part=$1 wrapper=$2 module=$3 version=$4 pkg=$5 bin=$6 refresh=$7 dir
  shift 7
  [[ -x $bin ]] && exit 0
  gomod_lock "$part"
  [[ -x $bin ]] && exit 0 # built by the run we waited for
  gomod_require_pin "$wrapper" "$module" "$version" "$refresh"
  dir=$(gomod_prepare "$wrapper" "$HELLO_CACHE/build/$part")
  mkdir -p "$(dirname "$bin")"
  cd "$dir" || exit 1
  say "resolving $part $version modules" gomod_run "$wrapper" "$refresh" go list -deps "$pkg" >/dev/null
  say "building $part $version from its Go module" \
    gomod_run "$wrapper" "$refresh" go build -trimpath "$@" -o "$bin.tmp" "$pkg"
  gomod_check_unchanged "$dir" "$wrapper" "$refresh"
  mv -f "$bin.tmp" "$bin"
)

# gomod_module_dir WRAPPER MODULE@VERSION REFRESH: where the module's files are in the module
# cache, downloaded if needed; read-only. Only for a module whose checksum WRAPPER/go.sum holds,
# so that the download is verified against it (`go mod download M@V` never writes go.sum).
gomod_module_dir() {
  local wrapper=$1 module=${2%@*} version=${2#*@} refresh=$3
  grep -qF "$module $version h1:" "$wrapper/go.sum" ||
    gomod_fail "$(gomod_rel "$wrapper")/go.sum has no checksum for $module $version, so its files cannot be verified; to add it on purpose, run \`$refresh\`, review the diff and commit it"
  (cd "$wrapper" && go mod download -json "$2") | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# gomod_refresh SCRATCH WRAPPER: the one place that writes a wrapper's go.sum. Tidies SCRATCH, a
# copy of WRAPPER with the wanted requirements, from the module proxy, then copies its go.mod
# and go.sum into WRAPPER for review.
gomod_refresh() {
  local scratch=$1 wrapper=$2
  (cd "$scratch" && go mod tidy)
  cp "$scratch/go.mod" "$scratch/go.sum" "$wrapper/"
  echo ">> refreshed $(gomod_rel "$wrapper")/go.mod and go.sum from $(go env GOPROXY) (no checksum database vouches for them): review \`git diff -- $(gomod_rel "$wrapper")\`, then commit" >&2
}
