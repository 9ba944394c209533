"""A failed rollout rolls itself back, with the real engine, registry and cluster, under a counted request loop.

Needs the full local platform, which `make test` starts. Runs `make up`'s command (``python -m ops up``)
on a throwaway dev-like stack in namespace rollback-dev, node port 31661.
The tests run in file order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_exercise import Load, kube_image, set_message
from tests.engine.fixtures import LocalRegistry, Teardowns, building_workspace, local_cluster
from tests.engine.workspace import ROOT, Workspace, steps_by_op

pytestmark = [pytest.mark.engine, pytest.mark.platform]

NAMESPACE = "rollback-dev"
NODE_PORT = 31661
URL = f"http://127.0.0.1:{NODE_PORT}/"
ROLLOUT_TIMEOUT_SECONDS = 20
DETECTION_MARGIN_SECONDS = 30
"""How long after the rollout timeout the failure may be reported: pulumi's await polls, then reports."""
DEPLOYMENT = ("kubernetes:apps/v1:Deployment", "hello-world-deployment")
# The request loop's pace (its bounds in count and time are test_exercise's Load's), on loopback only.
LOAD_INTERVAL_SECONDS = 0.05
RUN_TIMEOUT_SECONDS = 900


@dataclass
class Run:
    """One ``python -m ops up STACK``, with when its key lines were printed."""

    code: int
    stdout: str
    stderr: str
    started: float
    rollout_started: float | None
    rollback_started: float | None
    ended: float


def up_with_rollback(workspace: Workspace, *extra: str) -> Run:
    """What `make up` runs, on the workspace's copy of the project."""
    env = {**workspace.env, "PYTHONPATH": str(ROOT), "HELLO_PROJECT_DIR": str(workspace.directory)}
    command = [sys.executable, "-m", "ops", "up", workspace.stack, *extra]
    started = time.monotonic()
    rollout_started = rollback_started = None
    lines = []
    with subprocess.Popen(
        command,
        cwd=workspace.directory,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        for line in process.stdout:
            lines.append(line)
            if rollout_started is None and "hello-world-deployment updating" in line:
                rollout_started = time.monotonic()
            if rollback_started is None and "rolling back to" in line:
                rollback_started = time.monotonic()
        stderr = process.stderr.read()
        code = process.wait(RUN_TIMEOUT_SECONDS)
    return Run(code, "".join(lines), stderr, started, rollout_started, rollback_started, time.monotonic())


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Workspace]:
    """A dev-like stack with a short rollout timeout, deployed once with a good version."""
    workspace = building_workspace(
        tmp_path_factory.mktemp("rollback"),
        "dev",
        registry,
        "hello-world-rollback",
        namespace=NAMESPACE,
        nodePort=str(NODE_PORT),
        rolloutTimeoutSeconds=str(ROLLOUT_TIMEOUT_SECONDS),
        cluster=local_cluster(),
        verification=json.dumps({"body": "Hello"}),
    )
    try:
        set_message(workspace, "Hello Good World")
        # As `make up` deploys it: its verification passes and signs the evidence a rollback asks for.
        first = up_with_rollback(workspace)
        assert first.code == 0, first.stdout + first.stderr
        yield workspace
    finally:
        teardowns.destroy(workspace)


def stack_file(workspace: Workspace) -> bytes:
    return (workspace.directory / f"Pulumi.{workspace.stack}.yaml").read_bytes()


def test_rollout_that_never_gets_ready_rolls_back_to_the_verified_digest_without_dropping_requests(
    workspace: Workspace, figure: Callable[[str], None]
) -> None:
    good = workspace.outputs()["verifiedImageRef"]
    assert kube_image(NAMESPACE) == good
    set_message(workspace, "Hello Broken World", healthy=False)
    before = stack_file(workspace)

    with Load(URL, LOAD_INTERVAL_SECONDS) as load:
        run = up_with_rollback(workspace)

    assert run.rollout_started is not None, run.stdout + run.stderr
    assert run.rollback_started is not None, run.stdout + run.stderr
    detect = run.rollback_started - run.rollout_started
    roll_back = run.ended - run.rollback_started
    figure(
        f"rollback e2e: failure detected {detect:.1f}s after the rollout began (rolloutTimeoutSeconds "
        f"{ROLLOUT_TIMEOUT_SECONDS}), rolled back in {roll_back:.1f}s, whole run {run.ended - run.started:.1f}s; "
        f"{load.result.sent} requests, {load.result.failed} failed"
    )
    print(run.stderr)
    assert run.code == 1, run.stdout + run.stderr
    assert f"rolled back to {good}" in run.stderr, run.stderr
    assert "hello-world-deployment (kubernetes:apps/v1:Deployment)" in run.stderr, run.stderr
    assert detect <= ROLLOUT_TIMEOUT_SECONDS + DETECTION_MARGIN_SECONDS
    assert load.result.sent > 0
    assert load.result.failed == 0, load.result.errors[:5]
    assert load.result.bodies == {"Hello Good World\n"}
    assert kube_image(NAMESPACE) == good
    assert workspace.outputs()["imageRef"] == good
    assert workspace.outputs()["verifiedImageRef"] == good
    assert stack_file(workspace) == before, "the stack file keeps the change that failed"


