#!/usr/bin/env bash
# Gets the Pulumi toolchain ready. `all` (what `make tools` runs) says in one line which mode
# env.sh chose (mode.py) and why:
# - path: a `pulumi` on PATH that the pinned SDK supports is used as it is, with the language hosts
#   of its install; the pinned provider plugins that its Pulumi home lacks are installed as Pulumi
#   does (`pulumi plugin install`, a download). Nothing is built.
# - source: without one, or with TOOLCHAIN=source, it builds from published Go modules, since no
#   release binary can be downloaded here: the CLI, a Python language host, and the kubernetes and
#   docker-build provider plugins, installed into the plugin cache of $PULUMI_HOME.
#
# Usage: tooling/toolchain/build.sh [all|ready|cli|language|kubernetes|docker-build|docker-classic]   (default: all)
#        `ready` is `all` without the closing `pulumi version` and `pulumi plugin ls`: for make
#        targets that need the tools and run pulumi next.
#        tooling/toolchain/build.sh refresh-sums [cli|language|kubernetes|docker-build]...   (default: all four)
#        tooling/toolchain/build.sh cli-as VERSION DIR   (the pinned CLI stamped as VERSION, for tests of the path mode)
#
# Versions come from requirements.txt (see env.sh). Each part is skipped when its output
# exists for the same versions and wrapper sources, so a second run takes seconds. Outputs:
#   $HELLO_PULUMI_BIN/{pulumi, pulumi-language-python, SDK script shims}
#   $HELLO_PROVIDERS_DIR/<name>-<version>/pulumi-resource-<name>
#
# Each part builds from its wrapper module (tooling/toolchain/<part>/), whose go.mod already
# requires the pinned versions and whose go.sum holds every checksum the build needs: the build
# fails on anything else (see gomod.sh). `refresh-sums` is the one step that writes them: after
# a pin changes in requirements.txt, run it, review the diff and commit it.
# shellcheck disable=SC2317  # go_build and generate_schema run through `say`, which shellcheck cannot follow
set -euo pipefail

TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$TOOLS_DIR/env.sh"

# gomod_lock, gomod_run, gomod_require_pin, gomod_check_unchanged, gomod_refresh; GOSUMDB=off
# shellcheck source-path=SCRIPTDIR source=gomod.sh
. "$TOOLS_DIR/gomod.sh"
# unchanged_since, record_unchanged
# shellcheck source=../platform/unchanged.sh
. "$TOOLS_DIR/../platform/unchanged.sh"
BUILD_DIR="$HELLO_CACHE/tools/build"
REFRESH="tooling/toolchain/build.sh refresh-sums"

# The kubernetes provider module has no release tags: the proxy serves one pseudo-version per
# commit. These are the release commits of the provider versions we can pin.
kubernetes_module_version() {
  case $1 in
    4.25.0) echo v4.0.0-20260115033456-f47bc2d6f199 ;; # commit f47bc2d6, the v4.25.0 release
    *) return 1 ;;
  esac
}

die() {
  echo "tooling/toolchain/build.sh: $*" >&2
  exit 1
}

# kubernetes_pin: the provider module version for the pinned pulumi-kubernetes.
kubernetes_pin() {
  kubernetes_module_version "$HELLO_KUBERNETES_VERSION" ||
    die "kubernetes: no provider module known for $HELLO_KUBERNETES_VERSION; add its release commit's pseudo-version to kubernetes_module_version"
}

# stamp_key PART VERSIONS...: what an output was built from (versions plus a hash of the
# wrapper's files), stored next to it so a changed pin or wrapper triggers a rebuild.
stamp_key() {
  local dir="$TOOLS_DIR/$1"
  shift
  printf '%s %s\n' "$*" "$(cd "$dir" && find . -type f ! -name go.sum -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
}

stamp_file() { echo "$(dirname "$1")/.$(basename "$1").stamp"; }

up_to_date() { # OUTPUT KEY
  [ -x "$1" ] && [ "$(cat "$(stamp_file "$1")" 2>/dev/null)" = "$2" ]
}

mark_built() { # OUTPUT KEY
  echo "$2" >"$(stamp_file "$1")"
}

# prepare_wrapper PART: copy tooling/toolchain/PART to a scratch dir, where generated files may
# be added without touching the repository. Prints the dir.
prepare_wrapper() { gomod_prepare "$TOOLS_DIR/$1" "$BUILD_DIR/$1"; }

