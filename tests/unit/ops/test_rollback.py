"""Rollback without an engine: the decision, every message, the temporary config, and the wiring of
make up and promote (a stand-in stack records what would be deployed)."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto
from pulumi.automation.errors import create_command_error

from ops.policy_config import PolicyRun
from ops.rollback import (
    DEPLOYMENT_TYPE,
    Decision,
    Failure,
    decide,
    deployed_image,
    roll_back,
    rollback_config_file,
    rollback_document,
)
from tests.unit.ops.test_promotion import parse_args
from tests.unit.tooling.test_make_inputs import Project

GOOD = "127.0.0.1:5000/hello-world@sha256:" + "1" * 64
BAD = "127.0.0.1:5000/hello-world@sha256:" + "2" * 64
FAILURE = Failure(stack="dev", what="hello-world-deployment (kubernetes:apps/v1:Deployment): timed out")
STACK_FILE = {
    "encryptionsalt": "v1:salt",
    "config": {
        "hello-world:replicas": "2",
        "hello-world:build": {"registry": "127.0.0.1:5000", "username": "hello"},
        "hello-world:registryPassword": {"secure": "v1:ciphertext"},
        "hello-world:cluster": {"secure": "v1:other"},
    },
}


@pytest.mark.parametrize(
    ("verified", "deployed", "rollback", "expected"),
    [
        (GOOD, BAD, True, Decision.ROLL_BACK),
        (GOOD, None, True, Decision.ROLL_BACK),
        (GOOD, GOOD, True, Decision.UNCHANGED),
        (GOOD, GOOD, False, Decision.UNCHANGED),
        (GOOD, BAD, False, Decision.DISABLED),
        (None, BAD, False, Decision.DISABLED),
        (None, BAD, True, Decision.NOTHING_TO_RETURN_TO),
        (None, None, True, Decision.NOTHING_TO_RETURN_TO),
    ],
    ids=[
        "changed-image",
        "no-deployment-in-state",
        "image-unchanged",
        "image-unchanged-without-rollback",
        "no-rollback",
        "no-rollback-and-never-verified",
        "never-verified",
        "never-deployed",
    ],
)
def test_decide_rolls_back_only_a_changed_image_to_a_verified_one(
    verified: str | None, deployed: str | None, rollback: bool, expected: Decision
) -> None:
    assert decide(verified=verified, deployed=deployed, rollback=rollback) is expected


def test_failure_message_unchanged_says_what_still_runs() -> None:
    assert FAILURE.message(Decision.UNCHANGED, verified=GOOD, deployed=GOOD) == (
        "stack 'dev': the update failed (hello-world-deployment (kubernetes:apps/v1:Deployment): timed out) "
        f"before it changed the image that runs: {GOOD} still runs; nothing to roll back"
    )


def test_failure_message_disabled_names_the_flag_what_runs_and_the_last_verified_image() -> None:
    assert FAILURE.message(Decision.DISABLED, verified=GOOD, deployed=BAD) == (
        "stack 'dev': the update failed (hello-world-deployment (kubernetes:apps/v1:Deployment): timed out); "
        f"not rolled back (--no-rollback): it runs what the failed update left ({BAD}); "
        f"the last verified image is {GOOD}"
    )


def test_failure_message_disabled_on_a_stack_never_verified_says_so() -> None:
    message = FAILURE.message(Decision.DISABLED, verified=None, deployed=None)

    assert message.endswith(
        "it runs what the failed update left (no Deployment); no image ever passed verification here"
    )


def test_failure_message_nothing_to_return_to_says_no_image_ever_passed() -> None:
    assert FAILURE.message(Decision.NOTHING_TO_RETURN_TO, verified=None, deployed=BAD) == (
        "stack 'dev': the update failed (hello-world-deployment (kubernetes:apps/v1:Deployment): timed out); "
        "nothing to roll back to: no image ever passed verification on this stack (it has no verifiedImageRef "
        f"output), so it runs what the failed update left ({BAD})"
    )


def test_failure_message_refuses_the_rollback_decision() -> None:
    with pytest.raises(ValueError, match="decision must not be ROLL_BACK here, got it"):
        FAILURE.message(Decision.ROLL_BACK, verified=GOOD, deployed=BAD)


def test_failure_rolled_back_says_what_failed_and_what_runs_now() -> None:
    assert FAILURE.rolled_back(GOOD, GOOD) == (
        "stack 'dev': the update failed (hello-world-deployment (kubernetes:apps/v1:Deployment): timed out); "
        f"rolled back to {GOOD}, the last image that passed verification here, and that rollout finished: "
        "it runs now. The failed change is still pending (pulumi preview shows it)"
    )


def test_failure_rolled_back_after_a_promotion_does_not_call_the_restored_change_pending() -> None:
    promotion = Failure(stack="staging", what="timed out", pending=False)

    assert promotion.rolled_back(GOOD, GOOD) == (
        f"stack 'staging': the update failed (timed out); rolled back to {GOOD}, the last image that passed "
        "verification here, and that rollout finished: it runs now"
    )


def test_failure_rolled_back_to_another_image_than_asked_says_so() -> None:
    assert FAILURE.rolled_back(GOOD, BAD).endswith(
        f"the rollback to {GOOD} completed, but the stack's imageRef must then be that digest, got {BAD}: "
        "preview the stack"
    )


def test_failure_rollback_failed_says_both_failures() -> None:
    assert FAILURE.rollback_failed(GOOD, "boom") == (
        "stack 'dev': the update failed (hello-world-deployment (kubernetes:apps/v1:Deployment): timed out), "
        f"and the rollback to {GOOD} failed too (boom): what runs is unknown; preview and refresh the stack"
    )


def deployment_resource(image: str, **extra: Any) -> dict[str, Any]:
    outputs = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    return {"type": DEPLOYMENT_TYPE, "outputs": outputs, **extra}


def test_deployed_image_reads_the_state_deployments_container() -> None:
    state = {"resources": [{"type": "kubernetes:batch/v1:Job"}, deployment_resource(BAD)]}

    assert deployed_image(state) == BAD


def test_deployed_image_skips_a_deployment_pending_deletion_and_is_none_without_one() -> None:
    assert deployed_image({"resources": [deployment_resource(GOOD, delete=True), deployment_resource(BAD)]}) == BAD
    assert deployed_image({"resources": []}) is None
    assert deployed_image({}) is None


def test_deployed_image_refuses_two_deployments() -> None:
    state = {"resources": [deployment_resource(GOOD), deployment_resource(BAD)]}

    with pytest.raises(ValueError, match=f"the state must hold one {DEPLOYMENT_TYPE}, got 2"):
        deployed_image(state)


def test_rollback_document_pins_the_verified_image_and_drops_the_build_keeping_salt_and_secrets() -> None:
    document = rollback_document(STACK_FILE, GOOD)

    assert document == {
        "encryptionsalt": "v1:salt",
        "config": {
            "hello-world:replicas": "2",
            "hello-world:cluster": {"secure": "v1:other"},
            "hello-world:image": GOOD,
        },
    }
    assert "hello-world:build" in STACK_FILE["config"], "the stack file's document is not changed"  # type: ignore[operator]


def test_rollback_config_file_is_private_and_removed_afterwards(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(STACK_FILE))

    with rollback_config_file(tmp_path / "Pulumi.dev.yaml", GOOD) as path:
        mode = stat.S_IMODE(path.stat().st_mode)
        folder_mode = stat.S_IMODE(path.parent.stat().st_mode)
        written = yaml.safe_load(path.read_text())

    assert (mode, folder_mode) == (0o600, 0o700)
    assert written == rollback_document(STACK_FILE, GOOD)
    assert not path.exists()
    assert not path.parent.exists()


def test_rollback_config_file_is_removed_when_the_rollback_fails(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(STACK_FILE))

    with pytest.raises(RuntimeError), rollback_config_file(tmp_path / "Pulumi.dev.yaml", GOOD) as path:
        raise RuntimeError

    assert not path.parent.exists()


@dataclass
class FakeStack:
    """Stands in for auto.Stack: outputs, an exported state, and an up that records its config file."""

    outputs_before: dict[str, Any]
    deployed: str | None
    outputs_after: dict[str, Any] = field(default_factory=dict)
    fail_up: bool = False
    ups: list[dict[str, Any]] = field(default_factory=list)

    def outputs(self) -> dict[str, auto.OutputValue]:
        values = self.outputs_after if self.ups else self.outputs_before
        return {key: auto.OutputValue(value, False) for key, value in values.items()}

    def export_stack(self) -> auto.Deployment:
        resources = [] if self.deployed is None else [deployment_resource(self.deployed)]
        return auto.Deployment(version=3, deployment={"resources": resources})

    def up(self, **kwargs: Any) -> None:
        config = Path(kwargs["config_file"])
        self.ups.append({**kwargs, "config": yaml.safe_load(config.read_text()), "mode": config.stat().st_mode})
        if self.fail_up:
            diagnostic = {"message": "the registry is gone", "color": "never", "severity": "error"}
            kwargs["on_event"](
                auto.EngineEvent.from_json({"sequence": 1, "timestamp": 0, "diagnosticEvent": diagnostic})
            )
            raise create_command_error(auto.CommandResult(stdout="", stderr="error: the registry is gone", code=1))


def run_roll_back(tmp_path: Path, stack: FakeStack, rollback: bool = True, doubt: str | None = None) -> str:
    """Rolls ``stack`` back; the image its state names as verified has trusted evidence unless ``doubt`` says why
    not."""
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(STACK_FILE))
    policy = PolicyRun(pack=tmp_path / "policy", config=tmp_path / "policy.json")
    said: list[str] = []
    asked: list[str] = []

    def doubting(reference: str) -> str | None:
        asked.append(reference)
        return doubt

    error = roll_back(
        stack,  # type: ignore[arg-type]
        config=tmp_path / "Pulumi.dev.yaml",
        failure=FAILURE,
        rollback=rollback,
        policy=policy,
        doubt=doubting,
        say=said.append,
    )
    assert asked in ([], [GOOD]), "only the image to roll back to is asked about"
    return str(error)


def test_roll_back_deploys_nothing_when_the_state_s_verified_image_has_no_trusted_evidence(tmp_path: Path) -> None:
    stack = FakeStack({"verifiedImageRef": GOOD, "imageRef": BAD}, BAD)

    message = run_roll_back(tmp_path, stack, doubt="it has no signed evidence")

    assert stack.ups == []
    assert message == FAILURE.untrusted(GOOD, "it has no signed evidence", BAD)
    assert f"; not rolled back to {GOOD}, which the state names as verified, because it has no signed evidence;" in (
        message
    )


def test_roll_back_deploys_the_verified_image_through_a_private_copy_with_the_policy_pack(tmp_path: Path) -> None:
    stack = FakeStack({"verifiedImageRef": GOOD, "imageRef": GOOD}, BAD, outputs_after={"imageRef": GOOD})

    message = run_roll_back(tmp_path, stack)

    (up,) = stack.ups
    assert up["config"]["config"]["hello-world:image"] == GOOD
    assert "hello-world:build" not in up["config"]["config"]
    assert stat.S_IMODE(up["mode"]) == 0o600
    assert up["policy_packs"] == [str(tmp_path / "policy")]
    assert up["policy_pack_configs"] == [str(tmp_path / "policy.json")]
    assert message == FAILURE.rolled_back(GOOD, GOOD)
    assert yaml.safe_load((tmp_path / "Pulumi.dev.yaml").read_text()) == STACK_FILE, "the stack file keeps the change"


@pytest.mark.parametrize(
    ("outputs", "deployed", "rollback", "decision"),
    [
        ({"verifiedImageRef": GOOD}, GOOD, True, Decision.UNCHANGED),
        ({"verifiedImageRef": GOOD}, BAD, False, Decision.DISABLED),
        ({}, BAD, True, Decision.NOTHING_TO_RETURN_TO),
        ({"verifiedImageRef": ""}, BAD, True, Decision.NOTHING_TO_RETURN_TO),
    ],
    ids=["unchanged", "no-rollback", "no-verified-output", "empty-verified-output"],
)
def test_roll_back_deploys_nothing_unless_it_is_due(
    tmp_path: Path, outputs: dict[str, Any], deployed: str, rollback: bool, decision: Decision
) -> None:
    stack = FakeStack(outputs, deployed)

    message = run_roll_back(tmp_path, stack, rollback=rollback)

    assert stack.ups == []
    verified = outputs.get("verifiedImageRef") or None
    assert message == FAILURE.message(decision, verified=verified, deployed=deployed)


def test_roll_back_that_fails_reports_both_failures(tmp_path: Path) -> None:
    stack = FakeStack({"verifiedImageRef": GOOD}, BAD, fail_up=True)

    message = run_roll_back(tmp_path, stack)

    assert message == FAILURE.rollback_failed(GOOD, "the registry is gone")


def test_promote_no_rollback_flag_turns_rollback_off() -> None:
    assert parse_args(["--from", "dev", "--to", "staging"]).rollback is True
    assert parse_args(["--from", "dev", "--to", "staging", "--no-rollback"]).rollback is False


def test_make_up_passes_no_rollback_on(tmp_path: Path) -> None:
    project = Project(tmp_path)

    recorded = project.make("up", STACK="dev", ARGS="--no-rollback")[-1:]

    assert recorded == [["record", "-m", "ops", "up", "dev", "--no-rollback"]]


@pytest.mark.parametrize(
    "args", ["--yes", "--no-rollback --yes", "--config-file /tmp/x", "$(touch {marker})", "--no-rollback\n"]
)
def test_make_up_refuses_any_other_args(tmp_path: Path, args: str) -> None:
    project = Project(tmp_path)
    value = args.format(marker=project.marker)

    result = project.run("up", ARGS=value)

    assert result.returncode == 2
    assert "ARGS for make up must be --no-rollback or nothing, got " in result.stderr
    assert not project.record.exists(), "python -m ops did not run"
    assert not project.marker.exists()
