"""Workload manifests for the rule tests: the program's compliant pod, with overrides, in every workload kind."""

from __future__ import annotations

import copy
from typing import Any

from policy.workloads import WorkloadKind

DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"127.0.0.1:5000/hello-world@{DIGEST}"
PROBE = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5, "failureThreshold": 3}
LIVENESS_PROBE = {"httpGet": {"path": "/livez", "port": "http"}, "periodSeconds": 10, "failureThreshold": 6}

POD_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""The pod securityContext that components/web_service.py renders."""
CONTAINER_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
"""The container securityContext that components/web_service.py renders."""
CONTAINER: dict[str, Any] = {
    "name": "hello-world",
    "image": IMAGE,
    "ports": [{"name": "http", "containerPort": 8080}],
    "readinessProbe": PROBE,
    "livenessProbe": LIVENESS_PROBE,
    "resources": {
        "requests": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "32Mi"},
        "limits": {"cpu": "500m", "memory": "128Mi", "ephemeral-storage": "128Mi"},
    },
    "securityContext": CONTAINER_CONTEXT,
}
"""The app's container as components/web_service.py renders it: it meets every rule."""


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``overrides`` set, where an override of ``None`` removes the key."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = copy.deepcopy(value)
    return result


def container(*, context: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """The app's container with ``fields`` and its securityContext's ``context`` overridden."""
    result = merged(CONTAINER, fields)
    if context is not None:
        result["securityContext"] = merged(result.get("securityContext", {}), context)
    return result


def template(
    *containers: dict[str, Any],
    context: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod template: the app's pod, or one running ``containers``, with overridden pod ``context`` and ``spec``."""
    pod_spec = merged(
        {
            "automountServiceAccountToken": False,
            "securityContext": merged(POD_CONTEXT, context or {}),
            "containers": list(containers) or [container()],
        },
        spec,
    )
    metadata: dict[str, Any] = {"labels": {"app.kubernetes.io/name": "hello-world"}}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": pod_spec}


def workload(kind: WorkloadKind, pod: dict[str, Any] | None = None, *, replicas: Any = 2) -> dict[str, Any]:
    """A resource of ``kind`` running ``pod`` (default: the app's pod) as the engine sees it.

    A batch kind's pod restarts ``OnFailure`` (the API requires Never or OnFailure); ``replicas``
    is set only on kinds that have replicas, and left out when ``None``.
    """
    pod = copy.deepcopy(pod) if pod is not None else template()
    if kind.runs_to_completion:
        pod["spec"].setdefault("restartPolicy", "OnFailure")
    metadata = {"name": "hello-world", "namespace": "hello-world"}
    if kind is WorkloadKind.POD:
        return {"kind": kind.kind, "metadata": {**metadata, **pod["metadata"]}, "spec": pod["spec"]}
    spec: dict[str, Any] = {"template": pod}
    if kind is WorkloadKind.CRON_JOB:
        spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": spec}}
    elif kind.has_replicas and replicas is not None:
        spec["replicas"] = replicas
    return {"kind": kind.kind, "metadata": metadata, "spec": spec}
