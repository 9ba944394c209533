# Helpers shared by the platform scripts: messages, Debian installs, background processes, bounded waits.
# shellcheck shell=bash
# Sourced after env.sh; expects `set -euo pipefail` in the caller.
HELLO_PLATFORM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "error: $*" >&2; exit 1; }
info() { echo "   $*" >&2; }

require_root() {
  [[ $(id -u) -eq 0 ]] || die "$1 must run as root (it installs Debian packages and starts daemons under $HELLO_RUN)"
}

apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -y -qq --no-install-recommends "$@" >/dev/null; }

# apt_install PKG...: install the Debian packages not yet installed, without starting their services.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  info "installing Debian packages: ${missing[*]}"
  # The packages ship init scripts; a policy-rc.d that answers 101 stops
  # invoke-rc.d from starting a system dockerd/containerd/registry that would
  # compete with ours. Keep an existing policy file as it is.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    added_policy=1
  fi
  # A new machine has empty package lists: update them only when the install needs it.
  local rc=0
  apt_get install "${missing[@]}" 2>/dev/null || { apt_get update && apt_get install "${missing[@]}"; } || rc=$?
  [[ $added_policy -eq 1 ]] && rm -f "$policy"
  [[ $rc -eq 0 ]] || die "apt-get install ${missing[*]} failed (exit $rc)"
}

# package_of COMMAND: the Debian package that provides COMMAND, from tooling/platform/commands.tsv.
package_of() {
  awk -v cmd="$1" '$1 == cmd { print $2; found = 1; exit } END { exit !found }' "$HELLO_PLATFORM_DIR/commands.tsv"
}

