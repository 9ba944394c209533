"""`make bench`: its arithmetic, its make variable, and one tiny run on the local platform."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.test_exercise import kubectl
from tooling.bench.__main__ import TINY_SIZES, main
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
PAIRED = ("preview", "preview-policy", "up", "up-policy")
"""The steps each run beside the floor."""
TINY_RUN_TIMEOUT_SECONDS = 600
NAMESPACES = re.compile(r"namespaces ((?:bench-[0-9a-f]{6}-[a-z]+(?:, )?)+)$", re.MULTILINE)
"""The bench's line that names the namespaces of its copy's stacks."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def test_bench_refuses_quick_and_tiny_together(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--quick", "--tiny"])

    assert stopped.value.code == 2
    assert "argument --tiny: not allowed with argument --quick" in capsys.readouterr().err


@pytest.mark.engine
@pytest.mark.platform
def test_bench_tiny_run_reports_every_step_right_and_leaves_nothing_behind(tmp_path: Path, pulumi_cli: str) -> None:
    """Runs `python -m tooling.bench --tiny` on a copy of the project: it deploys dev and staging in
    namespaces bench-<token>-dev and -staging, on node ports the cluster picks, and destroys them after."""
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "tooling.bench", "--tiny", f"--out={out}"],
        cwd=ROOT,
        # The copy is made under TMPDIR: here, where the test can see that it is gone.
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=TINY_RUN_TIMEOUT_SECONDS,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    document = json.loads((out / JSON_NAME).read_text())
    assert document["machine"]["runs"] == 1
    assert set(document["steps"]) == set(STEPS)
    for key, step in document["steps"].items():
        assert len(step["seconds"]["runs"]) == 1, key
        assert step["seconds"]["runs"][0] > 0, key
        # The table shows every step with its time.
        assert f"| {step['label']} | {step['seconds']['median']:.2f} s (" in result.stdout, key
    assert [key for key, step in document["steps"].items() if "ratio" in step] == list(PAIRED)
    for key in PAIRED:
        step = document["steps"][key]
        assert step["floor_seconds"]["runs"][0] > 0, key
        assert step["ratio"]["runs"] == [
            pytest.approx(step["seconds"]["runs"][0] / step["floor_seconds"]["runs"][0])
        ], key
        assert f" | {step['ratio']['median']:.2f}x (" in result.stdout, key
    # The mock suite's step hands the suite the project's own stack files: with the copy's, it would fail.
    assert "ran with failures" not in result.stderr
    scaling = document["scaling"]
    assert scaling["sizes"] == list(TINY_SIZES)
    medians = [size["median"] for size in scaling["seconds"]]
    assert all(median > 0 for median in medians)
    assert scaling["floor_seconds"]["median"] > 0
    # Two sizes: the least-squares line goes through both points.
    slope = (medians[1] - medians[0]) / (TINY_SIZES[1] - TINY_SIZES[0])
    assert scaling["slope_seconds_per_service"] == pytest.approx(slope)
    assert scaling["intercept_seconds"] == pytest.approx(medians[0] - slope * TINY_SIZES[0])
    assert f"| {scaling['slope_seconds_per_service'] * 1000:.1f} ms a service (least squares) |" in result.stdout
    assert (out / PNG_NAME).read_bytes().startswith(PNG_SIGNATURE)
    named = NAMESPACES.search(result.stderr)
    assert named, result.stderr[-5000:]
    namespaces = named.group(1).split(", ")
    assert len(namespaces) == 3
    left = kubectl("get", "namespaces", *namespaces, "--ignore-not-found", "-o", "name").stdout
    assert left == "", f"the bench left {left.split()} in the cluster"
    assert not list(scratch.glob("hello-bench-*")), "the bench left its copy of the project"
