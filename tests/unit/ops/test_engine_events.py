"""The engine's typed events, read without scraping pulumi's text: a failure's cause, a preview's steps."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi import automation as auto

from ops.engine import EventLog, passphrase_env
from ops.review_summary import ReviewError, check_preview, policy_events, preview_document

STACK_URN = "urn:pulumi:dev::hello-world::pulumi:pulumi:Stack::hello-world-dev"
DEPLOYMENT_URN = (
    "urn:pulumi:dev::hello-world::hello-world:index:WebService$kubernetes:apps/v1:Deployment::hello-deployment"
)


def _event(sequence: int, **kinds: dict[str, Any]) -> auto.EngineEvent:
    return auto.EngineEvent.from_json({"sequence": sequence, "timestamp": 0, **kinds})


def _diagnostic(sequence: int, message: str, urn: str | None, severity: str = "error") -> auto.EngineEvent:
    return _event(sequence, diagnosticEvent={"message": message, "color": "never", "severity": severity, "urn": urn})


def test_first_error_names_the_resource_that_failed_not_the_stack() -> None:
    log = EventLog()
    log(_diagnostic(1, "update failed", STACK_URN))
    log(
        _diagnostic(
            2,
            f'resource "{DEPLOYMENT_URN}" was successfully created, but the Kubernetes API server reported that it '
            "failed to fully initialize or become live:\n    Minimum number of live Pods was not attained",
            DEPLOYMENT_URN,
        )
    )

    assert log.first_error() == (
        "hello-deployment (kubernetes:apps/v1:Deployment): the Kubernetes API server reported that it failed to "
        "fully initialize or become live: Minimum number of live Pods was not attained"
    )


@pytest.mark.parametrize(
    ("diagnostics", "expected"),
    [
        ([("preview failed", STACK_URN, "error")], "preview failed"),
        ([("just a warning", None, "warning")], "pulumi exited non-zero"),
        ([], "pulumi exited non-zero"),
    ],
    ids=["stack-error-only", "warnings-are-not-errors", "no-diagnostics"],
)
def test_first_error_falls_back_to_the_first_error_then_to_the_exit(
    diagnostics: list[tuple[str, str | None, str]], expected: str
) -> None:
    log = EventLog()
    for sequence, (message, urn, severity) in enumerate(diagnostics):
        log(_diagnostic(sequence, message, urn, severity))

    assert log.first_error() == expected


def test_first_error_is_cut_to_a_readable_length() -> None:
    log = EventLog()
    log(_diagnostic(1, "x" * 1000, DEPLOYMENT_URN))

    assert len(log.first_error()) == 400
    assert log.first_error().endswith("…")


def test_each_stack_opens_with_its_own_passphrase_when_the_environment_holds_one() -> None:
    environ = {"PULUMI_CONFIG_PASSPHRASE_STAGING": "s", "PULUMI_CONFIG_PASSPHRASE_EU_PROD": "p"}

    assert passphrase_env("staging", environ) == {"PULUMI_CONFIG_PASSPHRASE": "s"}
    assert passphrase_env("organization/hello-world/eu.prod", environ) == {"PULUMI_CONFIG_PASSPHRASE": "p"}
    assert passphrase_env("dev", environ) == {}


def _step_event(sequence: int, op: str, **metadata: Any) -> auto.EngineEvent:
    found = {"op": op, "urn": DEPLOYMENT_URN, "type": "kubernetes:apps/v1:Deployment", "provider": "", **metadata}
    return _event(sequence, resourcePreEvent={"metadata": found})


def test_a_preview_s_events_read_as_the_preview_document_the_summary_reads() -> None:
    old = {"type": "t", "urn": DEPLOYMENT_URN, "id": "", "parent": "", "provider": "", "inputs": {"spec": {"a": 1}}}
    new = {**old, "inputs": {"spec": {"a": 2}}}
    events = [
        _step_event(
            1,
            "update",
            old=old,
            new=new,
            diffs=["spec"],
            detailedDiff={"spec.a": {"diffKind": "update", "inputDiff": True}},
        ),
        _step_event(2, "replace", old=old, new=new, keys=["spec.selector"]),
        _event(3, summaryEvent={"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {"update": 1}}),
        _diagnostic(4, "a warning", None, "warning"),
    ]

    document = preview_document(events)

    assert document["steps"] == [
        {
            "op": "update",
            "urn": DEPLOYMENT_URN,
            "oldState": {"inputs": {"spec": {"a": 1}}, "outputs": {}},
            "newState": {"inputs": {"spec": {"a": 2}}, "outputs": {}},
            "detailedDiff": {"spec.a": {"kind": "update"}},
            "diffReasons": ["spec"],
        },
        {
            "op": "replace",
            "urn": DEPLOYMENT_URN,
            "oldState": {"inputs": {"spec": {"a": 1}}, "outputs": {}},
            "newState": {"inputs": {"spec": {"a": 2}}, "outputs": {}},
            "replaceReasons": ["spec.selector"],
        },
    ]
    assert document["changeSummary"] == {"update": 1}
    assert document["diagnostics"] == [{"urn": None, "message": "a warning", "severity": "warning"}]


def _policy_event(level: str) -> auto.EngineEvent:
    policy = {
        "message": "needs limits",
        "color": "never",
        "policyName": "kubernetes-apps-v1-deployment-limits",
        "policyPackName": "hello-world-policies",
        "policyPackVersion": "1",
        "policyPackVersionTag": "1",
        "enforcementLevel": level,
        "resourceUrn": DEPLOYMENT_URN,
    }
    return _event(1, policyEvent=policy)


def test_policy_events_keep_the_fields_the_summary_shows() -> None:
    assert policy_events([_policy_event("mandatory")]) == [
        {
            "policyEvent": {
                "resourceUrn": DEPLOYMENT_URN,
                "policyName": "kubernetes-apps-v1-deployment-limits",
                "enforcementLevel": "mandatory",
                "message": "needs limits",
            }
        }
    ]


def failure(stderr: str) -> auto.errors.CommandError:
    return auto.errors.CommandError(auto.CommandResult(stdout="", stderr=stderr, code=255))


def test_a_preview_failed_by_a_mandatory_policy_is_summarized_not_an_error() -> None:
    preview = preview_document([_diagnostic(1, "preview failed", STACK_URN)])

    check_preview("qa", preview, policy_events([_policy_event("mandatory")]), failed=failure("x"))


def test_a_failed_program_is_an_error_naming_its_message_not_no_changes() -> None:
    problem = "stack 'qa' has 1 problem in its settings:\n  - replicas must be at least 1, got 0"
    preview = preview_document([_diagnostic(1, problem, STACK_URN)])

    with pytest.raises(ReviewError, match=r"(?s)preview of stack 'qa' failed:\n.*replicas must be at least 1"):
        check_preview("qa", preview, [], failed=failure("exit 255"))


def test_a_failure_without_a_mandatory_policy_is_an_error_even_without_diagnostics() -> None:
    with pytest.raises(ReviewError, match=r"(?s)preview of stack 'qa' failed:\n.*exit 255"):
        check_preview("qa", preview_document([]), [], failed=failure("exit 255"))
