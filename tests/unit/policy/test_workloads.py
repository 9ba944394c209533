"""Where each workload kind keeps its pod, and how containers and values are named in messages."""

from __future__ import annotations

from typing import Any

import pytest

from policy.properties import shown
from policy.workloads import ContainerGroup, WorkloadKind, containers, pod_spec, pod_template
from tests.unit.policy.manifests import container, template, workload


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        (WorkloadKind.POD, ()),
        (WorkloadKind.REPLICATION_CONTROLLER, ("spec", "template")),
        (WorkloadKind.DEPLOYMENT, ("spec", "template")),
        (WorkloadKind.REPLICA_SET, ("spec", "template")),
        (WorkloadKind.STATEFUL_SET, ("spec", "template")),
        (WorkloadKind.DAEMON_SET, ("spec", "template")),
        (WorkloadKind.JOB, ("spec", "template")),
        (WorkloadKind.CRON_JOB, ("spec", "jobTemplate", "spec", "template")),
    ],
    ids=[kind.kind for kind in WorkloadKind],
)
def test_pod_template_sits_where_each_kind_keeps_it(kind: WorkloadKind, path: tuple[str, ...]) -> None:
    resource = workload(kind)

    found = pod_template(resource, kind)

    assert kind.template_path == path
    assert found["spec"]["containers"][0]["name"] == "hello-world"
    assert pod_spec(resource, kind) is found["spec"]


@pytest.mark.parametrize("resource", [{}, {"spec": None}, {"spec": {"template": "not a mapping"}}])
def test_pod_spec_of_a_malformed_workload_is_empty(resource: dict[str, Any]) -> None:
    assert pod_spec(resource, WorkloadKind.DEPLOYMENT) == {}


def test_workload_kinds_say_which_have_replicas_and_which_run_to_completion() -> None:
    assert {kind.kind for kind in WorkloadKind if kind.has_replicas} == {
        "ReplicationController",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
    }
    assert {kind.kind for kind in WorkloadKind if kind.runs_to_completion} == {"Job", "CronJob"}


def test_containers_labels_each_group_and_falls_back_to_the_index() -> None:
    spec = template(
        initContainers=[container(name="migrate")],
        ephemeralContainers=[container(name=None)],
    )["spec"]

    labels = [label for label, _ in containers(spec)]
    running = [label for label, _ in containers(spec, (ContainerGroup.CONTAINERS,))]

    assert labels == ["container 'hello-world'", "init container 'migrate'", "ephemeral container '0'"]
    assert running == ["container 'hello-world'"]


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (0.0, "0"), (8080.5, "8080.5"), ("Unconfined", '"Unconfined"'), (None, "null")],
    ids=["bool", "integral-float", "float", "string", "null"],
)
def test_shown_spells_a_value_as_a_manifest_would(value: Any, text: str) -> None:
    assert shown(value) == text
