"""`make bench`: its arithmetic and goals, the copy's shape, its event log reading, and a tiny run on the platform."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pulumi import automation as auto

from settings.stack_files import as_engine_values, read_engine_config
from tests.conftest import ROOT, Deploy, serving, stack_config, with_password
from tests.e2e.test_exercise import kubectl
from tooling.bench import steps
from tooling.bench.__main__ import TINY_SIZES, main
from tooling.bench.phases import (
    BUILD,
    BUILD_AND_PUSH,
    OLD_JOB,
    PUSH,
    REST,
    ROLLOUT,
    START,
    VERIFICATION,
    Arrival,
    EventTail,
    phases,
)
from tooling.bench.project import REPOSITORY, isolated
from tooling.bench.report import JSON_NAME, PNG_NAME, as_json, goals, table
from tooling.bench.stats import Line, least_squares, paired_ratios, summarize
from tooling.bench.steps import Goal, Results, Scaling, Shape, Step, watch_until_served

STEPS = (
    "preview",
    "preview-policy",
    "up",
    "up-policy",
    "up-policy-vs-empty-up",
    "make-up",
    "edit-to-served",
    "edit-make-up",
    "edit-up-phases",
    "review",
    "render",
    "promote",
    "make-unit",
)
"""Every step the issue asks for, as keys of bench.json."""
PAIRED = ("preview", "preview-policy", "up", "up-policy", "up-policy-vs-empty-up")
"""The steps each run beside a floor."""
GOALS = {
    "preview-policy": (1.5, "ratio", True),
    "up-policy": (1.8, "ratio", True),
    "up-policy-vs-empty-up": (1.8, "ratio", False),
    "edit-to-served": (10.0, "seconds", True),
    "edit-make-up": (10.0, "seconds", True),
    "make-unit": (30.0, "seconds", True),
}
"""The issue's goals: step, bound, what it bounds, and whether it is the reading the goal is judged on."""
SECRET_KEYS = ("hello-world:registryPassword",)
IMAGE_URN = "urn:pulumi:dev::hello-world::hello-world:index:ContainerImage$docker-build:index:Image::app-image"
DEPLOYMENT_URN = "urn:pulumi:dev::hello-world::hello-world:index:WebService$kubernetes:apps/v1:Deployment::hw"
JOB_URN = "urn:pulumi:dev::hello-world::hello-world:index:WebService$kubernetes:batch/v1:Job::hello-world-verify"
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


def test_isolated_changes_only_the_namespace_the_node_port_and_the_repository() -> None:
    tracked = read_engine_config(ROOT, "dev")

    copy = isolated(tracked, "bench-abc123-dev")

    assert copy["hello-world:namespace"] == "bench-abc123-dev"
    assert "hello-world:nodePort" not in copy
    assert copy["hello-world:build"] == {**tracked["hello-world:build"], "repository": REPOSITORY}
    untouched = set(tracked) - {"hello-world:namespace", "hello-world:nodePort", "hello-world:build"}
    assert {key: copy[key] for key in untouched} == {key: tracked[key] for key in untouched}


def program_shape(deploy: Deploy, config: dict[str, str]) -> list[tuple[str, str]]:
    """The resources (type, name) that the program registers for dev with ``config``, under mocks."""
    return sorted(
        (resource.type, resource.name) for resource in deploy("dev", with_password(config), SECRET_KEYS).resources
    )


def test_the_bench_copys_dev_registers_the_same_resources_as_the_projects_dev(deploy: Deploy) -> None:
    projects = program_shape(deploy, stack_config("dev"))
    copys = program_shape(deploy, as_engine_values(isolated(read_engine_config(ROOT, "dev"), "bench-abc123-dev")))

    assert copys == projects
    assert ("docker-build:index:Image", "app-image") in copys, "dev builds its image"


def step_with(key: str, seconds: list[float], floor: list[float] | None = None, goal: Goal | None = None) -> Step:
    if floor is None:
        return Step(key=key, label=f"the {key} step", seconds=summarize(seconds), goal=goal)
    return Step(
        key=key,
        label=f"the {key} step",
        seconds=summarize(seconds),
        floor="floor",
        floor_seconds=summarize(floor),
        ratio=paired_ratios(seconds, floor),
        goal=goal,
    )


