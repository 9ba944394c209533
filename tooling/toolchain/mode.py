"""Chooses where the Pulumi toolchain comes from: the `pulumi` on PATH, or a build from Go modules.

Usage (env.sh runs it; the standard library only, as it runs before .venv exists):
    python3 mode.py choose --pinned 3.260.0 [--exclude DIR]   (reads TOOLCHAIN: auto, path or source)
        prints two lines: the mode (path or source), then the one line that says why
    python3 mode.py missing-plugins NAME=VERSION...           (reads `pulumi plugin ls --json` on stdin)
        prints the NAME VERSION of each resource plugin that is not installed, one a line
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

# The oldest CLI the pinned Python SDK accepts: its Automation API (which ops/ uses) refuses an
# older one. Source: the SDK's own pulumi/automation/_minimum_version.py (3.1.0 in pulumi 3.260.0 on
# PyPI), checked by PulumiCommand since pulumi/pulumi#6589; the same check refuses another major
# version ("Major version mismatch"). tests/unit/tooling/test_toolchain_mode.py holds this to that public API.
FLOOR = (3, 1, 0)
VERSION_TIMEOUT_SECONDS = 30
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")
_SHOWN_OUTPUT_CHARS = 60


class Mode(enum.Enum):
    """Where the toolchain comes from."""

    PATH = "path"
    """The `pulumi` on PATH, its language hosts beside it, plugins installed the way Pulumi does."""
    SOURCE = "source"
    """Built from Go modules into ~/.cache/hello-pulumi (tooling/toolchain/build.sh)."""


class Request(enum.Enum):
    """What the user asked for with TOOLCHAIN."""

    AUTO = "auto"
    """The `pulumi` on PATH when the pinned SDK supports it, else the source build (the default)."""
    PATH = "path"
    """The `pulumi` on PATH, or an error: never a build of half an hour."""
    SOURCE = "source"
    """The source build, whatever is on PATH."""


@dataclass(frozen=True)
class Version:
    """A semantic version as `pulumi version` prints it."""

    major: int
    minor: int
    patch: int
    prerelease: str | None
    """`-dev.0` and the like: sorts before the release of the same number."""

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}{self.prerelease or ''}"

    def below(self, floor: tuple[int, int, int]) -> bool:
        number = (self.major, self.minor, self.patch)
        return number < floor or (number == floor and self.prerelease is not None)


@dataclass(frozen=True)
class Choice:
    """The toolchain chosen, and the line that says so."""

    mode: Mode
    line: str


class ChoiceError(ValueError):
    """TOOLCHAIN asked for something that cannot be had."""


def parse_request(value: str) -> Request:
    """TOOLCHAIN's value; empty means auto.

    Raises:
        ChoiceError: for any other value.
    """
    try:
        return Request(value or Request.AUTO.value)
    except ValueError:
        expected = ", ".join(r.value for r in Request)
        raise ChoiceError(f"TOOLCHAIN must be one of {expected}, got {value!r}") from None


def parse_version(output: str) -> Version | None:
    """The version in `pulumi version`'s output, or None when the output is not exactly one."""
    match = _VERSION.fullmatch(output.strip())
    if not match:
        return None
    major, minor, patch, prerelease, _build = match.groups()
    return Version(int(major), int(minor), int(patch), prerelease)


def shown(text: str) -> str:
    """TEXT for a one-line message: quoted, shortened, no control characters."""
    if len(text) > _SHOWN_OUTPUT_CHARS:
        text = text[:_SHOWN_OUTPUT_CHARS] + "..."
    return ascii(text)


def choose(request: Request, cli: str | None, version_output: str | None, pinned: str) -> Choice:
    """The toolchain for REQUEST, given the `pulumi` found on PATH (CLI) and what `CLI version` printed.

    Raises:
        ChoiceError: when TOOLCHAIN=path and the CLI on PATH is missing or not one the pinned SDK supports.
    """
    source = "toolchain: building the pinned CLI and plugins from Go modules"
    if request is Request.SOURCE:
        return Choice(Mode.SOURCE, f"{source}: asked for (TOOLCHAIN=source)")
    version = parse_version(version_output or "")
    where = ascii(cli) if cli and not cli.isprintable() else cli
    floor = "v" + ".".join(map(str, FLOOR))
    if cli is None:
        problem = "no pulumi on PATH"
    elif version is None:
        problem = f"`{where} version` printed {shown(version_output or '')}, not a version"
    elif version.major != FLOOR[0]:
        problem = f"{where} is {version}, and the pinned SDK {pinned} supports only CLI {FLOOR[0]}.x"
    elif version.below(FLOOR):
        problem = f"{where} is {version}, older than {floor}, the oldest CLI the pinned SDK {pinned} supports"
    else:
        which = (
            "the pinned version"
            if str(version) == f"v{pinned}"
            else f"the pinned SDK {pinned} supports CLI {FLOOR[0]}.x from {floor}"
        )
        return Choice(
            Mode.PATH, f"toolchain: using {where} from PATH ({version}; {which}); plugins install as Pulumi does"
        )
    if request is Request.PATH:
        raise ChoiceError(f"TOOLCHAIN=path needs a pulumi on PATH that the pinned SDK supports: {problem}")
    return Choice(Mode.SOURCE, f"{source}: {problem}")


def find_cli(path: str, exclude: str | None) -> str | None:
    """The `pulumi` that PATH finds, leaving out the directory EXCLUDE (where the source build goes)."""
    skipped = os.path.realpath(exclude) if exclude else None
    dirs = [d for d in path.split(os.pathsep) if d and os.path.realpath(d) != skipped]
    return shutil.which("pulumi", path=os.pathsep.join(dirs)) if dirs else None


def probe(cli: str) -> str:
    """What `CLI version` prints; a failure or a hang comes back as text, which parses as no version."""
    env = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"}
    try:
        result = subprocess.run(
            [cli, "version"],
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=VERSION_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"({error})"
    if result.returncode != 0:
        return f"(exit {result.returncode}) {result.stdout}{result.stderr}"
    return result.stdout


def missing_plugins(plugin_ls_json: str, wanted: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Those of the WANTED (name, version) resource plugins that `pulumi plugin ls --json` does not list."""
    try:
        listed = json.loads(plugin_ls_json or "[]")
    except json.JSONDecodeError:
        listed = []
    have = {
        (p.get("name"), str(p.get("version", "")).removeprefix("v"))
        for p in listed
        if isinstance(p, dict) and p.get("kind") == "resource"
    }
    return [(name, version) for name, version in wanted if (name, version.removeprefix("v")) not in have]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="tooling/toolchain/mode.py")
    commands = parser.add_subparsers(dest="command", required=True)
    choose_command = commands.add_parser("choose")
    choose_command.add_argument("--pinned", required=True)
    choose_command.add_argument("--exclude")
    plugins_command = commands.add_parser("missing-plugins")
    plugins_command.add_argument("wanted", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "missing-plugins":
        wanted = [(name, version) for name, _, version in (item.partition("=") for item in args.wanted)]
        for name, version in missing_plugins(sys.stdin.read(), wanted):
            print(name, version)
        return 0
    try:
        request = parse_request(os.environ.get("TOOLCHAIN", ""))
        cli = None if request is Request.SOURCE else find_cli(os.environ.get("PATH", ""), args.exclude)
        choice = choose(request, cli, probe(cli) if cli else None, args.pinned)
    except ChoiceError as error:
        print(f"tooling/toolchain/mode.py: {error}", file=sys.stderr)
        return 2
    print(choice.mode.value)
    print(choice.line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
