"""Drift read from a refresh preview's engine events, and said in the review's Markdown style."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi import automation as auto

from ops import drift
from ops.__main__ import EXIT_DRIFT, main
from ops.drift import Drifted, drifted, summarize

DEPLOYMENT_URN = "urn:pulumi:dev::hello-world::hello-world:index:WebService$kubernetes:apps/v1:Deployment::web"
STACK_URN = "urn:pulumi:dev::hello-world::pulumi:pulumi:Stack::hello-world-dev"


def _outputs_event(sequence: int, op: str, urn: str = DEPLOYMENT_URN, **metadata: Any) -> auto.EngineEvent:
    found = {"op": op, "urn": urn, "type": "t", "provider": "", **metadata}
    return auto.EngineEvent.from_json({"sequence": sequence, "timestamp": 0, "resOutputsEvent": {"metadata": found}})


def _state(replicas: int) -> dict[str, Any]:
    return {
        "type": "t",
        "urn": DEPLOYMENT_URN,
        "id": "",
        "parent": "",
        "provider": "",
        "inputs": {"spec": {"replicas": replicas}},
    }


def test_drifted_names_each_changed_field_with_its_state_and_cluster_values() -> None:
    events = [
        _outputs_event(1, "same", STACK_URN),
        _outputs_event(
            2, "update", old=_state(2), new=_state(3), detailedDiff={"spec.replicas": {"diffKind": "update"}}
        ),
        _outputs_event(3, "delete", DEPLOYMENT_URN.replace("::web", "::gone")),
    ]

    assert drifted(events) == [
        Drifted(op="update", type="kubernetes:apps/v1:Deployment", name="web", fields=(("spec.replicas", "2", "3"),)),
        Drifted(op="delete", type="kubernetes:apps/v1:Deployment", name="gone"),
    ]


def test_drifted_is_empty_when_every_refresh_step_is_the_same() -> None:
    assert drifted([_outputs_event(1, "same"), _outputs_event(2, "same", STACK_URN)]) == []


IMAGE_URN = "urn:pulumi:dev::hello-world::hello-world:index:ContainerImage$docker-build:index:Image::app-image"


def test_a_build_context_hash_of_this_checkout_is_no_drift_but_the_images_other_fields_are() -> None:
    events = [
        _outputs_event(1, "update", IMAGE_URN, old={}, new={}, detailedDiff={"contextHash": {"diffKind": "update"}}),
        _outputs_event(
            2,
            "update",
            IMAGE_URN.replace("::app-image", "::other"),
            old={},
            new={},
            detailedDiff={"contextHash": {"diffKind": "update"}, "tags": {"diffKind": "update"}},
        ),
    ]

    assert drifted(events) == [
        Drifted(op="update", type="docker-build:index:Image", name="other", fields=(("tags", "(none)", "(none)"),))
    ]


def test_summary_escapes_values_as_the_review_does() -> None:
    found = [Drifted(op="update", type="t", name="n`x", fields=(("metadata.labels.a", "<b>", "*c*\nd"),))]

    text = summarize("dev", found)

    assert "- **changed in the cluster** `t` ``n`x``" in text
    assert "  - `metadata.labels.a`: \\<b> → \\*c\\*⏎d" in text
    assert "`make up STACK=dev` puts them back" in text


def test_summary_says_no_drift_when_nothing_differs() -> None:
    assert summarize("dev", []) == "### Drift of stack `dev`\n\nNo drift: the cluster matches the state.\n"


@pytest.mark.parametrize(
    ("found", "code"), [([], 0), ([Drifted(op="delete", type="t", name="n")], EXIT_DRIFT)], ids=["clean", "drifted"]
)
def test_drift_command_exits_non_zero_only_on_drift(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], found: list[Drifted], code: int
) -> None:
    monkeypatch.setattr(drift, "find_drift", lambda stack, work_dir: found)

    assert main(["drift", "dev"]) == code
    assert capsys.readouterr().out.startswith("### Drift of stack `dev`")


def test_drift_command_refuses_a_stack_without_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", "typo"]) == 2
    assert "typo" in capsys.readouterr().err