def test_goals_judge_the_median_ratio_or_the_median_seconds() -> None:
    results = Results(
        steps=[
            step_with("preview-policy", [1.4, 1.6, 1.5], [1.0, 1.0, 1.0], Goal(limit=1.5)),
            step_with("up-policy-vs-empty-up", [2.0], [1.0], Goal(limit=1.8, counts=False)),
            step_with("edit-to-served", [9.0, 12.0, 11.0], goal=Goal(limit=10.0)),
            step_with("review", [5.0]),
        ],
        scaling=Scaling(
            sizes=(1, 2),
            seconds=(summarize([1.0]), summarize([1.05])),
            floor_seconds=summarize([0.7]),
            line=Line(slope=0.05, intercept=0.95),
        ),
    )

    assert [step.met for step in results.steps] == [True, False, False, None]
    assert goals(results) == [
        "- the preview-policy step: 1.50x, goal <= 1.5x of the floor: met",
        "- the up-policy-vs-empty-up step: 2.00x, goal <= 1.8x of the floor: not met "
        "(a stricter reading, shown beside the goal's)",
        "- the edit-to-served step: 11.00 s, goal <= 10 s: not met",
        "- preview slope: 50.0 ms a service, goal <= 40 ms: not met",
    ]
    printed = table(results)
    assert "| 1.50x (1.40-1.60) | <= 1.5x: met |" in printed
    assert "| <= 1.8x: not met (stricter reading, not the goal's) |" in printed
    assert "| 11.00 s (9.00-12.00) |  |  | <= 10 s: not met |" in printed
    assert "| <= 40 ms a service: not met |" in printed
    document = as_json(results, {})
    assert document["steps"]["preview-policy"]["goal"] == {"limit": 1.5, "of": "ratio", "met": True, "counts": True}
    assert document["steps"]["edit-to-served"]["goal"]["of"] == "seconds"
    assert "goal" not in document["steps"]["review"]
    assert document["scaling"]["goal"] == {"limit_seconds_per_service": 0.04, "met": False}
    assert document["goals"] == goals(results)


def event(**fields: Any) -> auto.EngineEvent:
    return auto.EngineEvent.from_json({"sequence": 0, "timestamp": 0, **fields})


def pre(urn: str, type_: str, op: str) -> auto.EngineEvent:
    return event(resourcePreEvent={"metadata": {"urn": urn, "type": type_, "op": op, "provider": ""}})


def outputs(urn: str, type_: str, op: str) -> auto.EngineEvent:
    return event(resOutputsEvent={"metadata": {"urn": urn, "type": type_, "op": op, "provider": ""}})


def status(urn: str, message: str) -> auto.EngineEvent:
    return event(diagnosticEvent={"urn": urn, "message": message, "color": "never", "severity": "info#err",
                                  "ephemeral": True})  # fmt: skip


EDITED_UP = [
    (0.1, pre("urn:pulumi:dev::hello-world::pulumi:pulumi:Stack::hello-world-dev", "pulumi:pulumi:Stack", "same")),
    (1.0, pre(IMAGE_URN, "docker-build:index:Image", "update")),
    (2.0, status(IMAGE_URN, "#9 exporting layers")),
    (3.5, status(IMAGE_URN, "#9 pushing layers")),
    (4.0, status(IMAGE_URN, "#9 pushing manifest for 127.0.0.1:5000/hello-world")),
    (4.5, outputs(IMAGE_URN, "docker-build:index:Image", "update")),
    (4.6, pre(DEPLOYMENT_URN, "kubernetes:apps/v1:Deployment", "update")),
    (12.6, outputs(DEPLOYMENT_URN, "kubernetes:apps/v1:Deployment", "update")),
    (12.7, pre(JOB_URN, "kubernetes:batch/v1:Job", "create-replacement")),
    (15.7, outputs(JOB_URN, "kubernetes:batch/v1:Job", "create-replacement")),
    (15.8, pre(JOB_URN, "kubernetes:batch/v1:Job", "replace")),
    (15.8, outputs(JOB_URN, "kubernetes:batch/v1:Job", "replace")),
    (16.0, pre(JOB_URN, "kubernetes:batch/v1:Job", "delete-replaced")),
    (16.5, outputs(JOB_URN, "kubernetes:batch/v1:Job", "delete-replaced")),
]
"""An edited up's events as they arrived, in seconds since pulumi started."""


def test_phases_cut_an_edited_up_into_build_push_rollout_and_check_that_add_up() -> None:
    found = phases([Arrival(seconds, event) for seconds, event in EDITED_UP], total=17.0)

    assert list(found) == [START, BUILD, PUSH, ROLLOUT, VERIFICATION, OLD_JOB, REST]
    assert found == {
        START: pytest.approx(1.0),
        BUILD: pytest.approx(2.5),
        PUSH: pytest.approx(1.0),
        ROLLOUT: pytest.approx(8.0),
        VERIFICATION: pytest.approx(3.0),
        OLD_JOB: pytest.approx(0.5),
        REST: pytest.approx(1.0),
    }
    assert sum(found.values()) == pytest.approx(17.0)


def test_phases_keep_build_and_push_together_when_the_builder_never_says_pushing() -> None:
    arrivals = [Arrival(seconds, event) for seconds, event in EDITED_UP if event.diagnostic_event is None]

    found = phases(arrivals, total=17.0)

    assert found[BUILD_AND_PUSH] == pytest.approx(3.5)
    assert BUILD not in found
    assert PUSH not in found


