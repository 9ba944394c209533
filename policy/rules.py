"""The pack's rules: one plain validator per rule, from a resource's properties to violation messages.

Properties arrive as the engine sees them: camelCase keys, numbers possibly as floats, and,
under the policy SDK, mappings and lists wrapped in read-only proxies. The validators therefore
only rely on the ``Mapping`` and ``Sequence`` interfaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

DEFAULT_MIN_REPLICAS = 2
"""Replicas a Deployment needs unless the pack config raises ``minReplicas``."""
DEFAULT_REQUIRE_INGRESS_TLS = False
"""Whether an Ingress must terminate TLS, unless the pack config sets ``requireIngressTls``."""
NODE_PORT_RANGE = (30000, 32767)
"""The API server's default ``--service-node-port-range``."""
REQUIRED_RESOURCES = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory")

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _get(value: Any, *path: str) -> Any:
    """The value at ``path`` inside nested mappings, or ``None`` where any step is missing."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _items(value: Any) -> list[Any]:
    """The elements of a list property; an absent or malformed one has none."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


def _integer(value: Any) -> int | None:
    """An integral number as an int: the engine sends every number as a float."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _pod_spec(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    pod = _get(deployment, "spec", "template", "spec")
    return pod if isinstance(pod, Mapping) else {}


def _containers(deployment: Mapping[str, Any], *, init: bool = True) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each container of the pod template (and its init containers) with a label for messages."""
    pod = _pod_spec(deployment)
    kinds = ("containers", "initContainers") if init else ("containers",)
    for kind in kinds:
        for index, container in enumerate(_items(pod.get(kind))):
            if isinstance(container, Mapping):
                noun = "container" if kind == "containers" else "init container"
                yield f"{noun} '{container.get('name') or index}'", container


def deployment_image_pinned_by_digest(deployment: Mapping[str, Any]) -> list[str]:
    """Every container image is referenced by an immutable ``@sha256:`` digest.

    A tag, ``latest`` above all, can be moved to other content after review, so what runs is
    not what was checked; a digest cannot.
    """
    messages = []
    for label, container in _containers(deployment):
        image = container.get("image")
        if isinstance(image, str) and _DIGEST.search(image):
            continue
        if not isinstance(image, str) or not image:
            problem = "has no image"
        elif "@" in image:
            problem = f"image '{image}' has a malformed digest"
        else:
            tag = image.rsplit("/", 1)[-1].partition(":")[2] or "latest"
            kind = "the mutable 'latest' tag" if tag == "latest" else f"the mutable tag '{tag}'"
            problem = f"image '{image}' uses {kind}"
        messages.append(
            f"{label} {problem}: reference the image by digest, <registry>/<repository>@sha256:<64 hex digits> "
            "(promote a built image by its digest instead of a tag)"
        )
    return messages


def deployment_min_replicas(deployment: Mapping[str, Any], *, min_replicas: int = DEFAULT_MIN_REPLICAS) -> list[str]:
    """The Deployment runs at least ``min_replicas`` pods, so one pod's loss or rollout is not an outage."""
    raw = _get(deployment, "spec", "replicas")
    if raw is None:
        given = "not set (Kubernetes defaults to 1)"
    elif (replicas := _integer(raw)) is None:
        given = repr(raw)
    elif replicas >= min_replicas:
        return []
    else:
        given = str(replicas)
    return [
        f"spec.replicas is {given}, expected at least {min_replicas}: "
        f"set the stack's replicas to {min_replicas} or more (Pulumi.<stack>.yaml, hello-world:replicas)"
    ]


def deployment_probes_configured(deployment: Mapping[str, Any]) -> list[str]:
    """Every container has a readiness probe (gates traffic and rollouts) and a liveness probe (restarts a hang)."""
    messages = []
    for label, container in _containers(deployment, init=False):
        for probe, purpose in (
            ("readinessProbe", "so that traffic and rollouts wait until it can serve"),
            ("livenessProbe", "so that the kubelet restarts it when it hangs"),
        ):
            if not isinstance(container.get(probe), Mapping):
                messages.append(f"{label} has no {probe}: add one (for example an httpGet on /healthz) {purpose}")
    return messages