# require_commands CMD...: make sure every CMD (a name on PATH, or an absolute path) can run,
# installing the packages that provide the missing ones. Stops only when a command has no known
# package or is still missing after the install, and says which.
require_commands() {
  local cmd pkg missing=() packages=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 && continue
    pkg=$(package_of "$cmd") || die "no Debian package known for '$cmd'; add it to tooling/platform/commands.tsv"
    missing+=("$cmd")
    packages+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  info "missing ${missing[*]}"
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
  apt_install "${packages[@]}"
  local still=()
  for cmd in "${missing[@]}"; do command -v "$cmd" >/dev/null 2>&1 || still+=("$cmd"); done
  ((${#still[@]} == 0)) || die "still missing after installing ${packages[*]}: ${still[*]}"
}

# pid_of PIDFILE NAME: print the pid recorded in PIDFILE if that process is alive
# (not a zombie awaiting its reaper) and its command name is NAME, so that a
# recycled pid is not mistaken for ours.
pid_of() {
  local pidfile=$1 name=$2 pid stat
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  # /proc/PID/stat is "PID (COMM) STATE ..."; COMM is at most 15 characters.
  [[ $stat == "$pid ($name) "* && $stat != "$pid ($name) Z"* ]] || return 1
  echo "$pid"
}

# start_background PIDFILE LOG CMD...: run CMD detached from this shell's session,
# output to LOG, its own pid (not a wrapper's) in PIDFILE and in STARTED_PID.
start_background() {
  local pidfile=$1 log=$2
  shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$log")"
  rm -f "$pidfile"
  echo "--- $(date -Is) start: $*" >"$log"
  # The inner shell writes its own pid, then execs CMD in place, so the pid is CMD's.
  # fd 9 (the platform lock) is closed so a daemon never holds the lock.
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$log" 2>&1 </dev/null 9>&- &
  local waited=0
  while [[ ! -s $pidfile ]] && ((waited < 50)); do sleep 0.1; waited=$((waited + 1)); done
  [[ -s $pidfile ]] || die "could not start $1; see $log"
  # shellcheck disable=SC2034 # read by the caller
  STARTED_PID=$(<"$pidfile")
}

# wait_until SECONDS WHAT LOG PID CMD...: poll CMD until it succeeds. Fail, naming
# WHAT and showing the end of LOG, on timeout or as soon as process PID has exited.
wait_until() {
  local timeout=$1 what=$2 log=$3 pid=$4
  shift 4
  local deadline=$((SECONDS + timeout)) problem=
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || wait_gone "$pid" 0; then
      problem="exited"
    elif ((SECONDS >= deadline)); then
      problem="not ready after ${timeout}s"
    fi
    if [[ -n $problem ]]; then
      echo "error: $what $problem; last lines of $log:" >&2
      tail -n 30 "$log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

# stop_pidfile PIDFILE NAME SECONDS: stop the process named in PIDFILE with TERM,
# then KILL after SECONDS; wait until it is gone. No-op when it is not running.
stop_pidfile() {
  local pidfile=$1 name=$2 timeout=$3 pid
  if pid=$(pid_of "$pidfile" "$name"); then
    info "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" "$timeout" || {
      info "$name (pid $pid) still running after ${timeout}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || die "$name (pid $pid) did not exit"
    }
  fi
  rm -f "$pidfile"
}

# wait_gone PID SECONDS: true once PID has exited (zombies count as gone).
wait_gone() {
  local pid=$1 deadline=$((SECONDS + $2)) state
  while true; do
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 0
    [[ $state == Z ]] && return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# mounts_under DIR: mount points at or below DIR, deepest first.
mounts_under() {
  awk -v root="$1" '$5 == root || index($5, root "/") == 1 {print $5}' /proc/self/mountinfo | sort -r
}

# lock_platform: serialise up/down runs so two of them never race on the same daemons.
lock_platform() {
  require_commands flock setsid
  mkdir -p "$HELLO_RUN"
  exec 9>"$HELLO_RUN/platform.lock"
  flock -w 900 9 || die "another platform up/down holds $HELLO_RUN/platform.lock"
}

# random_secret LENGTH: LENGTH random letters and digits.
random_secret() { head -c 64 /dev/urandom | base64 -w0 | tr -d '+/=' | head -c "$1"; }

# ensure_secret_file FILE LENGTH: a generated password in FILE, made once and kept; only root can read it.
ensure_secret_file() {
  local file=$1 length=$2
  [[ -s $file ]] && { chmod 0600 "$file"; return 0; }
  info "generating a password in $file"
  (umask 077 && random_secret "$length" >"$file.tmp")
  mv "$file.tmp" "$file"
}

docker_ours() { docker -H "unix://$HELLO_DOCKER_SOCK" "$@"; }

# port_taken HOST:PORT: something answers there, over TLS or plain HTTP (a registry of someone else's would take
# our pushes).
port_taken() { curl -s -o /dev/null -m 2 -k "https://$1/" || curl -s -o /dev/null -m 2 "http://$1/"; }

# registry_curl CURL-ARGS...: a request to the local registry as its user; the password reaches curl on its
# standard input (a config), never its command line: ps shows those.
registry_curl() {
  local password
  password=$(<"$HELLO_REGISTRY_PASSWORD_FILE")
  password=${password//\\/\\\\}
  password=${password//\"/\\\"}
  printf 'user = "%s:%s"\n' "$HELLO_REGISTRY_USER" "$password" |
    curl -fsS -m 10 -K - --cacert "$HELLO_CA_CERT" "$@"
}

# served_digest REPOSITORY TAG: the digest the local registry serves for REPOSITORY:TAG (a HEAD request); fails,
# printing nothing, when it serves none.
served_digest() {
  local digest
  digest=$(registry_curl -I -o /dev/null -w '%header{docker-content-digest}' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "https://$HELLO_REGISTRY/v2/$1/manifests/$2" 2>/dev/null) || return 1
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || return 1
  echo "$digest"
}

# push_ours REF: push REF from our engine to the local registry, logged in through a Docker config of its own
# (the password on standard input), removed after.
push_ours() {
  local config rc=0
  config=$(mktemp -d)
  {
    DOCKER_CONFIG=$config docker_ours login "$HELLO_REGISTRY" -u "$HELLO_REGISTRY_USER" --password-stdin \
      <"$HELLO_REGISTRY_PASSWORD_FILE" >/dev/null 2>&1 &&
      DOCKER_CONFIG=$config docker_ours push -q "$1" >/dev/null
  } || rc=$?
  rm -rf "$config"
  return $rc
}

# serve NAME ADDRESS_VAR PIDFILE LOG FINGERPRINT_FILE FINGERPRINT ANSWERS EXPECTING -- COMMAND...: keep NAME serving
# on the address held by the variable ADDRESS_VAR. One already running from PIDFILE that ANSWERS and was started from
# the same FINGERPRINT (a hash of what it reads only at start: config, certificates) is left as it is. Otherwise it
# is stopped and COMMAND started in the background (output in LOG); an address someone else serves is refused, as
# it would take the traffic meant for ours. Waits START_TIMEOUT seconds for ANSWERS (EXPECTING says what that is).
serve() {
  local name=$1 address_var=$2 pidfile=$3 log=$4 fingerprint_file=$5 fingerprint=$6 answers=$7 expecting=$8
  [[ $9 == -- ]] || die "serve: expected -- before the command, got '$9'"
  shift 9
  local address=${!address_var} process=${1##*/}
  if pid_of "$pidfile" "$process" >/dev/null && "$answers" &&
    [[ $(cat "$fingerprint_file" 2>/dev/null) == "$fingerprint" ]]; then
    info "$name already running on $address (pid $(<"$pidfile"))"
    return 0
  fi
  stop_pidfile "$pidfile" "$process" "$STOP_TIMEOUT"
  port_taken "$address" &&
    die "something else already serves $address; stop it or set $address_var to a free address"
  start_background "$pidfile" "$log" "$@"
  wait_until "$START_TIMEOUT" "$name on https://$address ($expecting)" "$log" "$STARTED_PID" "$answers"
  echo "$fingerprint" >"$fingerprint_file"
}
