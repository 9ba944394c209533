# shellcheck shell=bash
# Chooses the Pulumi toolchain (mode.py) and sets PATH and Pulumi's environment for it; sourced by
# scripts that run `pulumi`. The source build (tooling/toolchain/build.sh) goes on PATH and keeps
# Pulumi offline; a CLI already on PATH is left as it is. Sources platform/env.sh for the shared locations.
_hello_tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../platform/env.sh
. "$_hello_tools_dir/../platform/env.sh"

# hello_pin NAME DEFAULT: the version that requirements.txt pins for NAME (`NAME==X`, any of
# - _ . in the name, extras allowed), or DEFAULT when the file or the line is missing. The
# Python packages and the binaries built from Go modules must agree, so requirements.txt is
# the one place that sets them.
hello_pin() {
  local name=$1 default=$2 req="$_hello_tools_dir/../../requirements.txt" pattern found=""
  pattern=$(printf '%s' "$name" | sed 's/[-_.]/[-_.]/g')
  if [ -f "$req" ]; then
    found=$(sed -nE "s/^[[:space:]]*${pattern}(\[[^]]*\])?[[:space:]]*==[[:space:]]*([^;#[:space:]]+).*/\2/Ip" "$req" | head -n 1)
  fi
  printf '%s\n' "${found:-$default}"
}

HELLO_PULUMI_VERSION=$(hello_pin pulumi 3.260.0)
HELLO_KUBERNETES_VERSION=$(hello_pin pulumi-kubernetes 4.25.0)
HELLO_DOCKER_BUILD_VERSION=$(hello_pin pulumi-docker-build 0.0.22)
HELLO_DOCKER_VERSION=$(hello_pin pulumi-docker 5.2.0)
export HELLO_PULUMI_VERSION HELLO_KUBERNETES_VERSION HELLO_DOCKER_BUILD_VERSION HELLO_DOCKER_VERSION

# The CLI, our Python language host and the SDK's script shims sit together: the engine looks
# for language hosts next to the CLI.
export HELLO_PULUMI_BIN="$HELLO_CACHE/tools/pulumi-v$HELLO_PULUMI_VERSION/bin"
export HELLO_PROVIDERS_DIR="$HELLO_CACHE/tools/providers"

# Where the toolchain comes from (mode.py): a `pulumi` on PATH that the pinned SDK supports is used
# as it is; without one, or with TOOLCHAIN=source, the build from Go modules. TOOLCHAIN is data:
# mode.py validates it, nothing here expands it.
_hello_choice=$(python3 "$_hello_tools_dir/mode.py" choose --pinned "$HELLO_PULUMI_VERSION" --exclude "$HELLO_PULUMI_BIN") ||
  return 1
export HELLO_TOOLCHAIN_MODE=${_hello_choice%%$'\n'*}
export HELLO_TOOLCHAIN_LINE=${_hello_choice#*$'\n'}
unset _hello_choice

export PULUMI_SKIP_UPDATE_CHECK=true
if [ "$HELLO_TOOLCHAIN_MODE" = source ]; then
  case ":$PATH:" in
    *":$HELLO_PULUMI_BIN:"*) ;;
    *) export PATH="$HELLO_PULUMI_BIN:$PATH" ;;
  esac
  # Plugins are installed from local files into this cache; nothing may be downloaded.
  export PULUMI_HOME="$HELLO_CACHE/pulumi-home"
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
else
  # The user's CLI, Pulumi home and plugin downloads, as they are; a source build that an
  # earlier shell put on PATH must not shadow that CLI.
  _hello_path=":$PATH:"
  _hello_path=${_hello_path//":$HELLO_PULUMI_BIN:"/:}
  _hello_path=${_hello_path#:}
  export PATH=${_hello_path%:}
  unset _hello_path
fi