# pins_of PART: the MODULE@VERSION requirements that requirements.txt sets for wrapper PART.
pins_of() {
  case $1 in
    cli) echo "github.com/pulumi/pulumi/pkg/v3@v$HELLO_PULUMI_VERSION github.com/pulumi/pulumi/sdk/v3@v$HELLO_PULUMI_VERSION" ;;
    language-python) echo "github.com/pulumi/pulumi/sdk/v3@v$HELLO_PULUMI_VERSION" ;;
    kubernetes)
      local mod_version
      mod_version=$(kubernetes_pin) || return 1
      echo "github.com/pulumi/pulumi-kubernetes/provider/v4@$mod_version"
      ;;
    docker-build) echo "github.com/pulumi/pulumi-docker-build@v$HELLO_DOCKER_BUILD_VERSION" ;;
  esac
}

# require_pins PART: the committed wrapper must already require every version pins_of gives.
# Editing the requirements at build time (`go mod edit -require`, as this script once did) would
# need checksums that the committed go.sum does not hold for a new pin. Failing instead keeps
# one path that writes go.sum (refresh-sums) and builds exactly what was reviewed.
require_pins() {
  local part=$1 pins pin
  pins=$(pins_of "$part")
  for pin in $pins; do
    gomod_require_pin "$TOOLS_DIR/$part" "${pin%@*}" "${pin#*@}" "$REFRESH $(target_of "$part")"
  done
}

# target_of PART: the build.sh target that builds wrapper PART.
target_of() { [[ $1 == language-python ]] && echo language || echo "$1"; }

# go_in DIR CMD...: run the go command CMD in DIR, a scratch copy of a wrapper, explaining a
# failure over its checksums (gomod_run).
go_in() {
  local dir=$1 part
  shift
  part=$(basename "$dir")
  (cd "$dir" && gomod_run "$TOOLS_DIR/$part" "$REFRESH $(target_of "$part")" "$@")
}

# go_build DIR OUTPUT LDFLAGS PACKAGE: build to a temporary name, then move, so an interrupted
# build never leaves an output that a later run would take as done. Reniced: other builds
# share these two cores. The output is kept only if the wrapper's go.mod and go.sum are as
# committed.
go_build() {
  local dir=$1 out=$2 ldflags=$3 pkg=$4 part
  part=$(basename "$dir")
  mkdir -p "$(dirname "$out")"
  go_in "$dir" nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg"
  gomod_check_unchanged "$dir" "$TOOLS_DIR/$part" "$REFRESH $(target_of "$part")"
  mv -f "$out.tmp" "$out"
}

# link_cli OUT VERSION STEP: the pinned CLI's sources built into OUT, reporting VERSION; STEP names
# the step in the log. Skipped when OUT was already built so.
link_cli() {
  local out=$1 version=$2 step=$3 key dir
  key=$(stamp_key cli "pulumi=$HELLO_PULUMI_VERSION as=$version")
  if up_to_date "$out" "$key"; then
    echo "$step: $out is v$version, skipped"
    return
  fi
  require_pins cli
  dir=$(prepare_wrapper cli)
  say "$step: go build pulumi v$HELLO_PULUMI_VERSION as v$version" go_build "$dir" "$out" \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$version" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  mark_built "$out" "$key"
}

build_cli() {
  link_cli "$HELLO_PULUMI_BIN/pulumi" "$HELLO_PULUMI_VERSION" cli
}

# The Python scripts the engine runs next to the CLI: the exec shim our language host starts
# programs with, and the provider shim for Python dynamic providers. Module-cache files are
# read-only and not executable, hence the copy and chmod.
install_shims() { # WRAPPER_DIR
  local sdk
  sdk=$(gomod_module_dir "$1" "github.com/pulumi/pulumi/sdk/v3@v$HELLO_PULUMI_VERSION" "$REFRESH language")
  [ -d "$sdk/python" ] || die "sdk/v3@v$HELLO_PULUMI_VERSION has no python/ directory"
  mkdir -p "$HELLO_PULUMI_BIN"
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" \
    "$sdk/python/dist/pulumi-resource-pulumi-python" "$HELLO_PULUMI_BIN/"
  # Older SDKs also shipped a policy analyzer shim; newer engines run Python policy packs
  # through the language host (RunPlugin) instead.
  if [ -f "$sdk/python/dist/pulumi-analyzer-policy-python" ]; then
    install -m 0755 "$sdk/python/dist/pulumi-analyzer-policy-python" "$HELLO_PULUMI_BIN/"
  fi
}

