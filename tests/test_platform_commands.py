"""Every command the platform scripts require has a Debian package that installs it (tooling/platform/commands.tsv)."""

from __future__ import annotations

import os
import re
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
