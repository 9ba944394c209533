"""The pack's rules: one plain validator per rule, from a resource's properties to violation messages.

Workload rules take the resource and its :class:`~policy.workloads.WorkloadKind`, which says where
its pod template sits, so that one rule serves Pods, Deployments, Jobs, CronJobs and the rest alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policy import pod_security
from policy.properties import get, integer, items
from policy.workloads import EVERY_CONTAINER, ContainerGroup, WorkloadKind, containers, pod_spec, pod_template

DEFAULT_MIN_REPLICAS = 2
"""Replicas a replicated workload needs unless the pack config raises ``minReplicas``."""
DEFAULT_REQUIRE_INGRESS_TLS = False
"""Whether an Ingress must terminate TLS, unless the pack config sets ``requireIngressTls``."""
NODE_PORT_RANGE = (30000, 32767)
"""The API server's default ``--service-node-port-range``."""
REQUIRED_RESOURCES = (
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
)
RUN_TO_COMPLETION = ("Never", "OnFailure")
"""Restart policies of a pod that finishes, which needs no probes."""
PROBE_ACTIONS = ("httpGet", "grpc", "exec")
"""Probe actions that a draining server may fail on purpose; a tcpSocket probe passes as long as it listens."""

# \Z, not $: $ also matches before a trailing newline, which would let "...<digest>\n" through.
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}\Z")
_RUNNING = (ContainerGroup.CONTAINERS,)
_RESOURCED = (ContainerGroup.CONTAINERS, ContainerGroup.INIT_CONTAINERS)


def workload_image_pinned_by_digest(workload: Mapping[str, Any], kind: WorkloadKind) -> list[str]:
    """Every container image (init and ephemeral ones too) is referenced by an immutable ``@sha256:`` digest.

    A tag, ``latest`` above all, can be moved to other content after review, so what runs is
    not what was checked; a digest cannot.
    """
    messages = []
    for label, container in containers(pod_spec(workload, kind), EVERY_CONTAINER):
        image = container.get("image")
        if isinstance(image, str) and _DIGEST.search(image):
            continue
        if not isinstance(image, str) or not image:
            problem = "has no image"
        elif "@" in image:
            problem = f"image {image!r} has a malformed digest"
        else:
            tag = image.rsplit("/", 1)[-1].partition(":")[2] or "latest"
            kind_of_tag = "the mutable 'latest' tag" if tag == "latest" else f"the mutable tag {tag!r}"
            problem = f"image {image!r} uses {kind_of_tag}"
        messages.append(
            f"{label} {problem}: reference the image by digest, <registry>/<repository>@sha256:<64 hex digits> "
            "(promote a built image by its digest instead of a tag)"
        )
    return messages


def workload_min_replicas(workload: Mapping[str, Any], *, min_replicas: int = DEFAULT_MIN_REPLICAS) -> list[str]:
    """The workload runs at least ``min_replicas`` pods, so one pod's loss or rollout is not an outage."""
    raw = get(workload, "spec", "replicas")
    if raw is None:
        given = "not set (Kubernetes defaults to 1)"
    elif (replicas := integer(raw)) is None:
        given = repr(raw)
    elif replicas >= min_replicas:
        return []
    else:
        given = str(replicas)
    return [
        f"spec.replicas is {given}, expected at least {min_replicas}: "
        f"set the stack's replicas to {min_replicas} or more (Pulumi.<stack>.yaml, hello-world:replicas)"
    ]


def workload_probes_configured(workload: Mapping[str, Any], kind: WorkloadKind) -> list[str]:
    """Every container of a pod that keeps running has a readiness and a liveness probe, asking different things.

    The readiness probe gates traffic and rollouts, the liveness probe restarts a hang. A draining pod fails
    readiness on purpose; a liveness probe that asks the same endpoint would then restart it mid-drain. A pod that
    runs to completion (restartPolicy Never or OnFailure) needs neither.
    """
    spec = pod_spec(workload, kind)
    if spec.get("restartPolicy") in RUN_TO_COMPLETION:
        return []
    messages = []
    for label, container in containers(spec, _RUNNING):
        for probe, purpose in (
            ("readinessProbe", "so that traffic and rollouts wait until it can serve"),
            ("livenessProbe", "so that the kubelet restarts it when it hangs"),
        ):
            if not isinstance(container.get(probe), Mapping):
                messages.append(f"{label} has no {probe}: add one (for example an httpGet on /healthz) {purpose}")
        for action in PROBE_ACTIONS:
            asked = get(container, "livenessProbe", action)
            if isinstance(asked, Mapping) and asked == get(container, "readinessProbe", action):
                messages.append(
                    f"{label} has a livenessProbe that asks what its readinessProbe asks ({action}): give liveness "
                    "an endpoint that stays healthy while the pod drains (for example /livez), or a drain that "
                    "fails readiness restarts the container"
                )
    return messages


def workload_resources_configured(workload: Mapping[str, Any], kind: WorkloadKind) -> list[str]:
    """Every container and init container sets CPU, memory and ephemeral-storage requests and limits.

    Requests place the pod, limits contain a runaway (a log flood included, which would fill the node's disk).
    Ephemeral containers cannot set resources.
    """
    messages = []
    for label, container in containers(pod_spec(workload, kind), _RESOURCED):
        resources = container.get("resources")
        missing = [name for name in REQUIRED_RESOURCES if get(resources, *name.split(".")) in (None, "")]
        if missing:
            messages.append(
                f"{label} does not set resources.{', resources.'.join(missing)}: set CPU, memory and ephemeral-storage "
                "requests and limits (the stack's resources setting) so the scheduler places it and a runaway "
                "is contained"
            )
    return messages


