"""Make variables reach the recipes as data: real `make` runs with hostile values, and nothing they hold runs.

Each test runs the project's Makefile with GNU make in a scratch copy of the tree whose commands record
their arguments instead of acting: PY (so `python -m ops`) is a recorder, `pulumi` is a stub that
does nothing, and the prerequisites (venv, tools, plan, platform) are taken as done (`make -o`). The real
tooling/platform/env.sh and tooling/toolchain/env.sh are sourced, with every
location under tmp_path.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

DONE = ["-o", "venv", "-o", "tools", "-o", ".venv/.installed", "-o", "plan", "-o", "platform"]
# A shell script, not Python: it runs for every make below (about a hundred), and a shell starts in a millisecond.
# One record a run: the number of arguments, then the command's name and each argument, each ended by a NUL
# (the one byte no argument can hold).
RECORDER = """#!/bin/sh
{ printf '%d\\0' "$#"; printf '%s\\0' "${0##*/}" "$@"; } >>"$RECORD"
"""


def recorded_runs(record: Path) -> list[list[str]]:
    """The argument lists RECORDER wrote to ``record``, one a run, the command's name first."""
    fields = record.read_bytes().decode().split("\0")[:-1] if record.exists() else []
    runs = []
    while fields:
        count = int(fields[0])
        runs.append(fields[1 : count + 2])
        fields = fields[count + 2 :]
    return runs


def hostile(marker: Path) -> list[str]:
    """Values that run `touch marker` wherever a shell or make parses them."""
    return [
        f"dev;touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"$(shell touch {marker})",
        f"dev' && touch '{marker}",
        f'dev" && touch "{marker}',
        f"dev\ntouch {marker}",
    ]


class Project:
    """A scratch tree that runs the real Makefile with recording commands."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.dir = tmp_path / "project"
        self.record = tmp_path / "record"
        self.marker = tmp_path / "marker"
        """The file that the hostile values below would create."""
        bin_dir = tmp_path / "bin"
        scripts = self.dir / "tooling" / "scripts"
        for folder in (bin_dir, scripts):
            folder.mkdir(parents=True)
        for name in ("platform", "toolchain"):
            (self.dir / "tooling" / name).symlink_to(ROOT / "tooling" / name)
        self.recorder = bin_dir / "record"
        self.recorder.write_text(RECORDER)
        (bin_dir / "pulumi").write_text("#!/bin/sh\nexit 0\n")
        for command in (self.recorder, bin_dir / "pulumi"):
            command.chmod(0o755)
        self.env = {
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path / "home"),
            "HELLO_CACHE": str(tmp_path / "cache"),
            "HELLO_RUN": str(tmp_path / "run"),
            "HELLO_STATE": str(tmp_path / "state"),
            "PULUMI_CONFIG_PASSPHRASE": "test-passphrase",
            "RECORD": str(self.record),
        }

    def make(self, target: str, **variables: str) -> list[list[str]]:
        """Runs `make TARGET NAME=value...` and returns the argument lists the recorders received.

        Checks first that nothing touched the marker, then that make succeeded.
        """
        result = self.run(target, **variables)
        assert not self.marker.exists(), f"make {target} ran a command from {variables}"
        assert result.returncode == 0, result.stdout + result.stderr
        return recorded_runs(self.record)

    def run(self, target: str, **variables: str) -> subprocess.CompletedProcess[str]:
        """Runs `make TARGET NAME=value...`, whatever it exits with."""
        return subprocess.run(
            ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), *DONE, target, f"PY={self.recorder}"]
            + [f"{name}={value}" for name, value in variables.items()],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.mark.parametrize("target", ["preview", "up", "destroy", "refresh"])
def test_make_stack_targets_hand_stack_to_ops_as_one_argument(project: Project, target: str) -> None:
    marker = project.marker
    values = hostile(marker)

    recorded = [project.make(target, STACK=value)[-1] for value in values]

    assert not marker.exists()
    assert recorded == [["record", "-m", "ops", target, value] for value in values]


def test_make_render_hands_stack_and_out_over_as_they_are(project: Project) -> None:
    marker = project.marker
    values = hostile(marker)

    recorded = [project.make("render", STACK=value, OUT=f"{value}/out")[-1] for value in values]

    assert not marker.exists()
    assert recorded == [["record", "-m", "ops", "render", value, f"{value}/out"] for value in values]


def test_make_promote_hands_from_and_to_over_and_splits_args_into_plain_words(project: Project) -> None:
    marker = project.marker
    values = hostile(marker)
    args = f"--yes --digest $(touch {marker}) `touch {marker}` ;touch {marker} * $(shell touch {marker})"

    recorded = [project.make("promote", FROM=value, TO=f"{value}-to", ARGS=args)[-1] for value in values]

    assert not marker.exists()
    words = ["--yes", "--digest", "$(touch", f"{marker})", "`touch", f"{marker}`", ";touch", str(marker), "*"]
    words += ["$(shell", "touch", f"{marker})"]
    assert recorded == [
        ["record", "-m", "ops", "promote", "--from", value, "--to", f"{value}-to", *words] for value in values
    ]


def test_make_promote_hands_a_multi_word_reason_over_as_one_skip_verification_argument(project: Project) -> None:
    marker = project.marker
    values = [*hostile(marker), "registry down; hotfix by alice", "--yes", "two  spaces  inside  ", "* glob ?"]

    recorded = [project.make("promote", FROM="dev", TO="staging", ARGS="--yes", REASON=value)[-1] for value in values]

    assert not marker.exists()
    assert recorded == [
        ["record", "-m", "ops", "promote", "--from", "dev", "--to", "staging", "--yes", f"--skip-verification={value}"]
        for value in values
    ]


def test_make_promote_without_reason_skips_nothing(project: Project) -> None:
    recorded = project.make("promote", FROM="dev", TO="staging", REASON="")

    assert recorded == [["record", "-m", "ops", "promote", "--from", "dev", "--to", "staging"]]


def test_make_review_splits_stacks_into_plain_words(project: Project) -> None:
    marker = project.marker
    (project.dir / "Pulumi.dev.yaml").write_text("")  # something for a glob to find
    words = ["staging", "prod", "*", "$(touch", f"{marker})", "`touch", f"{marker}`;touch", str(marker)]

    recorded = project.make("review", STACKS="\n".join(words[:2]) + " " + " ".join(words[2:]))

    assert not marker.exists()
    assert recorded == [["record", "-m", "ops", "review", *words]]


def test_make_environment_variables_are_data_too(project: Project) -> None:
    marker = project.marker
    project.env["ARGS"] = f"--yes $(shell touch {marker})"

    recorded = project.make("promote", FROM="dev", TO="staging")

    assert not marker.exists()
    words = ["--yes", "$(shell", "touch", f"{marker})"]
    assert recorded == [["record", "-m", "ops", "promote", "--from", "dev", "--to", "staging", *words]]


def test_make_runs_no_shell_on_an_unused_variable(project: Project) -> None:
    marker = project.marker

    project.make("preview", OUT=f"$(shell touch {marker})", FROM=f"`touch {marker}`")

    assert not marker.exists()


def test_make_secret_hands_stack_and_key_over_as_they_are(project: Project) -> None:
    marker = project.marker
    values = hostile(marker)

    recorded = [project.make("secret", STACK=value, KEY=f"{value}-key")[-1] for value in values]

    assert not marker.exists()
    assert recorded == [["record", "-m", "ops", "secret", value, f"{value}-key"] for value in values]
