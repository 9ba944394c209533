"""Go builds under tooling/ use only the checksums committed in their wrapper modules (tooling/toolchain/gomod.sh)."""

from __future__ import annotations

import fcntl
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

TOOLING = ROOT / "tooling"
GOMOD_SH = TOOLING / "toolchain" / "gomod.sh"
ENV_SH = TOOLING / "platform" / "env.sh"
# The wrapper modules that build.sh, buildkit.sh and cluster/build.sh build from; other scripts may add more.
BUILD_WRAPPERS = (
    "tooling/toolchain/cli",
    "tooling/toolchain/language-python",
    "tooling/toolchain/kubernetes",
    "tooling/toolchain/docker-build",
    "tooling/platform/buildkit",
    "tooling/platform/state-store",
    "tooling/platform/ingress",
    "tooling/platform/cluster/wrapper/kubernetes",
    "tooling/platform/cluster/wrapper/etcd",
)
BUILD_SCRIPTS = {
    "tooling/toolchain/build.sh": "toolchain",
    "tooling/platform/buildkit.sh": "buildkit",
    "tooling/platform/state-store.sh": "versitygw",
    "tooling/platform/ingress.sh": "traefik",
    "tooling/platform/cluster/build.sh": "cluster",
    "tooling/platform/cluster/netpol.sh": "kube-router",
}
REFRESH = "tooling/toolchain/build.sh refresh-sums language"
GO_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class GoMod:
    """The directives of a go.mod that decide which checksums go.sum must hold."""

    requires: dict[str, str]
    """Required module path -> version."""
    replaces: dict[tuple[str, str | None], tuple[str, str | None]]
    """(path, version or None for every version) -> (replacement path, version or None for a local dir)."""

    def checksummed(self) -> Iterator[tuple[str, str]]:
        """(path, version) of every required module as downloaded, replacements applied, local dirs left out."""
        for path, version in self.requires.items():
            target = self.replaces.get((path, version)) or self.replaces.get((path, None)) or (path, version)
            if target[1] is not None:
                yield target[0], target[1]


def parse_go_mod(text: str) -> GoMod:
    requires: dict[str, str] = {}
    replaces: dict[tuple[str, str | None], tuple[str, str | None]] = {}
    block = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if line.endswith("("):
            block = line.split()[0]
            continue
        if line == ")":
            block = None
            continue
        if block:
            verb, rest = block, line
        else:
            verb, _, rest = line.partition(" ")
        if verb == "require":
            path, version = rest.split()[:2]
            requires[path] = version
        elif verb == "replace":
            old, new = (side.split() for side in rest.split("=>"))
            replaces[(old[0], old[1] if len(old) > 1 else None)] = (new[0], new[1] if len(new) > 1 else None)
    return GoMod(requires, replaces)


def go_sum_keys(wrapper: Path) -> set[tuple[str, str]]:
    """(path, version) of every go.sum line; a go.mod checksum has version `<v>/go.mod`."""
    return {(line.split()[0], line.split()[1]) for line in (wrapper / "go.sum").read_text().splitlines() if line}