def deployment_resources_configured(deployment: Mapping[str, Any]) -> list[str]:
    """Every container sets CPU and memory requests (for scheduling) and limits (to contain a runaway)."""
    messages = []
    for label, container in _containers(deployment):
        resources = container.get("resources")
        missing = [name for name in REQUIRED_RESOURCES if _get(resources, *name.split(".")) in (None, "")]
        if missing:
            messages.append(
                f"{label} does not set resources.{', resources.'.join(missing)}: set CPU and memory requests "
                "and limits (the stack's resources setting) so the scheduler places it and a runaway is contained"
            )
    return messages


def deployment_restricted_security_context(deployment: Mapping[str, Any]) -> list[str]:
    """Every container runs as the Pod Security Standards' ``restricted`` profile asks.

    runAsNonRoot (on the pod or the container), allowPrivilegeEscalation false, all capabilities
    dropped, a read-only root filesystem and the RuntimeDefault (or a Localhost) seccomp profile.
    """
    pod_context = _pod_spec(deployment).get("securityContext")
    messages = []
    for label, container in _containers(deployment):
        context = container.get("securityContext")
        problems = []
        non_root = _get(context, "runAsNonRoot")
        if non_root is not True and not (non_root is None and _get(pod_context, "runAsNonRoot") is True):
            problems.append("set runAsNonRoot: true (on the pod or the container) and run as a numeric non-root user")
        if _get(context, "allowPrivilegeEscalation") is not False:
            problems.append("set allowPrivilegeEscalation: false")
        if "ALL" not in _items(_get(context, "capabilities", "drop")):
            problems.append("drop all capabilities (capabilities.drop: [ALL])")
        if _get(context, "readOnlyRootFilesystem") is not True:
            problems.append("set readOnlyRootFilesystem: true (mount an emptyDir where the app must write)")
        seccomp = _get(context, "seccompProfile", "type") or _get(pod_context, "seccompProfile", "type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append("set seccompProfile.type: RuntimeDefault (on the pod or the container)")
        if problems:
            messages.append(f"{label} does not run restricted: {'; '.join(problems)}")
    return messages


def service_node_port_in_range(service: Mapping[str, Any]) -> list[str]:
    """A fixed nodePort lies in the cluster's node port range, or the API server rejects the Service."""
    low, high = NODE_PORT_RANGE
    messages = []
    for index, port in enumerate(_items(_get(service, "spec", "ports"))):
        raw = _get(port, "nodePort")
        if raw is None:
            continue
        node_port = _integer(raw)
        if node_port is not None and low <= node_port <= high:
            continue
        label = _get(port, "name") or index
        messages.append(
            f"port '{label}' has nodePort {raw!r}, outside {low}-{high}: choose a port in that range "
            "(the stack's nodePort setting) or leave it unset so the cluster picks one"
        )
    return messages


def ingress_class_set(ingress: Mapping[str, Any]) -> list[str]:
    """The Ingress names its IngressClass, so the intended controller serves it whatever the cluster's default."""
    class_name = _get(ingress, "spec", "ingressClassName")
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
    """When TLS is required, every host the Ingress routes is listed in a ``spec.tls`` entry with a Secret."""
    if not require_tls:
        return []
    fix = "(the stack's ingress.tlsSecretName setting)"
    entries = [entry for entry in _items(_get(ingress, "spec", "tls")) if isinstance(entry, Mapping)]
    if not entries:
        return [f"spec.tls is not set: add a TLS entry with the Ingress's hosts and a certificate Secret {fix}"]
    messages = [
        f"spec.tls[{index}] names no secretName: name the Secret that holds the certificate {fix}"
        for index, entry in enumerate(entries)
        if not entry.get("secretName")
    ]
    covered = [str(host) for entry in entries for host in _items(entry.get("hosts"))]
    for rule in _items(_get(ingress, "spec", "rules")):
        host = _get(rule, "host")
        if isinstance(host, str) and host and not any(_covers(pattern, host) for pattern in covered):
            messages.append(f"host '{host}' is served without TLS: add it to the hosts of a spec.tls entry {fix}")
    return messages
