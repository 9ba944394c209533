"""Each rule of the policy pack, called as a plain function on a passing and a failing resource."""

from __future__ import annotations

from typing import Any

import pytest

from policy import rules

DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"127.0.0.1:5000/hello-world@{DIGEST}"


def deployment(*, replicas: Any = 2, **container: Any) -> dict[str, Any]:
    """A Deployment that meets every rule, as the engine sees it; ``container`` overrides fields of its container."""
    app: dict[str, Any] = {
        "name": "hello-world",
        "image": IMAGE,
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    app.update(container)
    spec: dict[str, Any] = {
        "template": {
            "spec": {
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{key: value for key, value in app.items() if value is not None}],
            }
        }
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"name": "hello-world"}, "spec": spec}


def service(*ports: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"type": "NodePort", "ports": list(ports)}}


def ingress(**spec: Any) -> dict[str, Any]:
    rules_ = [{"host": "hello.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix"}]}}]
    return {"spec": {"rules": rules_, **spec}}


TLS = [{"hosts": ["hello.example.com"], "secretName": "hello-example-com-tls"}]


def test_image_pinned_by_digest_accepts_a_digest_reference() -> None:
    assert rules.deployment_image_pinned_by_digest(deployment()) == []


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("127.0.0.1:5000/hello-world:dev", "uses the mutable tag 'dev'"),
        ("127.0.0.1:5000/hello-world:latest", "uses the mutable 'latest' tag"),
        ("127.0.0.1:5000/hello-world", "uses the mutable 'latest' tag"),
        ("hello-world@sha256:abc", "has a malformed digest"),
    ],
    ids=["tag", "latest", "implicit-latest", "malformed-digest"],
)
def test_image_pinned_by_digest_rejects_a_tag_and_says_how_to_pin(image: str, problem: str) -> None:
    messages = rules.deployment_image_pinned_by_digest(deployment(image=image))

    assert messages == [
        f"container 'hello-world' image '{image}' {problem}: reference the image by digest, "
        "<registry>/<repository>@sha256:<64 hex digits> (promote a built image by its digest instead of a tag)"
    ]


def test_image_pinned_by_digest_checks_init_containers_too() -> None:
    resource = deployment()
    resource["spec"]["template"]["spec"]["initContainers"] = [{"name": "migrate", "image": "busybox:1.36"}]

    (message,) = rules.deployment_image_pinned_by_digest(resource)

    assert message.startswith("init container 'migrate' image 'busybox:1.36' uses the mutable tag '1.36'")


@pytest.mark.parametrize(
    ("replicas", "minimum"), [(2, 2), (3, 3), (3.0, 3), (5, 3)], ids=["2of2", "3of3", "float", "5of3"]
)
def test_min_replicas_accepts_enough_replicas(replicas: Any, minimum: int) -> None:
    assert rules.deployment_min_replicas(deployment(replicas=replicas), min_replicas=minimum) == []


@pytest.mark.parametrize(
    ("replicas", "minimum", "given"),
    [(1, 2, "1"), (2, 3, "2"), (2.0, 3, "2"), (None, 2, "not set (Kubernetes defaults to 1)"), ("3", 2, "'3'")],
    ids=["1of2", "2of3", "float", "unset", "string"],
)
def test_min_replicas_rejects_too_few_and_names_the_setting(replicas: Any, minimum: int, given: str) -> None:
    messages = rules.deployment_min_replicas(deployment(replicas=replicas), min_replicas=minimum)

    assert messages == [
        f"spec.replicas is {given}, expected at least {minimum}: "
        f"set the stack's replicas to {minimum} or more (Pulumi.<stack>.yaml, hello-world:replicas)"
    ]


def test_min_replicas_defaults_to_two() -> None:
    assert rules.deployment_min_replicas(deployment(replicas=2)) == []
    assert len(rules.deployment_min_replicas(deployment(replicas=1))) == 1


def test_probes_configured_accepts_readiness_and_liveness() -> None:
    assert rules.deployment_probes_configured(deployment()) == []


def test_probes_configured_reports_each_missing_probe() -> None:
    messages = rules.deployment_probes_configured(deployment(readinessProbe=None, livenessProbe=None))

    assert messages == [
        "container 'hello-world' has no readinessProbe: add one (for example an httpGet on /healthz) "
        "so that traffic and rollouts wait until it can serve",
        "container 'hello-world' has no livenessProbe: add one (for example an httpGet on /healthz) "
        "so that the kubelet restarts it when it hangs",
    ]


def test_resources_configured_accepts_requests_and_limits() -> None:
    assert rules.deployment_resources_configured(deployment()) == []


@pytest.mark.parametrize(
    ("resources", "missing"),
    [
        ({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}, "resources.limits.cpu"),
        ({"requests": {"cpu": "50m"}}, "resources.requests.memory, resources.limits.cpu, resources.limits.memory"),
        (None, "resources.requests.cpu, resources.requests.memory, resources.limits.cpu, resources.limits.memory"),
    ],
    ids=["no-cpu-limit", "cpu-request-only", "none"],
)
def test_resources_configured_names_every_missing_quantity(resources: Any, missing: str) -> None:
    messages = rules.deployment_resources_configured(deployment(resources=resources))

    assert messages == [
        f"container 'hello-world' does not set {missing}: set CPU and memory requests and limits "
        "(the stack's resources setting) so the scheduler places it and a runaway is contained"
    ]


def test_restricted_security_context_accepts_the_programs_context() -> None:
    assert rules.deployment_restricted_security_context(deployment()) == []