def test_after_a_rollback_refresh_finds_no_drift_and_preview_shows_the_failed_change_pending(
    workspace: Workspace,
) -> None:
    workspace.pulumi("refresh", "--yes", "--expect-no-changes")

    preview = steps_by_op(workspace.preview_json())

    assert DEPLOYMENT in preview.get("update", set()), preview


def test_no_rollback_leaves_the_failed_rollout_and_says_what_runs(workspace: Workspace) -> None:
    good = workspace.outputs()["verifiedImageRef"]

    run = up_with_rollback(workspace, "--no-rollback")

    print(run.stderr)
    assert run.code == 1, run.stdout + run.stderr
    assert run.rollback_started is None
    assert "not rolled back (--no-rollback)" in run.stderr, run.stderr
    assert f"the last verified image is {good}" in run.stderr
    assert kube_image(NAMESPACE) != good
    assert workspace.outputs()["verifiedImageRef"] == good, "a failed up keeps the previous outputs"


def test_a_later_failed_up_rolls_back_from_a_rollout_left_by_no_rollback(workspace: Workspace) -> None:
    good = workspace.outputs()["verifiedImageRef"]

    run = up_with_rollback(workspace)

    assert run.code == 1, run.stdout + run.stderr
    assert f"rolled back to {good}" in run.stderr, run.stderr
    assert kube_image(NAMESPACE) == good


def test_failed_verification_rolls_back_and_the_old_digest_passes_again(workspace: Workspace) -> None:
    good = workspace.outputs()["verifiedImageRef"]
    verified_at = workspace.outputs()["verifiedAt"]
    set_message(workspace, "Goodbye World")  # answers, but fails the check for "Hello"

    with Load(URL, LOAD_INTERVAL_SECONDS) as load:
        run = up_with_rollback(workspace)

    print(run.stderr)
    assert run.code == 1, run.stdout + run.stderr
    assert "hello-world-verify (kubernetes:batch/v1:Job)" in run.stderr, run.stderr
    assert f"rolled back to {good}" in run.stderr, run.stderr
    assert kube_image(NAMESPACE) == good
    assert workspace.outputs()["verifiedImageRef"] == good
    assert workspace.outputs()["verifiedAt"] != verified_at, "the rollback ran the check again"
    assert load.result.failed == 0, load.result.errors[:5]
    workspace.pulumi("refresh", "--yes", "--expect-no-changes")


def test_first_up_that_fails_has_nothing_to_roll_back_to_and_says_so(
    tmp_path: Path, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> None:
    fresh = building_workspace(
        tmp_path,
        "dev",
        registry,
        "hello-world-rollback-fresh",
        namespace="rollback-fresh",
        nodePort=str(NODE_PORT + 3),
        rolloutTimeoutSeconds=str(ROLLOUT_TIMEOUT_SECONDS),
        cluster=local_cluster(),
    )
    try:
        # Fails its verification (the default check expects "Hello World"). A first rollout whose pods
        # never get ready would fail too, but only when the Service's own await gives up, after 10 minutes.
        set_message(fresh, "Goodbye World")

        run = up_with_rollback(fresh)

        print(run.stderr)
        assert run.code == 1, run.stdout + run.stderr
        assert run.rollback_started is None
        assert "nothing to roll back to: no image ever passed verification on this stack" in run.stderr, run.stderr
        assert f"it runs what the failed update left ({kube_image('rollback-fresh')})" in run.stderr
    finally:
        teardowns.destroy(fresh)
