#!/usr/bin/env bash
# Security scans with pinned, published scanners; exits non-zero on any finding not accepted
# in tooling/scan/.hadolint.yaml or tooling/scan/.checkov.yaml.
#
#   tooling/scan/run.sh dockerfile [FILE]   hadolint and checkov on FILE (default app/Dockerfile)
#   tooling/scan/run.sh manifests DIR       checkov on the Kubernetes manifests under DIR
#                                   (make render STACK=<stack> OUT=DIR)
#   tooling/scan/run.sh install             only install the scanners
#
# The scanners live in their own venv, $HELLO_PULUMI_SCAN_VENV (default
# ~/.cache/hello-pulumi/scan-venv), created with $PYTHON (default python3) and reinstalled
# whenever tooling/scan/requirements.txt or constraints.txt change.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${HELLO_PULUMI_SCAN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hello-pulumi/scan-venv}
PYTHON=${PYTHON:-python3}

usage() {
	sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

pins_digest() {
	cat "$HERE/requirements.txt" "$HERE/constraints.txt" | sha256sum | cut -d' ' -f1
}

installed() {
	[[ -x $VENV/bin/checkov && -x $VENV/bin/hadolint && "$(cat "$VENV/.pins" 2>/dev/null)" == "$(pins_digest)" ]]
}

install() {
	installed && return 0
	mkdir -p "$(dirname "$VENV")"
	# Tests and people may start scans at the same time: one installs, the others wait.
	(
		flock 9
		installed && exit 0
		echo "scan: installing the pinned scanners into $VENV" >&2
		[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
		"$VENV/bin/pip" install --quiet --disable-pip-version-check \
			-r "$HERE/requirements.txt" -c "$HERE/constraints.txt"
		pins_digest >"$VENV/.pins"
	) 9>"$VENV.lock"
}

checkov() {
	# --skip-download: never call Prisma Cloud; only the checks shipped in the package run.
	"$VENV/bin/checkov" --config-file "$HERE/.checkov.yaml" --skip-download "$@"
}

scan_dockerfile() {
	local file=${1:-$ROOT/app/Dockerfile} status=0
	[[ -f $file ]] || { echo "scan: no Dockerfile at $file" >&2; exit 2; }
	echo "== hadolint $file"
	"$VENV/bin/hadolint" --no-color --config "$HERE/.hadolint.yaml" "$file" || status=1
	echo "== checkov (dockerfile) $file"
	checkov --framework dockerfile --file "$file" || status=1
	return "$status"
}

scan_manifests() {
	local dir=${1:-}
	[[ -n $dir ]] || usage
	[[ -d $dir ]] || { echo "scan: no directory $dir" >&2; exit 2; }
	# The provider's render mode writes into subfolders (1-manifest/), so look recursively.
	[[ -n $(find "$dir" -name '*.yaml' -print -quit) ]] || { echo "scan: no *.yaml manifests under $dir" >&2; exit 2; }
	echo "== checkov (kubernetes) $dir"
	checkov --framework kubernetes --directory "$dir"
}

case "${1:-}" in
install) install ;;
dockerfile) install && scan_dockerfile "${2:-}" ;;
manifests) install && scan_manifests "${2:-}" ;;
*) usage ;;
esac