def workload_restricted_security_context(workload: Mapping[str, Any], kind: WorkloadKind) -> list[str]:
    """The pod runs as the Pod Security Standards' ``restricted`` profile asks, with a read-only root filesystem.

    Every baseline and restricted control of :mod:`policy.pod_security` applies; the read-only root
    filesystem is this project's own addition: the app writes only where an emptyDir is mounted.
    """
    messages = pod_security.violations(pod_template(workload, kind))
    for label, container in containers(pod_spec(workload, kind), EVERY_CONTAINER):
        if get(container, "securityContext", "readOnlyRootFilesystem") is not True:
            messages.append(
                f"{label} has a writable root filesystem: set readOnlyRootFilesystem: true "
                "(mount an emptyDir where the app must write)"
            )
    return messages


def service_node_port_in_range(service: Mapping[str, Any]) -> list[str]:
    """A fixed nodePort lies in the cluster's node port range, or the API server rejects the Service."""
    low, high = NODE_PORT_RANGE
    messages = []
    for index, port in enumerate(items(get(service, "spec", "ports"))):
        raw = get(port, "nodePort")
        if raw is None:
            continue
        node_port = integer(raw)
        if node_port is not None and low <= node_port <= high:
            continue
        label = get(port, "name") or index
        messages.append(
            f"port '{label}' has nodePort {raw!r}, outside {low}-{high}: choose a port in that range "
            "(the stack's nodePort setting) or leave it unset so the cluster picks one"
        )
    return messages


def ingress_class_set(ingress: Mapping[str, Any]) -> list[str]:
    """The Ingress names its IngressClass, so the intended controller serves it whatever the cluster's default."""
    class_name = get(ingress, "spec", "ingressClassName")
    if isinstance(class_name, str) and class_name:
        return []
    return [
        "spec.ingressClassName is not set: name the IngressClass of the controller that should serve it "
        "(the stack's ingress.className setting, for example nginx) instead of relying on the cluster's default"
    ]


def _covers(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def ingress_tls_configured(ingress: Mapping[str, Any], *, require_tls: bool = DEFAULT_REQUIRE_INGRESS_TLS) -> list[str]:
    """When TLS is required, every host the Ingress routes is listed in a ``spec.tls`` entry.

    An entry may name no Secret: the controller then serves its hosts with its default certificate (the
    local platform's Traefik holds one for ``*.hello-pulumi.test``). A rule without a host, like
    ``spec.defaultBackend``, answers for any host name, which no certificate covers, so a TLS-only Ingress
    routes named hosts only.
    """
    if not require_tls:
        return []
    fix = "(the stack's ingress.tlsSecretName or ingress.controllerCertificate setting)"
    entries = [entry for entry in items(get(ingress, "spec", "tls")) if isinstance(entry, Mapping)]
    messages = []
    if not entries:
        messages.append(f"spec.tls is not set: add a TLS entry with the Ingress's hosts {fix}")
    if get(ingress, "spec", "defaultBackend") is not None:
        messages.append(
            "spec.defaultBackend answers for any host name, which no TLS certificate covers: remove it "
            "and route each host through a rule whose host is listed in spec.tls"
        )
    covered = [str(host) for entry in entries for host in items(entry.get("hosts"))]
    for index, rule in enumerate(items(get(ingress, "spec", "rules"))):
        host = get(rule, "host")
        if not isinstance(host, str) or not host:
            messages.append(
                f"spec.rules[{index}] has no host, so it answers for any host name, which no TLS certificate "
                "covers: set its host (the stack's ingress.host setting) and list that host in spec.tls"
            )
        elif entries and not any(_covers(pattern, host) for pattern in covered):
            messages.append(f"host '{host}' is served without TLS: add it to the hosts of a spec.tls entry {fix}")
    return messages


def ingress_routes_unique(ingress: Mapping[str, Any]) -> list[str]:
    """Each host and path of the Ingress leads to one backend.

    Two paths that match the same requests (the same host, pathType and path; a Prefix path with or without its
    trailing '/') leave the choice of the service that answers to the controller, and it differs between controllers.
    """
    first: dict[tuple[str, str, str], str] = {}
    messages = []
    for rule in items(get(ingress, "spec", "rules")):
        host = get(rule, "host") or ""
        for path in items(get(rule, "http", "paths")):
            kind = str(get(path, "pathType") or "")
            value = str(get(path, "path") or "/")
            matched = (value.rstrip("/") or "/") if kind == "Prefix" else value
            backend = str(get(path, "backend", "service", "name") or "(no service)")
            key = (host, kind, matched)
            if key not in first:
                first[key] = backend
                continue
            where = f"host '{host}'" if host else "every host"
            messages.append(
                f"{where} routes the {kind} path '{value}' to service '{backend}', a path that already leads to "
                f"service '{first[key]}': route each host and path to one service "
                "(the stack's ingress.host/ingress.path and services[].host/services[].path)"
            )
    return messages