def tracked(pattern: str) -> list[str]:
    return subprocess.run(
        ["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()


def wrapper_dirs() -> list[str]:
    """Every committed Go module under tooling/ that requires another (the stubs it replaces with require none)."""
    return sorted(
        str(Path(path).parent)
        for path in tracked("tooling/**/go.mod")
        if parse_go_mod((ROOT / path).read_text()).requires
    )


WRAPPERS = wrapper_dirs()


def shell_code(script: Path) -> str:
    """SCRIPT without its comment lines and `quoted` spans (messages and docs), leaving what runs."""
    lines = [line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]
    return re.sub(r"`[^`\n]*`", "", "\n".join(lines))


def gomod(
    script: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: int = 60
) -> subprocess.CompletedProcess[str]:
    """Run SCRIPT in bash with platform/env.sh and gomod.sh sourced, as the build scripts do."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f'source "{ENV_SH}"; source "{GOMOD_SH}"; {script}'],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@functools.cache
def script_pins() -> dict[str, str]:
    """The versions the build scripts pin: requirements.txt (through env.sh), env.sh and cluster/common.sh."""
    names = (
        "HELLO_PULUMI_VERSION",
        "HELLO_DOCKER_BUILD_VERSION",
        "HELLO_BUILDKIT_VERSION",
        "HELLO_K8S_VERSION",
        "HELLO_TRAEFIK_VERSION",
    )
    script = (
        f'source "{TOOLING}/toolchain/env.sh"; source "{TOOLING}/platform/cluster/common.sh"; '
        + "".join(f'echo "{name}=${name}"; ' for name in names)
        + 'echo "ETCD_VERSION=$ETCD_VERSION"'
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    pins = {name: value for name, _, value in (line.partition("=") for line in result.stdout.splitlines())}
    kubernetes = re.search(r"^\s*4\.\d+\.\d+\) echo (v\S+) ;;", (TOOLING / "toolchain" / "build.sh").read_text(), re.M)
    assert kubernetes, "build.sh's kubernetes_module_version maps no provider version"
    return {**pins, "KUBERNETES_PROVIDER_MODULE": kubernetes.group(1)}


@pytest.fixture
def cache(tmp_path: Path) -> dict[str, str]:
    """A throwaway HELLO_CACHE, so that locks and Go caches never touch the real one."""
    return {"HELLO_CACHE": str(tmp_path / "cache")}


@pytest.mark.parametrize("wrapper", sorted({*WRAPPERS, *BUILD_WRAPPERS}))
def test_wrapper_commits_go_mod_and_go_sum(wrapper: str) -> None:
    assert {f"{wrapper}/go.mod", f"{wrapper}/go.sum"} <= set(tracked(wrapper))


def test_wrappers_include_every_module_the_build_scripts_build_from() -> None:
    assert set(BUILD_WRAPPERS) <= set(WRAPPERS)


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_wrapper_go_sum_holds_both_checksums_of_every_required_module(wrapper: str) -> None:
    go_mod = parse_go_mod((ROOT / wrapper / "go.mod").read_text())
    sums = go_sum_keys(ROOT / wrapper)

    missing = [
        f"{path} {version}{suffix}"
        for path, version in go_mod.checksummed()
        for suffix in ("", "/go.mod")
        if (path, version + suffix) not in sums
    ]

    assert go_mod.requires
    assert missing == [], f"run the refresh-sums target of the script that builds {wrapper}"


@pytest.mark.parametrize(
    ("wrapper", "module", "pin"),
    [
        ("tooling/toolchain/cli", "github.com/pulumi/pulumi/pkg/v3", "HELLO_PULUMI_VERSION"),
        ("tooling/toolchain/cli", "github.com/pulumi/pulumi/sdk/v3", "HELLO_PULUMI_VERSION"),
        ("tooling/toolchain/language-python", "github.com/pulumi/pulumi/sdk/v3", "HELLO_PULUMI_VERSION"),
        ("tooling/toolchain/docker-build", "github.com/pulumi/pulumi-docker-build", "HELLO_DOCKER_BUILD_VERSION"),
        (
            "tooling/toolchain/kubernetes",
            "github.com/pulumi/pulumi-kubernetes/provider/v4",
            "KUBERNETES_PROVIDER_MODULE",
        ),
        ("tooling/platform/buildkit", "github.com/moby/buildkit", "HELLO_BUILDKIT_VERSION"),
        ("tooling/platform/ingress", "github.com/traefik/traefik/v3", "HELLO_TRAEFIK_VERSION"),
        ("tooling/platform/cluster/wrapper/kubernetes", "k8s.io/kubernetes", "HELLO_K8S_VERSION"),
        ("tooling/platform/cluster/wrapper/etcd", "go.etcd.io/etcd/server/v3", "ETCD_VERSION"),
    ],
    ids=[
        "cli pkg",
        "cli sdk",
        "language sdk",
        "docker-build",
        "kubernetes plugin",
        "buildkit",
        "traefik",
        "kubernetes",
        "etcd",
    ],
)
def test_wrapper_requires_the_version_its_script_pins(wrapper: str, module: str, pin: str) -> None:
    version = script_pins()[pin]

    required = parse_go_mod((ROOT / wrapper / "go.mod").read_text()).requires[module]

    assert required == (version if version.startswith("v") else f"v{version}")


def test_no_script_under_tooling_lets_go_write_go_sum_or_skip_checksums() -> None:
    forbidden = {
        "-mod=mod": r"-mod=mod\b",
        "deletes a go.sum": r"\brm\b[^\n]*go\.sum",
        "skips checksums": r"GONOSUMCHECK|GONOSUMDB|GOINSECURE|GOPRIVATE|GOFLAGS=\S*-insecure",
        "go -insecure": r"\bgo \w+ [^\n]*-insecure\b",
        "go get (writes go.sum)": r"\bgo get\b",
        "go mod download of the whole module (writes go.sum)": r"\bgo mod download(?: -json)?\s*(?:$|[;|&)])",
    }
    found = {
        f"{script.relative_to(ROOT)}: {what}"
        for script in TOOLING.rglob("*.sh")
        for what, pattern in forbidden.items()
        if re.search(pattern, shell_code(script), re.MULTILINE)
    }

    assert found == set()
    assert re.search(r"^export GOFLAGS=-mod=readonly\b", ENV_SH.read_text(), re.MULTILINE)


def test_go_mod_tidy_runs_only_in_the_refresh_step() -> None:
    tidy = [str(script.relative_to(ROOT)) for script in TOOLING.rglob("*.sh") if "go mod tidy" in shell_code(script)]
    (refresh,) = re.findall(r"^gomod_refresh\(\) \{\n(.*?)^\}", GOMOD_SH.read_text(), re.MULTILINE | re.DOTALL)

    assert tidy == ["tooling/toolchain/gomod.sh"]
    assert "go mod tidy" in refresh


@pytest.mark.parametrize(("script", "part"), sorted(BUILD_SCRIPTS.items()), ids=lambda value: str(value))
def test_build_script_takes_the_lock_of_its_part(script: str, part: str) -> None:
    text = (ROOT / script).read_text()

    assert re.search(r"^(?:source|\.) \S*/gomod\.sh\"?$", text, re.MULTILINE)
    # gomod_build takes the lock of the part it is given.
    assert re.search(rf"^\s*(?:[A-Z_]+=\S+ )*gomod_(?:lock {part}$|build {part} )", text, re.MULTILINE)


def test_gomod_build_takes_the_lock_of_its_part_before_building() -> None:
    (build,) = re.findall(r"^gomod_build\(\) \(\n(.*?)^\)", GOMOD_SH.read_text(), re.MULTILINE | re.DOTALL)

    assert build.index('gomod_lock "$part"') < build.index("go build")


def test_gomod_lock_gives_up_after_the_bounded_wait_when_another_build_holds_it(
    cache: dict[str, str], tmp_path: Path
) -> None:
    lock = Path(cache["HELLO_CACHE"]) / "locks" / "cluster.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 4242 (tooling/platform/cluster/build.sh), since earlier\n")
        held.flush()

        result = gomod("gomod_lock cluster; echo locked", tmp_path, {**cache, "HELLO_BUILD_LOCK_WAIT": "1"})

    assert result.returncode == 1
    assert "locked" not in result.stdout
    assert "waiting up to 1s" in result.stderr
    assert (
        f"error: cluster: another cluster build still holds {lock} after 1s "
        "(pid 4242 (tooling/platform/cluster/build.sh), since earlier); let it finish, or stop it, and run again"
    ) in result.stderr


def test_gomod_lock_is_taken_when_free_and_names_its_holder(cache: dict[str, str], tmp_path: Path) -> None:
    result = gomod("gomod_lock buildkit; echo locked", tmp_path, cache)

    assert (result.returncode, result.stdout) == (0, "locked\n"), result.stderr
    assert (Path(cache["HELLO_CACHE"]) / "locks" / "buildkit.lock").read_text().startswith("pid ")


GO_ERRORS = {
    "zip hash missing": (
        "exit.go:23:2: missing go.sum entry for module providing package github.com/pkg/errors "
        "(imported by github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil); to add:\n"
        "\tgo get github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil@v3.260.0\n",
        "  - the module providing package github.com/pkg/errors: no checksum of its files (h1:)",
    ),
    "go.mod hash missing": (
        "go: github.com/pkg/errors@v0.9.1: missing go.sum entry for go.mod file; to add it:\n"
        "\tgo mod download github.com/pkg/errors\n",
        "  - github.com/pkg/errors@v0.9.1: no checksum of its go.mod (/go.mod h1:)",
    ),
    "checksum mismatch": (
        "verifying github.com/pulumi/pulumi/sdk/v3@v3.260.0: checksum mismatch\n"
        "\tdownloaded: h1:Bc848YiSK8oZqYn+xOnuuGb0oMK/w17DV6X5G0OIWvM=\n"
        "\tgo.sum:     h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nSECURITY ERROR\n",
        "  - github.com/pulumi/pulumi/sdk/v3@v3.260.0: what the proxy served does not match the committed checksum",
    ),
    "requirement missing": (
        "go: updates to go.mod needed; to update it:\n\tgo mod tidy\n",
        "  - go.mod: a requirement is missing or out of date",
    ),
}


@pytest.mark.parametrize(("go_error", "named"), GO_ERRORS.values(), ids=GO_ERRORS.keys())
def test_gomod_explain_names_the_module_and_the_refresh_command(
    go_error: str, named: str, cache: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "go.log"
    log.write_text(go_error)

    result = gomod(f'gomod_explain "$GOMOD_REPO/tooling/toolchain/language-python" "{REFRESH}" {log}', tmp_path, cache)

    assert result.stderr.splitlines() == [
        "error: the committed go.mod and go.sum of tooling/toolchain/language-python do not cover this build:",
        named,
        "Builds use only committed checksums (GOFLAGS=-mod=readonly; GOSUMDB=off, as sum.golang.org is",
        "unreachable): do not run the `go get` or `go mod download` that go suggests.",
        f"To change the sums on purpose: {REFRESH}",
        "then review `git diff -- tooling/toolchain/language-python` and commit it.",
    ]


def test_gomod_explain_says_nothing_of_a_failure_that_is_not_about_checksums(
    cache: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "go.log"
    log.write_text("./main.go:12:2: undefined: pulumirpc.Nope\n")

    result = gomod(f'gomod_explain "$PWD" "{REFRESH}" {log}', tmp_path, cache)

    assert (result.returncode, result.stderr) == (0, "")


def test_gomod_require_pin_fails_on_another_version_naming_the_refresh_command(
    cache: dict[str, str], tmp_path: Path
) -> None:
    wrapper = tmp_path / "wrapper"
    wrapper.mkdir()
    (wrapper / "go.mod").write_text(
        "module hello.local/w\n\ngo 1.24\n\nrequire (\n\tgithub.com/pulumi/pulumi/sdk/v3 v3.260.0 // indirect\n)\n"
    )
    check = f'gomod_require_pin {wrapper} github.com/pulumi/pulumi/sdk/v3 {{}} "{REFRESH}"'

    matching = gomod(check.format("v3.260.0"), tmp_path, cache)
    other = gomod(check.format("v3.261.0"), tmp_path, cache)

    assert (matching.returncode, matching.stderr) == (0, "")
    assert other.returncode == 1
    assert other.stderr == (
        f"error: {wrapper}/go.mod requires github.com/pulumi/pulumi/sdk/v3 v3.260.0, but the build pins v3.261.0; "
        f"to move the wrapper to v3.261.0 on purpose, run `{REFRESH}`, review `git diff -- {wrapper}` "
        "and commit go.mod and go.sum\n"
    )


def test_gomod_check_unchanged_fails_when_the_build_rewrote_go_sum(cache: dict[str, str], tmp_path: Path) -> None:
    committed = ROOT / "tooling" / "toolchain" / "language-python"
    scratch = tmp_path / "scratch"
    shutil.copytree(committed, scratch)
    check = f'gomod_check_unchanged {scratch} "$GOMOD_REPO/tooling/toolchain/language-python" "{REFRESH}"'

    unchanged = gomod(check, tmp_path, cache)
    with (scratch / "go.sum").open("a") as go_sum:
        go_sum.write("example.com/added v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    changed = gomod(check, tmp_path, cache)

    assert (unchanged.returncode, unchanged.stderr) == (0, "")
    assert changed.returncode == 1
    assert "+example.com/added v1.0.0 h1:" in changed.stderr
    assert (
        f"error: the build changed go.sum of its copy of tooling/toolchain/language-python ({scratch}); "
        f"builds must not add or change checksums. To change them on purpose, run `{REFRESH}`"
    ) in changed.stderr


@pytest.mark.engine
@pytest.mark.parametrize(
    ("removed", "command", "go_says", "we_say"),
    [
        (
            "github.com/pkg/errors v0.9.1/go.mod h1:",
            "go list -mod=readonly -m all",
            "github.com/pkg/errors@v0.9.1: missing go.sum entry for go.mod file",
            "  - github.com/pkg/errors@v0.9.1: no checksum of its go.mod (/go.mod h1:)",
        ),
        (
            "github.com/pkg/errors v0.9.1 h1:",
            "go list -mod=readonly -deps .",
            "missing go.sum entry for module providing package github.com/pkg/errors",
            "  - the module providing package github.com/pkg/errors: no checksum of its files (h1:)",
        ),
    ],
    ids=["go.mod hash", "zip hash"],
)
def test_language_host_wrapper_without_one_go_sum_line_fails_to_resolve(
    removed: str, command: str, go_says: str, we_say: str, tmp_path: Path
) -> None:
    """Runs go in a copy of the language host's wrapper, with the module cache `make tools` filled
    (HELLO_CACHE, or GOMODCACHE_OVERRIDE); with an empty cache go asks the module proxy."""
    assert shutil.which("go"), "no go on PATH: the toolchain build needs it"
    wrapper = tmp_path / "language-python"
    shutil.copytree(ROOT / "tooling" / "toolchain" / "language-python", wrapper)
    go_sum = wrapper / "go.sum"
    lines = go_sum.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(removed)]
    assert len(kept) == len(lines) - 1
    go_sum.write_text("".join(kept))

    result = gomod(
        f'gomod_run "$GOMOD_REPO/tooling/toolchain/language-python" "{REFRESH}" {command}',
        wrapper,
        timeout=GO_TIMEOUT_SECONDS,
    )

    assert result.returncode == 1
    assert go_says in result.stderr
    assert f"{we_say}\n" in result.stderr
    assert f"To change the sums on purpose: {REFRESH}\n" in result.stderr
    assert go_sum.read_text() == "".join(kept), "go must not write go.sum"
