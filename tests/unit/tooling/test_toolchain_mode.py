"""Which toolchain `make tools` takes (tooling/toolchain/mode.py): the pulumi on PATH, or the source build.

The choice is tested as a plain function; the command that env.sh runs is tested with stand-in `pulumi`
scripts on PATH; a hostile TOOLCHAIN goes through the real Makefile. Nothing here builds or runs Pulumi.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pulumi import automation as auto
from pulumi.automation.errors import InvalidVersionError

from tests.conftest import ROOT
from tests.engine.fixtures import pinned_version

TOOLCHAIN = ROOT / "tooling" / "toolchain"
PINNED = pinned_version("pulumi")
KUBERNETES = pinned_version("pulumi-kubernetes")
DOCKER_BUILD = pinned_version("pulumi-docker-build")
CLI = "/opt/pulumi/bin/pulumi"


def load_mode() -> ModuleType:
    """mode.py, which runs as a script (before .venv exists), loaded as a module."""
    spec = importlib.util.spec_from_file_location("toolchain_mode", TOOLCHAIN / "mode.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


mode = load_mode()


def floor() -> str:
    return ".".join(map(str, mode.FLOOR))


@pytest.mark.parametrize(
    ("request_", "cli", "output", "expected_mode", "reason"),
    [
        ("auto", None, None, "source", "no pulumi on PATH"),
        ("auto", CLI, f"v{PINNED}\n", "path", f"using {CLI} from PATH (v{PINNED}; the pinned version)"),
        ("", CLI, "v3.261.0\n", "path", f"(v3.261.0; the pinned SDK {PINNED} supports CLI 3.x from v3.1.0)"),
        ("auto", CLI, "v3.1.0\n", "path", "(v3.1.0; the pinned SDK"),
        ("auto", CLI, "3.300.0-dev.0", "path", "(v3.300.0-dev.0;"),
        ("path", CLI, "v3.261.0", "path", f"using {CLI} from PATH"),
        ("auto", CLI, "v3.0.0\n", "source", f"{CLI} is v3.0.0, older than v3.1.0, the oldest CLI the pinned SDK"),
        ("auto", CLI, "v3.1.0-alpha.1\n", "source", "is v3.1.0-alpha.1, older than v3.1.0"),
        ("auto", CLI, "v2.25.2\n", "source", f"is v2.25.2, and the pinned SDK {PINNED} supports only CLI 3.x"),
        ("auto", CLI, "v4.0.0\n", "source", f"is v4.0.0, and the pinned SDK {PINNED} supports only CLI 3.x"),
        ("auto", CLI, "", "source", f"`{CLI} version` printed '', not a version"),
        ("auto", CLI, "warning: upgrade\nv3.261.0\n", "source", "printed 'warning: upgrade\\nv3.261.0\\n', not a"),
        ("auto", CLI, "(exit 127) not found", "source", "printed '(exit 127) not found', not a version"),
        ("source", CLI, f"v{PINNED}", "source", "asked for (TOOLCHAIN=source)"),
        ("source", None, None, "source", "asked for (TOOLCHAIN=source)"),
    ],
    ids=[
        "no-pulumi",
        "pinned",
        "newer",
        "floor",
        "newer-prerelease",
        "path-requested",
        "older-than-floor",
        "prerelease-of-floor",
        "major-2",
        "major-4",
        "empty-output",
        "extra-output",
        "failed-version",
        "source-requested",
        "source-requested-without-pulumi",
    ],
)
def test_choose_picks_the_mode_and_says_why(
    request_: str, cli: str | None, output: str | None, expected_mode: str, reason: str
) -> None:
    choice = mode.choose(mode.parse_request(request_), cli, output, PINNED)

    assert choice.mode.value == expected_mode
    assert choice.line.startswith("toolchain: ")
    assert "\n" not in choice.line
    assert reason in choice.line
    if expected_mode == "source":
        assert choice.line.startswith("toolchain: building the pinned CLI and plugins from Go modules: ")


@pytest.mark.parametrize(
    ("cli", "output", "problem"),
    [(None, None, "no pulumi on PATH"), (CLI, "v3.0.9", "older than v3.1.0"), (CLI, "garbage", "not a version")],
    ids=["no-pulumi", "too-old", "unparsable"],
)
def test_choose_with_toolchain_path_fails_instead_of_building(
    cli: str | None, output: str | None, problem: str
) -> None:
    with pytest.raises(mode.ChoiceError, match=f"TOOLCHAIN=path needs a pulumi on PATH .*: .*{problem}"):
        mode.choose(mode.Request.PATH, cli, output, PINNED)


@pytest.mark.parametrize("value", ["Source", "src", "auto ", "$(touch x)", "path;source"], ids=repr)
def test_parse_request_refuses_anything_but_the_three_choices(value: str) -> None:
    with pytest.raises(mode.ChoiceError, match=r"TOOLCHAIN must be one of auto, path, source, got '"):
        mode.parse_request(value)


def test_choose_shows_a_hostile_version_output_on_one_quoted_line() -> None:
    output = "v3\x1b[31m\nrm -rf /" + "x" * 200

    choice = mode.choose(mode.Request.AUTO, CLI, output, PINNED)

    assert choice.mode is mode.Mode.SOURCE
    assert choice.line.isprintable()
    assert "\\x1b" in choice.line
    assert choice.line.endswith("...', not a version")


def test_choose_shows_a_cli_path_with_a_newline_quoted() -> None:
    choice = mode.choose(mode.Request.AUTO, "/tmp/evil\ndir/pulumi", "v3.261.0", PINNED)

    assert choice.mode is mode.Mode.PATH
    assert choice.line.isprintable()
    assert "'/tmp/evil\\ndir/pulumi'" in choice.line


@pytest.mark.parametrize(
    ("cli_version", "accepted"),
    [("3.0.0", False), ("3.1.0", True), ("3.261.0", True), ("4.0.0", False)],
    ids=["below", "floor", "newer", "next-major"],
)
def test_floor_is_the_one_the_pinned_sdks_automation_api_enforces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_version: str, accepted: bool
) -> None:
    """The SDK's own public check (PulumiCommand), run against a stand-in CLI, agrees with mode.py."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(f"#!/bin/sh\necho v{cli_version}\n")
    fake.chmod(0o755)
    monkeypatch.delenv("PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK", raising=False)
    ours = mode.choose(mode.Request.AUTO, str(fake), f"v{cli_version}\n", PINNED).mode is mode.Mode.PATH

    try:
        auto.PulumiCommand(root=str(tmp_path))
        sdk = True
    except InvalidVersionError:
        sdk = False

    assert (ours, sdk) == (accepted, accepted)


