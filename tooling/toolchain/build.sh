#!/usr/bin/env bash
# Builds the Pulumi toolchain from published Go modules, since no release binary can be
# downloaded here: the CLI, a Python language host, and the kubernetes and docker-build
# provider plugins, installed into the plugin cache of $PULUMI_HOME.
#
# Usage: tooling/toolchain/build.sh [all|cli|language|kubernetes|docker-build|docker-classic]   (default: all)
#
# Versions come from requirements.txt (see tools/env.sh). Each part is skipped when its output
# exists for the same versions and wrapper sources, so a second run takes seconds. Outputs:
#   $HELLO_PULUMI_BIN/{pulumi, pulumi-language-python, SDK script shims}
#   $HELLO_PROVIDERS_DIR/<name>-<version>/pulumi-resource-<name>
# shellcheck disable=SC2317  # go_build and generate_schema run through `say`, which shellcheck cannot follow
set -euo pipefail

TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$TOOLS_DIR/env.sh"

# sum.golang.org is unreachable here; the committed go.sum files pin what the proxy served.
export GOSUMDB=off
BUILD_DIR="$HELLO_CACHE/tools/build"

# The kubernetes provider module has no release tags: the proxy serves one pseudo-version per
# commit. These are the release commits of the provider versions we can pin.
kubernetes_module_version() {
  case $1 in
    4.25.0) echo v4.0.0-20260115033456-f47bc2d6f199 ;; # commit f47bc2d6, the v4.25.0 release
    *) return 1 ;;
  esac
}