def test_restricted_security_context_accepts_run_as_non_root_on_the_pod_only() -> None:
    context = deployment()["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    del context["runAsNonRoot"]

    assert rules.deployment_restricted_security_context(deployment(securityContext=context)) == []


def test_restricted_security_context_lists_every_missing_setting() -> None:
    resource = deployment(securityContext=None)
    del resource["spec"]["template"]["spec"]["securityContext"]

    messages = rules.deployment_restricted_security_context(resource)

    assert messages == [
        "container 'hello-world' does not run restricted: "
        "set runAsNonRoot: true (on the pod or the container) and run as a numeric non-root user; "
        "set allowPrivilegeEscalation: false; "
        "drop all capabilities (capabilities.drop: [ALL]); "
        "set readOnlyRootFilesystem: true (mount an emptyDir where the app must write); "
        "set seccompProfile.type: RuntimeDefault (on the pod or the container)"
    ]


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"runAsNonRoot": False}, "set runAsNonRoot: true (on the pod or the container)"),
        ({"allowPrivilegeEscalation": True}, "set allowPrivilegeEscalation: false"),
        ({"capabilities": {"drop": ["NET_RAW"]}}, "drop all capabilities (capabilities.drop: [ALL])"),
        ({"readOnlyRootFilesystem": False}, "set readOnlyRootFilesystem: true"),
        ({"seccompProfile": {"type": "Unconfined"}}, "set seccompProfile.type: RuntimeDefault"),
    ],
    ids=["root-on-container-beats-pod", "escalation", "capabilities", "writable-root", "unconfined"],
)
def test_restricted_security_context_rejects_each_weakened_setting(override: dict[str, Any], problem: str) -> None:
    context = {**deployment()["spec"]["template"]["spec"]["containers"][0]["securityContext"], **override}

    (message,) = rules.deployment_restricted_security_context(deployment(securityContext=context))

    assert message.startswith("container 'hello-world' does not run restricted: ")
    assert problem in message
    assert message.count(";") == 0


@pytest.mark.parametrize(
    "port",
    [{"name": "http", "port": 80}, {"name": "http", "port": 80, "nodePort": 31611}, {"port": 80, "nodePort": 30000.0}],
    ids=["unset", "in-range", "float-bound"],
)
def test_node_port_in_range_accepts_an_unset_or_valid_port(port: dict[str, Any]) -> None:
    assert rules.service_node_port_in_range(service(port)) == []


@pytest.mark.parametrize(("node_port", "shown"), [(8080, "8080"), (32768, "32768")], ids=["low", "high"])
def test_node_port_in_range_rejects_a_port_outside_the_range(node_port: int, shown: str) -> None:
    messages = rules.service_node_port_in_range(service({"name": "http", "port": 80, "nodePort": node_port}))

    assert messages == [
        f"port 'http' has nodePort {shown}, outside 30000-32767: choose a port in that range "
        "(the stack's nodePort setting) or leave it unset so the cluster picks one"
    ]


def test_ingress_class_set_accepts_a_named_class() -> None:
    assert rules.ingress_class_set(ingress(ingressClassName="nginx")) == []


@pytest.mark.parametrize("spec", [{}, {"ingressClassName": ""}], ids=["missing", "empty"])
def test_ingress_class_set_rejects_a_missing_class(spec: dict[str, Any]) -> None:
    assert rules.ingress_class_set(ingress(**spec)) == [
        "spec.ingressClassName is not set: name the IngressClass of the controller that should serve it "
        "(the stack's ingress.className setting, for example nginx) instead of relying on the cluster's default"
    ]


def test_ingress_tls_configured_accepts_no_tls_when_not_required() -> None:
    assert rules.ingress_tls_configured(ingress()) == []


@pytest.mark.parametrize(
    "tls",
    [TLS, [{"hosts": ["*.example.com"], "secretName": "wildcard-tls"}]],
    ids=["exact-host", "wildcard"],
)
def test_ingress_tls_configured_accepts_covered_hosts_when_required(tls: list[dict[str, Any]]) -> None:
    assert rules.ingress_tls_configured(ingress(tls=tls), require_tls=True) == []


def test_ingress_tls_configured_rejects_an_ingress_without_tls_when_required() -> None:
    assert rules.ingress_tls_configured(ingress(), require_tls=True) == [
        "spec.tls is not set: add a TLS entry with the Ingress's hosts and a certificate Secret "
        "(the stack's ingress.tlsSecretName setting)"
    ]


def test_ingress_tls_configured_rejects_an_uncovered_host_and_a_missing_secret() -> None:
    resource = ingress(tls=[{"hosts": ["other.example.com"]}])

    assert rules.ingress_tls_configured(resource, require_tls=True) == [
        "spec.tls[0] names no secretName: name the Secret that holds the certificate "
        "(the stack's ingress.tlsSecretName setting)",
        "host 'hello.example.com' is served without TLS: add it to the hosts of a spec.tls entry "
        "(the stack's ingress.tlsSecretName setting)",
    ]


def test_wildcard_tls_host_does_not_cover_the_bare_domain_or_deeper_names() -> None:
    tls = [{"hosts": ["*.example.com"], "secretName": "wildcard-tls"}]
    resource = ingress(tls=tls)
    resource["spec"]["rules"] = [{"host": "example.com"}, {"host": "a.b.example.com"}]

    messages = rules.ingress_tls_configured(resource, require_tls=True)

    assert [m.split("'")[1] for m in messages] == ["example.com", "a.b.example.com"]