# The upstream language host's module is not served by the proxy, so we build our own
# (tooling/toolchain/language-python) against the published SDK; see its main.go.
build_language() {
  local out="$HELLO_PULUMI_BIN/pulumi-language-python" key dir
  key=$(stamp_key language-python "pulumi=$HELLO_PULUMI_VERSION")
  if up_to_date "$out" "$key" && [ -x "$HELLO_PULUMI_BIN/pulumi-language-python-exec" ]; then
    echo "language: $out is current, skipped"
    return
  fi
  require_pins language-python
  dir=$(prepare_wrapper language-python)
  say "language: go build pulumi-language-python" go_build "$dir" "$out" \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$HELLO_PULUMI_VERSION" .
  install_shims "$dir"
  mark_built "$out" "$key"
}

# install_plugin NAME VERSION BINARY: put a provider into $PULUMI_HOME's plugin cache, where
# the engine finds it by the version the Python package asks for, byte for byte BINARY. A provider
# is 80-300 MB: the comparison is skipped while neither file changed since the last one found
# them equal.
install_plugin() {
  local name=$1 version=$2 binary=$3
  local cached="$PULUMI_HOME/plugins/resource-$name-v$version/pulumi-resource-$name"
  local compared
  compared="$(dirname "$binary")/.$(basename "$binary").installed"
  if unchanged_since "$compared" "$binary" "$cached" ||
    { cmp -s "$binary" "$cached" && record_unchanged "$compared" "$binary" "$cached"; }; then
    echo "$name: plugin v$version already installed"
    return
  fi
  command -v pulumi >/dev/null || die "$name: no pulumi on PATH to install the plugin; run tooling/toolchain/build.sh cli"
  say "$name: pulumi plugin install resource $name $version" \
    pulumi plugin install resource "$name" "$version" --file "$binary" --reinstall
}

# no_automatic_logs: the CLI (3.260) writes a debug-level log of every command, unasked, into
# $PULUMI_HOME/logs, up to 500 MB. Its records are compressed and encrypted as they come: a third of
# the engine's CPU in a preview, about 20 ms per WebService (`make bench`). A file where that folder
# would be turns it off (the CLI says "automatic logging unavailable" at -v and goes on); -v and
# --logtostderr still log on request. Only in the Pulumi home the source build owns, and only the logs
# its CLI wrote there are removed; a user's own Pulumi home is left as it is.
no_automatic_logs() {
  local logs="$PULUMI_HOME/logs"
  [[ -f $logs && ! -L $logs ]] && return
  rm -rf -- "$logs"
  mkdir -p -- "$PULUMI_HOME"
  : >"$logs"
  echo "cli: automatic logs off in $PULUMI_HOME"
}

generate_schema() { # DIR VERSION SOURCE_DIR
  go_in "$1" go run ./schemaembed "$2" "$3" .
}

build_kubernetes() {
  local version=$HELLO_KUBERNETES_VERSION mod_version out key dir src
  mod_version=$(kubernetes_pin)
  out="$HELLO_PROVIDERS_DIR/kubernetes-$version/pulumi-resource-kubernetes"
  key=$(stamp_key kubernetes "kubernetes=$version module=$mod_version")
  if up_to_date "$out" "$key"; then
    echo "kubernetes: $out is current, skipped"
  else
    require_pins kubernetes
    dir=$(prepare_wrapper kubernetes)
    src=$(gomod_module_dir "$dir" "github.com/pulumi/pulumi-kubernetes/provider/v4@$mod_version" "$REFRESH kubernetes")
    # The embedded schema is generated, as upstream's `go generate` does, into the scratch dir
    # only: it is 5 MB of build output, never committed.
    say "kubernetes: generate embedded schema" \
      generate_schema "$dir" "$version" "$src/cmd/pulumi-resource-kubernetes"
    say "kubernetes: go build pulumi-resource-kubernetes $version" go_build "$dir" "$out" \
      "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$version" .
    mark_built "$out" "$key"
  fi
  install_plugin kubernetes "$version" "$out"
}

build_docker_build() {
  local version=$HELLO_DOCKER_BUILD_VERSION out key dir
  out="$HELLO_PROVIDERS_DIR/docker-build-$version/pulumi-resource-docker-build"
  key=$(stamp_key docker-build "docker-build=$version")
  if up_to_date "$out" "$key"; then
    echo "docker-build: $out is current, skipped"
  else
    require_pins docker-build
    dir=$(prepare_wrapper docker-build)
    say "docker-build: go build pulumi-resource-docker-build $version" go_build "$dir" "$out" \
      "-X github.com/pulumi/pulumi-docker-build/provider.Version=$version" \
      github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build
    mark_built "$out" "$key"
  fi
  install_plugin docker-build "$version" "$out"
}