def test_floor_cites_the_pinned_sdk_so_a_new_pin_rechecks_it() -> None:
    comment = " ".join(line.lstrip("# ") for line in (TOOLCHAIN / "mode.py").read_text().splitlines())

    assert f"_minimum_version.py ({floor()} in pulumi {PINNED} on PyPI)" in comment


def test_find_cli_skips_the_source_build_directory(tmp_path: Path) -> None:
    built, user = tmp_path / "built", tmp_path / "user"
    for folder in (built, user):
        folder.mkdir()
        (folder / "pulumi").write_text("#!/bin/sh\n")
        (folder / "pulumi").chmod(0o755)

    assert mode.find_cli(f"{built}:{user}", str(built)) == str(user / "pulumi")
    assert mode.find_cli(f"{built}/:{tmp_path}", str(built)) is None
    assert mode.find_cli("", str(built)) is None


@pytest.mark.parametrize(
    ("listing", "missing"),
    [
        ('[{"name": "kubernetes", "kind": "resource", "version": "4.25.0"}]', [("docker-build", "0.0.22")]),
        (
            '[{"name": "kubernetes", "kind": "resource", "version": "4.24.0"},'
            ' {"name": "docker-build", "kind": "language", "version": "0.0.22"}]',
            [("kubernetes", "4.25.0"), ("docker-build", "0.0.22")],
        ),
        (
            '[{"name": "kubernetes", "kind": "resource", "version": "v4.25.0"},'
            ' {"name": "docker-build", "kind": "resource", "version": "0.0.22"}]',
            [],
        ),
        ("not json", [("kubernetes", "4.25.0"), ("docker-build", "0.0.22")]),
        ("", [("kubernetes", "4.25.0"), ("docker-build", "0.0.22")]),
    ],
    ids=["one-missing", "other-version-or-kind", "all-there", "unreadable", "empty"],
)
def test_missing_plugins_lists_what_plugin_ls_lacks(listing: str, missing: list[tuple[str, str]]) -> None:
    assert mode.missing_plugins(listing, [("kubernetes", "4.25.0"), ("docker-build", "0.0.22")]) == missing