# module_dir MODULE@VERSION: where the module's files are in the module cache (downloading it
# if needed); read-only.
module_dir() {
  go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

die() {
  echo "tooling/toolchain/build.sh: $*" >&2
  exit 1
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

# prepare_wrapper PART: copy tooling/toolchain/PART to a scratch dir, where generated files may be added
# and go.mod/go.sum may change without touching the repository. Prints the dir.
prepare_wrapper() {
  local dest="$BUILD_DIR/$1"
  rm -rf "$dest"
  mkdir -p "$BUILD_DIR"
  cp -R "$TOOLS_DIR/$1" "$dest"
  chmod -R u+w "$dest"
  echo "$dest"
}

# go_build DIR OUTPUT LDFLAGS PACKAGE: build to a temporary name, then move, so an interrupted
# build never leaves an output that a later run would take as done. Reniced: other builds
# share these two cores.
go_build() {
  local dir=$1 out=$2 ldflags=$3 pkg=$4
  mkdir -p "$(dirname "$out")"
  (cd "$dir" && nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
  mv -f "$out.tmp" "$out"
  # A new pin changes the wrapper's requirements and checksums: the committed copies should
  # follow, so that the next build verifies against them.
  local part f
  part=$(basename "$dir")
  for f in go.mod go.sum; do
    if ! cmp -s "$dir/$f" "$TOOLS_DIR/$part/$f"; then
      echo "note: $dir/$f differs from tooling/toolchain/$part/$f; copy it over and commit it" >&2
    fi
  done
}

# ambient_pulumi: a pulumi at the pinned version installed elsewhere on PATH, if any.
ambient_pulumi() {
  local p
  p=$(PATH=${PATH//"$HELLO_PULUMI_BIN:"/} command -v pulumi) || return 1
  [ "$("$p" version 2>/dev/null)" = "v$HELLO_PULUMI_VERSION" ] && echo "$p"
}

build_cli() {
  local out="$HELLO_PULUMI_BIN/pulumi" key dir p
  key=$(stamp_key cli "pulumi=$HELLO_PULUMI_VERSION")
  if up_to_date "$out" "$key"; then
    echo "cli: $out is v$HELLO_PULUMI_VERSION, skipped"
    return
  fi
  if p=$(ambient_pulumi); then
    echo "cli: using $p (v$HELLO_PULUMI_VERSION already on PATH), skipped"
    return
  fi
  dir=$(prepare_wrapper cli)
  (cd "$dir" && go mod edit \
    -require="github.com/pulumi/pulumi/pkg/v3@v$HELLO_PULUMI_VERSION" \
    -require="github.com/pulumi/pulumi/sdk/v3@v$HELLO_PULUMI_VERSION")
  say "cli: go build pulumi v$HELLO_PULUMI_VERSION" go_build "$dir" "$out" \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$HELLO_PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  mark_built "$out" "$key"
}

# The Python scripts the engine runs next to the CLI: the exec shim our language host starts
# programs with, and the provider shim for Python dynamic providers. Module-cache files are
# read-only and not executable, hence the copy and chmod.
install_shims() {
  local sdk
  sdk=$(module_dir "github.com/pulumi/pulumi/sdk/v3@v$HELLO_PULUMI_VERSION")
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
  local out="$HELLO_PULUMI_BIN/pulumi-language-python" key dir p
  key=$(stamp_key language-python "pulumi=$HELLO_PULUMI_VERSION")
  if up_to_date "$out" "$key" && [ -x "$HELLO_PULUMI_BIN/pulumi-language-python-exec" ]; then
    echo "language: $out is current, skipped"
    return
  fi
  if p=$(ambient_pulumi) && [ -x "$(dirname "$p")/pulumi-language-python" ]; then
    echo "language: using $(dirname "$p")/pulumi-language-python, skipped"
    return
  fi
  dir=$(prepare_wrapper language-python)
  (cd "$dir" && go mod edit -require="github.com/pulumi/pulumi/sdk/v3@v$HELLO_PULUMI_VERSION")
  say "language: go build pulumi-language-python" go_build "$dir" "$out" \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$HELLO_PULUMI_VERSION" .
  (cd "$dir" && install_shims)
  mark_built "$out" "$key"
}

# install_plugin NAME VERSION BINARY: put a provider into $PULUMI_HOME's plugin cache, where
# the engine finds it by the version the Python package asks for.
install_plugin() {
  local name=$1 version=$2 binary=$3
  local cached="$PULUMI_HOME/plugins/resource-$name-v$version/pulumi-resource-$name"
  if cmp -s "$binary" "$cached"; then
    echo "$name: plugin v$version already installed"
    return
  fi
  command -v pulumi >/dev/null || die "$name: no pulumi on PATH to install the plugin; run tooling/toolchain/build.sh cli"
  say "$name: pulumi plugin install resource $name $version" \
    pulumi plugin install resource "$name" "$version" --file "$binary" --reinstall
}

generate_schema() { # DIR VERSION SOURCE_DIR
  (cd "$1" && go run ./schemaembed "$2" "$3" .)
}

build_kubernetes() {
  local version=$HELLO_KUBERNETES_VERSION mod_version out key dir src
  mod_version=$(kubernetes_module_version "$version") ||
    die "kubernetes: no provider module known for $version; add its release commit's pseudo-version to kubernetes_module_version"
  out="$HELLO_PROVIDERS_DIR/kubernetes-$version/pulumi-resource-kubernetes"
  key=$(stamp_key kubernetes "kubernetes=$version module=$mod_version")
  if up_to_date "$out" "$key"; then
    echo "kubernetes: $out is current, skipped"
  else
    dir=$(prepare_wrapper kubernetes)
    (cd "$dir" && go mod edit -require="github.com/pulumi/pulumi-kubernetes/provider/v4@$mod_version")
    src=$(cd "$dir" && module_dir "github.com/pulumi/pulumi-kubernetes/provider/v4@$mod_version")
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
    dir=$(prepare_wrapper docker-build)
    (cd "$dir" && go mod edit -require="github.com/pulumi/pulumi-docker-build@v$version")
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

main() {
  local target=${1:-all}
  case $target in
    all)
      build_cli
      build_language
      build_kubernetes
      build_docker_build
      pulumi version
      pulumi plugin ls
      ;;
    cli) build_cli ;;
    language) build_language ;;
    kubernetes) build_kubernetes ;;
    docker-build) build_docker_build ;;
    docker-classic) build_docker_classic ;;
    *) die "unknown target '$target'; expected all, cli, language, kubernetes, docker-build or docker-classic" ;;
  esac
}

main "$@"; exit