# The classic docker provider cannot be built from published modules: its provider module
# (github.com/pulumi/pulumi-docker/provider/v4) is not served by the proxy at any version, and
# its go.mod replaces the terraform provider with ../upstream, a patched git submodule that no
# module carries. This part only re-checks the first point, so a change is noticed.
build_docker_classic() {
  local module=github.com/pulumi/pulumi-docker/provider/v4
  # Outside any module, so that only the proxy is asked.
  if (cd / && GOFLAGS='' go list -m -versions "$module" 2>&1); then
    die "docker-classic: $module is served now; a wrapper could be tried (its ../upstream replace still blocks it)"
  fi
  die "docker-classic: $module $HELLO_DOCKER_VERSION cannot be built: the module proxy does not serve it"
}

# install_missing_plugins: in the path mode, the pinned provider plugins that the Pulumi home lacks,
# installed the way Pulumi installs them (a download; `pulumi plugin install` would first ask the
# registry even for one it has, hence the check).
install_missing_plugins() {
  local listed missing name version
  listed=$(pulumi plugin ls --json) || die "plugins: \`pulumi plugin ls --json\` failed"
  missing=$(python3 "$TOOLS_DIR/mode.py" missing-plugins "kubernetes=$HELLO_KUBERNETES_VERSION" \
    "docker-build=$HELLO_DOCKER_BUILD_VERSION" <<<"$listed")
  if [[ -z $missing ]]; then
    echo "plugins: kubernetes $HELLO_KUBERNETES_VERSION and docker-build $HELLO_DOCKER_BUILD_VERSION already installed"
    return
  fi
  while read -r name version; do
    say "$name: pulumi plugin install resource $name $version" pulumi plugin install resource "$name" "$version"
  done <<<"$missing"
}

# build_cli_as VERSION DIR: the pinned CLI's sources linked as VERSION (only the version stamp
# differs, so the warm Go cache makes it a link), into DIR with the language host and shims beside
# it as a release install has them. Tests put DIR on PATH to run the path mode with a CLI whose
# version is not the pin.
build_cli_as() {
  local version=${1:-} dir=${2:-}
  [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
    die "cli-as: VERSION must be a semantic version such as 3.261.0, got '$version'"
  [[ $dir == /* ]] || die "cli-as: DIR must be an absolute path, got '$dir'"
  [[ -x $HELLO_PULUMI_BIN/pulumi-language-python ]] ||
    die "cli-as: no language host in $HELLO_PULUMI_BIN to put beside the CLI; run tooling/toolchain/build.sh language"
  link_cli "$dir/pulumi" "$version" cli-as
  find "$HELLO_PULUMI_BIN" -maxdepth 1 -type f -name 'pulumi-*' -exec install -m 0755 -t "$dir" {} +
}

# refresh_sums TARGET...: move each wrapper's go.mod to the versions requirements.txt pins and
# write its go.sum from the module proxy (go mod tidy), for review. Never run by a build.
refresh_sums() {
  local target part pins pin dir
  (($# > 0)) || set -- cli language kubernetes docker-build
  for target in "$@"; do
    case $target in
      cli | kubernetes | docker-build) part=$target ;;
      language) part=language-python ;;
      *) die "refresh-sums: unknown part '$target'; expected cli, language, kubernetes or docker-build" ;;
    esac
    pins=$(pins_of "$part")
    dir=$(prepare_wrapper "$part")
    for pin in $pins; do
      (cd "$dir" && go mod edit -require="$pin")
    done
    say "$target: refresh-sums (tidy from the module proxy)" gomod_refresh "$dir" "$TOOLS_DIR/$part"
  done
}

main() {
  local target=${1:-all}
  # The path mode builds nothing, so it never waits for a build that holds the lock.
  if [[ ($target != all && $target != ready) || $HELLO_TOOLCHAIN_MODE != path ]]; then
    gomod_lock toolchain
  fi
  case $target in
    all | ready)
      echo "$HELLO_TOOLCHAIN_LINE"
      if [[ $HELLO_TOOLCHAIN_MODE == path ]]; then
        install_missing_plugins
      else
        build_cli
        build_language
        build_kubernetes
        build_docker_build
        no_automatic_logs
      fi
      # Two CLI starts (0.3 s) to show what the lines above already say; `ready` leaves them to
      # the pulumi command that the make target runs next.
      if [[ $target == all ]]; then
        pulumi version
        pulumi plugin ls
      fi
      ;;
    cli) build_cli ;;
    language) build_language ;;
    kubernetes) build_kubernetes ;;
    docker-build) build_docker_build ;;
    docker-classic) build_docker_classic ;;
    refresh-sums) shift; refresh_sums "$@" ;;
    cli-as) shift; build_cli_as "$@" ;;
    *) die "unknown target '$target'; expected all, ready, cli, language, kubernetes, docker-build, docker-classic, refresh-sums or cli-as" ;;
  esac
}

main "$@"; exit
