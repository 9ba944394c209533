"""The platform's commands each have a Debian package (tooling/platform/commands.tsv); only stacks using it start it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

PLATFORM = ROOT / "tooling" / "platform"
SCRIPTS = sorted(PLATFORM.rglob("*.sh"))


def command_table() -> dict[str, str]:
    rows = [line.split() for line in (PLATFORM / "commands.tsv").read_text().splitlines()]
    return {row[0]: row[1] for row in rows if row and not row[0].startswith("#")}


def required_commands(script: Path) -> set[str]:
    """Literal arguments of ``require_commands`` calls, line continuations and ``{a,b}`` lists expanded."""
    text = script.read_text().replace("\\\n", " ")
    found = set()
    for call in re.findall(r"^\s*(?:say \S+ )?require_commands ([^\n;|&]+)", text, re.MULTILINE):
        for word in call.split("$(")[0].split():
            word = word.replace('"$CNI_BIN_DIR"', "/usr/lib/cni")
            if "$" in word:
                continue
            if match := re.fullmatch(r"(.*)\{(.+)\}", word):
                found |= {match.group(1) + part for part in match.group(2).split(",")}
            else:
                found.add(word)
    return found


def test_every_required_command_has_a_package_to_install_it() -> None:
    table = command_table()

    required = {str(script.relative_to(PLATFORM)): required_commands(script) for script in SCRIPTS}

    assert "$(awk" in (PLATFORM / "up.sh").read_text(), "up.sh installs the whole table in one round"
    unknown = {name: sorted(commands - set(table)) for name, commands in required.items() if commands - set(table)}
    assert unknown == {}


def test_no_script_checks_a_command_on_its_own() -> None:
    """A bare ``command -v X || die`` would stop a new machine instead of installing X."""
    checks = {
        str(script.relative_to(PLATFORM)): re.findall(r"command -v \"?([\w./-]+)", script.read_text())
        for script in SCRIPTS
        if script.name not in ("lib.sh", "plan.sh")
    }

    assert {name: found for name, found in checks.items() if found} == {}


def test_require_commands_names_a_command_it_cannot_install() -> None:
    script = f"source {PLATFORM}/env.sh; source {PLATFORM}/lib.sh; require_commands sh no-such-command-hello"
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, check=False)

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: no Debian package known for 'no-such-command-hello'; add it to tooling/platform/commands.tsv"
    )


@pytest.mark.platform
@pytest.mark.parametrize(("command", "package"), sorted(command_table().items()), ids=lambda value: str(value))
def test_each_package_ships_its_command(command: str, package: str) -> None:
    """Run where the platform is up, so every package is installed: dpkg lists the files it shipped."""
    files = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout.split()

    if command.startswith("/"):
        assert command in files
        return
    found = shutil.which(command)
    assert found is not None
    # Either the package ships the command itself, or the command is an alternatives link to a file it
    # ships (iptables -> xtables-nft-multi).
    ships = any(re.fullmatch(rf"/(usr/)?s?bin/{re.escape(command)}", path) for path in files)
    assert ships or os.path.realpath(found) in files, (found, os.path.realpath(found))


def test_up_fails_at_once_doing_nothing_when_the_platform_is_unavailable(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "HELLO_PLATFORM_UNAVAILABLE": "1", "HELLO_RUN": str(run), "HELLO_CACHE": str(run)}

    result = subprocess.run([str(PLATFORM / "up.sh")], env=env, capture_output=True, text=True, timeout=10, check=False)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "error: the local platform must not be started here (HELLO_PLATFORM_UNAVAILABLE=1), got a request to start it\n"
    )
    assert not run.exists(), "up.sh did something before refusing"


OUTSIDE_STACK = """config:
  hello-world:nodePort: "31699"
  hello-world:cluster:
    kubeconfig: /home/me/.kube/config
  hello-world:build:
    registry: 127.0.0.1:5999
    username: me
"""
# Shell scripts, not Python: three run for each make below, and a shell starts in a millisecond. Each writes the
# name of what ran, a line a run.
RECORDER = """#!/bin/sh
echo "${0##*/}" >>"$RECORD"
"""


# Stands in for the venv's python: `-m ops needs-platform` is the real decision, any other ops command is recorded.
OPS_RECORDER = f"""#!/bin/sh
if [ "$1" = -m ] && [ "$2" = ops ] && [ "$3" = needs-platform ]; then
    exec {shlex.quote(str(ROOT / ".venv" / "bin" / "python"))} "$@"
fi
echo ops >>"$RECORD"
"""


class StackProject:
    """A scratch tree with the project's Makefile, settings, ops and stack files, and an ``outside`` stack.

    tooling/platform/up.sh and `python -m ops` are recorders; the decision (`ops needs-platform`) is the real one.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "project"
        self.record = tmp_path / "record"
        platform = self.dir / "tooling" / "platform"
        scripts = self.dir / "tooling" / "scripts"
        for folder in (platform, scripts):
            folder.mkdir(parents=True)
        for name in ("env.sh", "lib.sh"):
            (platform / name).symlink_to(PLATFORM / name)
        (self.dir / "tooling" / "toolchain").symlink_to(ROOT / "tooling" / "toolchain")
        for name in ("settings", "ops", "image_ref.py", ".venv", "requirements.txt", "requirements-dev.txt"):
            (self.dir / name).symlink_to(ROOT / name)
        self.python = tmp_path / "python"
        self.python.write_text(OPS_RECORDER)
        self.python.chmod(0o755)
        for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
            shutil.copy2(ROOT / name, self.dir / name)
        (self.dir / "Pulumi.outside.yaml").write_text(OUTSIDE_STACK)
        for recorder in (platform / "up.sh",):
            recorder.write_text(RECORDER)
            recorder.chmod(0o755)
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path / "home"),
            "HELLO_CACHE": str(tmp_path / "cache"),
            "HELLO_RUN": str(tmp_path / "run"),
            "HELLO_STATE": str(tmp_path / "state"),
            "RECORD": str(self.record),
            "HELLO_PROJECT_DIR": str(self.dir),
        }

    def make(self, target: str, stack: str) -> list[str]:
        """The scripts `make TARGET STACK=stack` ran, in order."""
        self.record.unlink(missing_ok=True)
        done = ["-o", "venv", "-o", ".venv/.installed", "-o", "tools", "-o", "plan"]
        variables = [f"STACK={stack}", f"PY={self.python}"]
        result = subprocess.run(
            ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), *done, target, *variables],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return self.record.read_text().splitlines()


@pytest.mark.parametrize("target", ["up", "preview", "destroy"])
@pytest.mark.parametrize(
    ("stack", "scripts"),
    [
        ("dev", ["up.sh", "ops"]),
        ("staging", ["up.sh", "ops"]),
        ("prod", ["up.sh", "ops"]),
        ("outside", ["ops"]),
    ],
    ids=str,
)
def test_make_stack_targets_start_the_platform_only_for_a_stack_that_uses_it(
    tmp_path: Path, target: str, stack: str, scripts: list[str]
) -> None:
    assert StackProject(tmp_path).make(target, stack) == scripts
