"""`make bench`: its arithmetic, its make variable, and one quick run on the local platform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tooling.bench.__main__ import QUICK_SIZES
from tooling.bench.report import JSON_NAME, PNG_NAME
from tooling.bench.stats import least_squares, paired_ratios, summarize

STEPS = (
    "preview",
    "preview-policy",
    "up",
    "up-policy",
    "make-up",
    "edit-to-served",
    "review",
    "render",
    "promote",
    "mock-tests",
)
"""Every step the issue asks for, as keys of bench.json."""
QUICK_RUN_TIMEOUT_SECONDS = 1200


def test_summarize_gives_median_min_and_max_in_run_order() -> None:
    summary = summarize([3.0, 1.0, 2.0, 10.0])

    assert (summary.median, summary.minimum, summary.maximum) == (2.5, 1.0, 10.0)
    assert summary.runs == (3.0, 1.0, 2.0, 10.0)


def test_summarize_refuses_no_runs() -> None:
    with pytest.raises(ValueError, match="values must hold at least one run, got none"):
        summarize([])


def test_paired_ratios_divides_each_run_by_the_floor_beside_it() -> None:
    # A load spike in run 2 doubles both sides: the ratio of the pair stays 2.
    ratio = paired_ratios([2.0, 4.0, 2.2], [1.0, 2.0, 1.0])

    assert ratio.runs == (2.0, 2.0, 2.2)
    assert ratio.median == 2.0


@pytest.mark.parametrize(
    ("step", "floor", "message"),
    [
        ([1.0, 2.0], [1.0], "step and floor must have the same number of runs .at least 1., got 2 and 1"),
        ([], [], "got 0 and 0"),
        ([1.0], [0.0], "floor runs must take some time, got 0.0"),
    ],
    ids=["unpaired", "empty", "zero-floor"],
)
def test_paired_ratios_refuses_runs_that_do_not_pair(step: list[float], floor: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_ratios(step, floor)


def test_least_squares_finds_the_slope_and_intercept_of_a_line() -> None:
    line = least_squares([1, 10, 50, 100], [1.03, 1.3, 2.5, 4.0])

    assert line.slope == pytest.approx(0.03)
    assert line.intercept == pytest.approx(1.0)


def test_least_squares_refuses_a_single_size() -> None:
    with pytest.raises(
        ValueError, match=r"counts must hold at least two distinct values, one per time, got \[10, 10\]"
    ):
        least_squares([10, 10], [1.0, 1.1])


@pytest.mark.parametrize("value", ["2", "yes", "1;touch {marker}", "$(touch {marker})", "`touch {marker}`"])
def test_make_bench_refuses_a_quick_other_than_1_or_0_and_runs_none_of_it(tmp_path: Path, value: str) -> None:
    marker = tmp_path / "marker"
    quick = value.format(marker=marker)
    # The prerequisites are taken as done: the check must come before anything runs.
    result = subprocess.run(
        ["make", "-C", str(ROOT), "-o", "venv", "-o", "tools", "-o", "platform", "bench", f"QUICK={quick}"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2
    assert "QUICK for make bench must be 1, 0 or nothing, got " in result.stderr
    assert not marker.exists()


@pytest.mark.engine
@pytest.mark.platform
def test_bench_quick_run_reports_every_step_and_draws_the_curve(tmp_path: Path, pulumi_cli: str) -> None:
    """Runs `python -m tooling.bench --quick` on a copy of the project: it deploys dev and staging in
    namespaces bench-<token>-dev and -staging, on node ports the cluster picks, and destroys them after."""
    result = subprocess.run(
        [sys.executable, "-m", "tooling.bench", "--quick", f"--out={tmp_path}"],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=QUICK_RUN_TIMEOUT_SECONDS,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    document = json.loads((tmp_path / JSON_NAME).read_text())
    assert set(document["steps"]) == set(STEPS)
    for key, step in document["steps"].items():
        assert step["seconds"]["runs"], key
        assert min(step["seconds"]["runs"]) > 0, key
        if "ratio" in step:
            assert step["floor_seconds"]["median"] > 0, key
            assert step["ratio"]["median"] > 0, key
    for key in ("preview", "preview-policy", "up", "up-policy"):
        assert "ratio" in document["steps"][key], f"{key} must be paired with the floor"
    scaling = document["scaling"]
    assert scaling["sizes"] == list(QUICK_SIZES)
    assert all(size["median"] > 0 for size in scaling["seconds"])
    assert scaling["floor_seconds"]["median"] > 0
    assert (tmp_path / PNG_NAME).stat().st_size > 0
    assert "| step | this project | floor | ratio |" in result.stdout
