"""The Kubernetes kinds that run pods, where each keeps its pod template, and the containers of a pod."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any

from policy.properties import get, items, mapping


class WorkloadKind(Enum):
    """A kind whose resources run pods; the value is its Pulumi resource type."""

    POD = "kubernetes:core/v1:Pod"
    REPLICATION_CONTROLLER = "kubernetes:core/v1:ReplicationController"
    DEPLOYMENT = "kubernetes:apps/v1:Deployment"
    REPLICA_SET = "kubernetes:apps/v1:ReplicaSet"
    STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
    DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
    JOB = "kubernetes:batch/v1:Job"
    CRON_JOB = "kubernetes:batch/v1:CronJob"

    @property
    def resource_type(self) -> str:
        """The Pulumi type token, ``kubernetes:<group>/<version>:<Kind>``."""
        return self.value

    @property
    def kind(self) -> str:
        """The Kubernetes kind, such as ``StatefulSet``."""
        return self.value.rsplit(":", 1)[1]

    @property
    def template_path(self) -> tuple[str, ...]:
        """Where the pod template (``metadata`` and ``spec``) sits; a Pod is its own template."""
        return _TEMPLATE_PATHS.get(self, ("spec", "template"))

    @property
    def has_replicas(self) -> bool:
        """Whether ``spec.replicas`` sets how many identical pods run."""
        return self in _REPLICATED

    @property
    def runs_to_completion(self) -> bool:
        """Whether its pods finish (a batch task) rather than keep serving."""
        return self in (WorkloadKind.JOB, WorkloadKind.CRON_JOB)


_TEMPLATE_PATHS = {
    WorkloadKind.POD: (),
    WorkloadKind.CRON_JOB: ("spec", "jobTemplate", "spec", "template"),
}
_REPLICATED = frozenset(
    {
        WorkloadKind.REPLICATION_CONTROLLER,
        WorkloadKind.DEPLOYMENT,
        WorkloadKind.REPLICA_SET,
        WorkloadKind.STATEFUL_SET,
    }
)


class ContainerGroup(Enum):
    """A list of containers in a pod spec; the value is its field."""

    CONTAINERS = "containers"
    INIT_CONTAINERS = "initContainers"
    EPHEMERAL_CONTAINERS = "ephemeralContainers"

    @property
    def noun(self) -> str:
        """How messages name one of its containers."""
        return {
            ContainerGroup.CONTAINERS: "container",
            ContainerGroup.INIT_CONTAINERS: "init container",
            ContainerGroup.EPHEMERAL_CONTAINERS: "ephemeral container",
        }[self]


EVERY_CONTAINER = tuple(ContainerGroup)
"""Containers, init containers and ephemeral containers: what the Pod Security Standards inspect."""


def pod_template(workload: Mapping[str, Any], kind: WorkloadKind) -> Mapping[str, Any]:
    """The pod template of ``workload``, with its ``metadata`` and ``spec``; empty where it has none."""
    return mapping(get(workload, *kind.template_path) if kind.template_path else workload)


def pod_spec(workload: Mapping[str, Any], kind: WorkloadKind) -> Mapping[str, Any]:
    """The pod spec of ``workload``; empty where it has none."""
    return mapping(pod_template(workload, kind).get("spec"))


def containers(
    spec: Mapping[str, Any], groups: tuple[ContainerGroup, ...] = EVERY_CONTAINER
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each container of the pod ``spec`` in ``groups``, with a label for messages (``init container 'x'``)."""
    for group in groups:
        for index, container in enumerate(items(spec.get(group.value))):
            if isinstance(container, Mapping):
                yield f"{group.noun} '{container.get('name') or index}'", container