def test_event_tail_reads_events_written_while_it_follows_the_log(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    line = json.dumps({"sequence": 1, "timestamp": 0, "cancelEvent": {}})

    with EventTail(log, time.monotonic()) as tail:
        time.sleep(0.1)  # the log does not exist yet when pulumi starts
        with log.open("w") as writing:
            writing.write(line[:10])
            writing.flush()
            time.sleep(0.1)  # half a line is held until its end comes
            writing.write(line[10:] + "\n" + line + "\n")

    assert len(tail.arrivals) == 2
    assert all(arrival.event.cancel_event is not None for arrival in tail.arrivals)
    assert 0 < tail.arrivals[0].seconds <= tail.arrivals[1].seconds


class _Changing(http.server.BaseHTTPRequestHandler):
    """Answers 503 first, then the old text, then the new one: a service during a rollout."""

    answers: ClassVar[list[tuple[int, bytes]]] = []

    def do_GET(self) -> None:
        code, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def rolling_out() -> Iterator[str]:
    handler = type(
        "Changing", (_Changing,), {"answers": [(503, b"down"), (200, b"Hello World"), (200, b"Hello, edited")]}
    )
    with serving(handler) as port:
        yield f"http://127.0.0.1:{port}/"


def test_watch_until_served_times_the_first_new_answer_and_counts_failed_requests(rolling_out: str) -> None:
    up: Future[float] = Future()
    up.set_result(1.0)
    started = time.monotonic()

    served, failed = watch_until_served(rolling_out, "edited", started, up)

    assert served is not None
    assert 0 < served <= time.monotonic() - started
    assert failed == 1


def test_watch_until_served_gives_up_at_its_deadline(monkeypatch: pytest.MonkeyPatch, rolling_out: str) -> None:
    monkeypatch.setattr(steps, "SERVED_TIMEOUT_SECONDS", 0.5)
    up: Future[float] = Future()
    up.set_result(1.0)

    assert watch_until_served(rolling_out, "never served", time.monotonic(), up)[0] is None


@pytest.mark.engine
@pytest.mark.platform
def test_bench_tiny_run_reports_every_step_right_and_leaves_nothing_behind(
    tmp_path: Path, pulumi_cli: str, deploy: Deploy
) -> None:
    """Runs `python -m tooling.bench --tiny` on a copy of the project: it deploys dev and staging in
    namespaces bench-<token>-dev and -staging, on node ports the cluster picks, and destroys them after."""
    # Taken first, from the checkout the bench is about to copy.
    projects_dev = program_shape(deploy, stack_config("dev"))
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

    # Exit 0 also says the make-unit step's tests passed: it hands them the project's own stack files, not the
    # copy's, which they would fail on.
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
    # up-policy is one set of runs, read against two floors: the empty up with the pack, and without it.
    assert document["steps"]["up-policy-vs-empty-up"]["seconds"] == document["steps"]["up-policy"]["seconds"]
    for key, (limit, of, counts) in GOALS.items():
        step = document["steps"][key]
        measured = step["ratio"]["median"] if of == "ratio" else step["seconds"]["median"]
        assert step["goal"] == {"limit": limit, "of": of, "met": measured <= limit, "counts": counts}, key
    assert not [key for key, step in document["steps"].items() if "goal" in step and key not in GOALS]
    assert document["goals"]
    assert all(line in result.stdout for line in document["goals"])
    assert document["scaling"]["goal"]["met"] == (document["scaling"]["slope_seconds_per_service"] <= 0.04)
    # The edited up's phases add up to its time, and the image was built (and pushed).
    phased = document["edit_phases"]
    assert sum(phase["runs"][0] for phase in phased.values()) == pytest.approx(
        document["steps"]["edit-up-phases"]["seconds"]["runs"][0]
    )
    assert all(phase["runs"][0] >= 0 for name, phase in phased.items() if name != REST), phased
    assert {BUILD, PUSH} <= set(phased) or BUILD_AND_PUSH in phased, phased
    assert ROLLOUT in phased, phased
    assert VERIFICATION in phased, phased
    for name in phased:
        assert f"| {name} | " in result.stdout, name
    assert document["failed_requests"] >= 0
    # The copy's dev holds what `make up STACK=dev` makes of the project's dev: besides the stack and the
    # engine's default providers, the resources the program registers for the project's own dev file.
    shape = Shape(resources=tuple((type_, name) for type_, name in document["dev_shape"]["names"]))
    assert document["dev_shape"]["resources"] == len(shape.resources)
    assert document["dev_shape"]["registered"] == len(shape.registered)
    assert sorted(shape.registered) == projects_dev
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