def run_choose(
    tmp_path: Path, version_script: str | None, toolchain: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`mode.py choose` as env.sh runs it, with only a stand-in `pulumi` (if any) and the system on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if version_script is not None:
        (bin_dir / "pulumi").write_text(f"#!/bin/sh\n{version_script}\n")
        (bin_dir / "pulumi").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    if toolchain is not None:
        env["TOOLCHAIN"] = toolchain
    return subprocess.run(
        [sys.executable, str(TOOLCHAIN / "mode.py"), "choose", "--pinned", PINNED, "--exclude", str(tmp_path / "x")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("script", "toolchain", "lines"),
    [
        ("echo v3.261.0", None, ["path", "toolchain: using {bin}/pulumi from PATH (v3.261.0;"]),
        (None, None, ["source", "toolchain: building the pinned CLI and plugins from Go modules: no pulumi on PATH"]),
        ("echo v2.0.0", "auto", ["source", "is v2.0.0, and the pinned SDK"]),
        ("exit 3", None, ["source", "version` printed '(exit 3) ', not a version"]),
        ("echo v3.261.0", "source", ["source", "asked for (TOOLCHAIN=source)"]),
    ],
    ids=["newer", "no-pulumi", "major-2", "failing", "source-requested"],
)
def test_mode_command_prints_the_mode_then_one_line(
    tmp_path: Path, script: str | None, toolchain: str | None, lines: list[str]
) -> None:
    result = run_choose(tmp_path, script, toolchain)

    assert result.returncode == 0, result.stderr
    mode_line, reason = result.stdout.splitlines()
    assert mode_line == lines[0]
    assert lines[1].format(bin=tmp_path / "bin") in reason


@pytest.mark.parametrize(
    ("script", "toolchain", "message"),
    [
        ("echo v3.261.0", "sauce", "TOOLCHAIN must be one of auto, path, source, got 'sauce'"),
        (None, "path", "TOOLCHAIN=path needs a pulumi on PATH that the pinned SDK supports: no pulumi on PATH"),
        ("echo v3.0.0", "path", "older than v3.1.0"),
    ],
    ids=["unknown-value", "path-without-pulumi", "path-too-old"],
)
def test_mode_command_fails_with_the_reason(tmp_path: Path, script: str | None, toolchain: str, message: str) -> None:
    result = run_choose(tmp_path, script, toolchain)

    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr


def test_make_tools_refuses_a_hostile_toolchain_before_building(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "HELLO_CACHE": str(tmp_path / "cache"),
        "HELLO_STATE": str(tmp_path / "state"),
    }
    for value in (f"$(touch {marker})", f"`touch {marker}`", f"source;touch {marker}", f"$(shell touch {marker})"):
        result = subprocess.run(
            ["make", "--no-print-directory", "-C", str(ROOT), "tools", f"TOOLCHAIN={value}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode != 0
        assert f"TOOLCHAIN must be one of auto, path, source, got {value!r}" in result.stderr
        assert ">> " not in result.stderr  # no build step started
    assert not marker.exists()
    assert not (tmp_path / "cache" / "tools").exists()


STUB_PULUMI = """#!/bin/sh
echo "$*" >>"$RECORD"
case "$*" in
  version) echo v3.261.0 ;;
  "plugin ls --json") cat "$LISTING" ;;
esac
"""


@pytest.mark.parametrize(
    ("listing", "installs"),
    [
        (
            "[]",
            [
                f"plugin install resource kubernetes {KUBERNETES}",
                f"plugin install resource docker-build {DOCKER_BUILD}",
            ],
        ),
        (
            f'[{{"name": "kubernetes", "kind": "resource", "version": "{KUBERNETES}"}}]',
            [f"plugin install resource docker-build {DOCKER_BUILD}"],
        ),
        (
            f'[{{"name": "kubernetes", "kind": "resource", "version": "{KUBERNETES}"}},'
            f' {{"name": "docker-build", "kind": "resource", "version": "{DOCKER_BUILD}"}}]',
            [],
        ),
    ],
    ids=["none-installed", "one-installed", "both-installed"],
)
def test_build_in_the_path_mode_installs_only_the_missing_plugins_the_pulumi_way(
    tmp_path: Path, listing: str, installs: list[str]
) -> None:
    """build.sh with a stand-in `pulumi` on PATH that records its arguments: no build, no --file."""
    calls = run_build_with_stub(tmp_path, listing)

    assert [call for call in calls if call.startswith("plugin install")] == installs
    assert not (tmp_path / "cache" / "tools").exists()


BOTH_INSTALLED = (
    f'[{{"name": "kubernetes", "kind": "resource", "version": "{KUBERNETES}"}},'
    f' {{"name": "docker-build", "kind": "resource", "version": "{DOCKER_BUILD}"}}]'
)


@pytest.mark.parametrize(
    ("target", "listing"), [("all", ["version", "plugin ls"]), ("ready", [])], ids=["all", "ready"]
)
def test_build_ready_is_all_without_the_version_listing(tmp_path: Path, target: str, listing: list[str]) -> None:
    """The first `pulumi version` is env.sh's (mode.py choosing the toolchain); what follows it is build.sh's."""
    calls = run_build_with_stub(tmp_path, BOTH_INSTALLED, target)

    assert calls[0] == "version"
    assert [call for call in calls[1:] if call != "plugin ls --json"] == listing


def run_build_with_stub(tmp_path: Path, listing: str, *args: str) -> list[str]:
    """Runs build.sh ARGS with a stand-in `pulumi` on PATH that lists ``listing`` as installed plugins.

    Returns:
        The stand-in's calls, one line of arguments each, after checking that build.sh chose it and passed.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(STUB_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    (tmp_path / "listing.json").write_text(listing)
    record = tmp_path / "record"
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "HELLO_CACHE": str(tmp_path / "cache"),
        "HELLO_STATE": str(tmp_path / "state"),
        "RECORD": str(record),
        "LISTING": str(tmp_path / "listing.json"),
    }

    result = subprocess.run(
        [str(TOOLCHAIN / "build.sh"), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith(f"toolchain: using {bin_dir}/pulumi from PATH (v3.261.0;")
    return record.read_text().splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["3.261", "/tmp/x"], "cli-as: VERSION must be a semantic version such as 3.261.0, got '3.261'"),
        (["$(touch {marker})", "/tmp/x"], "cli-as: VERSION must be a semantic version such as 3.261.0, got '$(touch"),
        (["3.261.0", "relative/bin"], "cli-as: DIR must be an absolute path, got 'relative/bin'"),
        ([], "cli-as: VERSION must be a semantic version such as 3.261.0, got ''"),
    ],
    ids=["short-version", "hostile-version", "relative-dir", "nothing"],
)
def test_build_cli_as_refuses_a_bad_version_or_dir_before_building(
    tmp_path: Path, args: list[str], message: str
) -> None:
    marker = tmp_path / "marker"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "HELLO_CACHE": str(tmp_path / "cache")}

    result = subprocess.run(
        [str(TOOLCHAIN / "build.sh"), "cli-as", *(arg.format(marker=marker) for arg in args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert message in result.stderr
    assert ">> " not in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    ("version_script", "announced"), [("echo v3.261.0", False), (None, True), ("echo v3.0.0", True)], ids=repr
)
def test_plan_announces_the_toolchain_build_only_in_the_source_mode(
    tmp_path: Path, version_script: str | None, announced: bool
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if version_script is not None:
        (bin_dir / "pulumi").write_text(f"#!/bin/sh\n{version_script}\n")
        (bin_dir / "pulumi").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "HELLO_CACHE": str(tmp_path / "c")}

    result = subprocess.run(
        [str(ROOT / "tooling" / "platform" / "plan.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "First run on this machine" in result.stdout  # the rest of the platform is not built in tmp_path
    assert ("Pulumi CLI and plugins, from Go modules" in result.stdout) is announced
