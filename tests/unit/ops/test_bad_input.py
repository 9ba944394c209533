"""Bad input to `python -m ops` is a named error, quickly, and changes nothing: a wait that never ends, no pulumi."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ops.__main__ import main
from ops.locking import MAX_WAIT_SECONDS, StackLockedError, locked
from ops.program_copy import copy_program
from tests import ops_process
from tests.conftest import ROOT

PULUMI_MISSING = "error: the pulumi CLI must be on PATH (`make tools` builds it), got no 'pulumi'\n"


@pytest.mark.parametrize("wait", ["nan", "inf", "-inf", "-1", "1e9", "soon"])
def test_promote_refuses_a_wait_that_is_not_a_bounded_number_of_seconds(
    wait: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()

    with pytest.raises(SystemExit) as exited:
        main(["promote", "--from", "dev", "--to", "staging", f"--wait={wait}"])

    assert exited.value.code == 2
    assert time.monotonic() - started < 2
    assert (
        f"argument --wait: --wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}, got {wait!r}"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("wait", [float("nan"), float("inf"), -1.0])
def test_locked_refuses_an_unbounded_wait_before_taking_the_lock(tmp_path: Path, wait: float) -> None:
    with (
        pytest.raises(
            ValueError, match=rf"^wait_seconds must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}, got {wait}$"
        ),
        locked(tmp_path, "dev", purpose="test", wait_seconds=wait),
    ):
        pass

    assert not (tmp_path / ".state").exists()


def test_a_lock_held_elsewhere_is_waited_for_no_longer_than_asked(tmp_path: Path) -> None:
    with locked(tmp_path, "dev", purpose="holder"):
        started = time.monotonic()
        with (
            pytest.raises(StackLockedError, match=r"waited 0\.2s"),
            locked(tmp_path, "dev", purpose="w", wait_seconds=0.2),
        ):
            pass
    assert time.monotonic() - started < 2


def tree(folder: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
        if ".venv" not in path.parts
    }


@pytest.mark.parametrize(
    "args",
    [
        ["preview", "dev"],
        ["up", "dev"],
        ["destroy", "dev"],
        ["refresh", "dev"],
        ["review", "dev"],
        ["secret", "dev", "imagePullPassword"],
        ["promote", "--from", "dev", "--to", "staging", "--yes"],
        ["render", "dev", "rendered"],
    ],
    ids=lambda args: args[0],
)
def test_every_command_without_pulumi_on_path_is_a_named_error_that_changes_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    project = copy_program(tmp_path / "project", ROOT)
    for path in ROOT.glob("Pulumi.*.yaml"):
        shutil.copy2(path, project / path.name)
    empty = tmp_path / "bin"
    empty.mkdir()
    before = tree(tmp_path)

    result = ops_process.run(
        args,
        cwd=project,
        env={
            "PATH": str(empty),
            "HOME": str(tmp_path / "home"),
            "PYTHONPATH": str(ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
            "HELLO_PROJECT_DIR": str(project),
            "PULUMI_BACKEND_URL": f"file://{tmp_path / 'backend'}",
            "PULUMI_CONFIG_PASSPHRASE": "unused",
        },
        input="value\n",
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr == PULUMI_MISSING
    assert tree(tmp_path) == before
