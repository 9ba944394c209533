"""Each rule of the policy pack, called as a plain function on a passing and a failing resource.

The restricted-security-context rule, one case per Pod Security Standards control, is in test_pod_security.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from policy import rules
from policy.workloads import WorkloadKind
from tests.unit.policy.manifests import DIGEST, container, template, workload

KINDS = list(WorkloadKind)
KIND_IDS = [kind.kind for kind in WorkloadKind]
REPLICATED = [kind for kind in WorkloadKind if kind.has_replicas]
LONG_RUNNING = [kind for kind in WorkloadKind if not kind.runs_to_completion]
PIN = (
    ": reference the image by digest, <registry>/<repository>@sha256:<64 hex digits> "
    "(promote a built image by its digest instead of a tag)"
)


def service(*ports: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"type": "NodePort", "ports": list(ports)}}


def ingress(**spec: Any) -> dict[str, Any]:
    rules_ = [{"host": "hello.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix"}]}}]
    return {"spec": {"rules": rules_, **spec}}


TLS = [{"hosts": ["hello.example.com"], "secretName": "hello-example-com-tls"}]
TLS_FIX = "(the stack's ingress.tlsSecretName setting)"


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_image_pinned_by_digest_accepts_a_digest_reference_in_every_kind(kind: WorkloadKind) -> None:
    assert rules.workload_image_pinned_by_digest(workload(kind), kind) == []


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("127.0.0.1:5000/hello-world:dev", "uses the mutable tag 'dev'"),
        ("127.0.0.1:5000/hello-world:latest", "uses the mutable 'latest' tag"),
        ("127.0.0.1:5000/hello-world", "uses the mutable 'latest' tag"),
        ("hello-world@sha256:abc", "has a malformed digest"),
        (f"hello-world@{DIGEST}\n", "has a malformed digest"),
        (f"hello-world@{DIGEST}0", "has a malformed digest"),
    ],
    ids=["tag", "latest", "implicit-latest", "short-digest", "trailing-newline", "long-digest"],
)
def test_image_pinned_by_digest_rejects_a_tag_and_says_how_to_pin(image: str, problem: str) -> None:
    kind = WorkloadKind.DEPLOYMENT

    messages = rules.workload_image_pinned_by_digest(workload(kind, template(container(image=image))), kind)

    assert messages == [f"container 'hello-world' image {image!r} {problem}{PIN}"]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_image_pinned_by_digest_finds_the_containers_of_every_kind(kind: WorkloadKind) -> None:
    resource = workload(kind, template(container(image="hello-world:1.0")))

    assert rules.workload_image_pinned_by_digest(resource, kind) == [
        f"container 'hello-world' image 'hello-world:1.0' uses the mutable tag '1.0'{PIN}"
    ]


def test_image_pinned_by_digest_checks_init_and_ephemeral_containers_too() -> None:
    kind = WorkloadKind.POD
    pod = template(
        initContainers=[container(name="migrate", image="busybox:1.36")],
        ephemeralContainers=[container(name="debug", image=None)],
    )

    assert rules.workload_image_pinned_by_digest(workload(kind, pod), kind) == [
        f"init container 'migrate' image 'busybox:1.36' uses the mutable tag '1.36'{PIN}",
        f"ephemeral container 'debug' has no image{PIN}",
    ]


@pytest.mark.parametrize(
    ("replicas", "minimum"), [(2, 2), (3, 3), (3.0, 3), (5, 3)], ids=["2of2", "3of3", "float", "5of3"]
)
def test_min_replicas_accepts_enough_replicas(replicas: Any, minimum: int) -> None:
    resource = workload(WorkloadKind.DEPLOYMENT, replicas=replicas)

    assert rules.workload_min_replicas(resource, min_replicas=minimum) == []


@pytest.mark.parametrize(
    ("replicas", "minimum", "given"),
    [(1, 2, "1"), (2, 3, "2"), (2.0, 3, "2"), (None, 2, "not set (Kubernetes defaults to 1)"), ("3", 2, "'3'")],
    ids=["1of2", "2of3", "float", "unset", "string"],
)
def test_min_replicas_rejects_too_few_and_names_the_setting(replicas: Any, minimum: int, given: str) -> None:
    resource = workload(WorkloadKind.DEPLOYMENT, replicas=replicas)

    assert rules.workload_min_replicas(resource, min_replicas=minimum) == [
        f"spec.replicas is {given}, expected at least {minimum}: "
        f"set the stack's replicas to {minimum} or more (Pulumi.<stack>.yaml, hello-world:replicas)"
    ]


@pytest.mark.parametrize("kind", REPLICATED, ids=[kind.kind for kind in REPLICATED])
def test_min_replicas_reads_the_replicas_of_every_replicated_kind(kind: WorkloadKind) -> None:
    assert rules.workload_min_replicas(workload(kind, replicas=3), min_replicas=3) == []
    assert len(rules.workload_min_replicas(workload(kind, replicas=1), min_replicas=3)) == 1


def test_min_replicas_defaults_to_two() -> None:
    assert rules.workload_min_replicas(workload(WorkloadKind.DEPLOYMENT, replicas=2)) == []
    assert len(rules.workload_min_replicas(workload(WorkloadKind.DEPLOYMENT, replicas=1))) == 1


@pytest.mark.parametrize("kind", LONG_RUNNING, ids=[kind.kind for kind in LONG_RUNNING])
def test_probes_configured_accepts_readiness_and_liveness_in_every_long_running_kind(kind: WorkloadKind) -> None:
    assert rules.workload_probes_configured(workload(kind), kind) == []


@pytest.mark.parametrize("kind", LONG_RUNNING, ids=[kind.kind for kind in LONG_RUNNING])
def test_probes_configured_reports_each_missing_probe(kind: WorkloadKind) -> None:
    resource = workload(kind, template(container(readinessProbe=None, livenessProbe=None)))

    assert rules.workload_probes_configured(resource, kind) == [
        "container 'hello-world' has no readinessProbe: add one (for example an httpGet on /healthz) "
        "so that traffic and rollouts wait until it can serve",
        "container 'hello-world' has no livenessProbe: add one (for example an httpGet on /healthz) "
        "so that the kubelet restarts it when it hangs",
    ]


@pytest.mark.parametrize(
    "action",
    [
        {"httpGet": {"path": "/healthz", "port": "http"}},
        {"exec": {"command": ["check"]}},
        {"grpc": {"port": 9090}},
    ],
    ids=["httpGet", "exec", "grpc"],
)
def test_probes_configured_reports_a_liveness_probe_that_asks_what_readiness_asks(action: dict[str, Any]) -> None:
    kind = WorkloadKind.DEPLOYMENT
    same = template(
        container(readinessProbe={**action, "periodSeconds": 1}, livenessProbe={**action, "periodSeconds": 10})
    )
    (name,) = action

    assert rules.workload_probes_configured(workload(kind, same), kind) == [
        f"container 'hello-world' has a livenessProbe that asks what its readinessProbe asks ({name}): give liveness "
        "an endpoint that stays healthy while the pod drains (for example /livez), or a drain that fails readiness "
        "restarts the container"
    ]


def test_probes_configured_accepts_tcp_liveness_beside_tcp_readiness() -> None:
    kind = WorkloadKind.DEPLOYMENT
    tcp = {"tcpSocket": {"port": "http"}}

    assert (
        rules.workload_probes_configured(
            workload(kind, template(container(readinessProbe=tcp, livenessProbe=tcp))), kind
        )
        == []
    )


@pytest.mark.parametrize("restart_policy", ["Never", "OnFailure"])
def test_probes_configured_exempts_a_pod_that_runs_to_completion(restart_policy: str) -> None:
    kind = WorkloadKind.POD
    pod = template(container(readinessProbe=None, livenessProbe=None), restartPolicy=restart_policy)

    assert rules.workload_probes_configured(workload(kind, pod), kind) == []


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_resources_configured_accepts_requests_and_limits_in_every_kind(kind: WorkloadKind) -> None:
    assert rules.workload_resources_configured(workload(kind), kind) == []


@pytest.mark.parametrize(
    ("resources", "missing"),
    [
        (
            {
                "requests": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "32Mi"},
                "limits": {"memory": "128Mi", "ephemeral-storage": "128Mi"},
            },
            "resources.limits.cpu",
        ),
        (
            {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
            "resources.requests.ephemeral-storage, resources.limits.ephemeral-storage",
        ),
        (
            {"requests": {"cpu": "50m"}},
            "resources.requests.memory, resources.requests.ephemeral-storage, resources.limits.cpu, "
            "resources.limits.memory, resources.limits.ephemeral-storage",
        ),
        (
            None,
            "resources.requests.cpu, resources.requests.memory, resources.requests.ephemeral-storage, "
            "resources.limits.cpu, resources.limits.memory, resources.limits.ephemeral-storage",
        ),
    ],
    ids=["no-cpu-limit", "no-ephemeral-storage", "cpu-request-only", "none"],
)
def test_resources_configured_names_every_missing_quantity(resources: Any, missing: str) -> None:
    kind = WorkloadKind.CRON_JOB

    messages = rules.workload_resources_configured(workload(kind, template(container(resources=resources))), kind)

    assert messages == [
        f"container 'hello-world' does not set {missing}: set CPU, memory and ephemeral-storage requests and "
        "limits (the stack's resources setting) so the scheduler places it and a runaway is contained"
    ]


def test_resources_configured_checks_init_containers_but_not_ephemeral_ones() -> None:
    kind = WorkloadKind.JOB
    pod = template(
        initContainers=[container(name="migrate", resources=None)],
        ephemeralContainers=[container(name="debug", resources=None)],
    )

    (message,) = rules.workload_resources_configured(workload(kind, pod), kind)

    assert message.startswith("init container 'migrate' does not set resources.requests.cpu")


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
        "spec.tls is not set: add a TLS entry with the Ingress's hosts "
        "(the stack's ingress.tlsSecretName or ingress.controllerCertificate setting)"
    ]


def test_ingress_tls_configured_accepts_a_host_served_with_the_controller_default_certificate() -> None:
    resource = ingress(tls=[{"hosts": ["hello.example.com"]}])

    assert rules.ingress_tls_configured(resource, require_tls=True) == []


def test_ingress_tls_configured_rejects_an_uncovered_host() -> None:
    resource = ingress(tls=[{"hosts": ["other.example.com"]}])

    assert rules.ingress_tls_configured(resource, require_tls=True) == [
        "host 'hello.example.com' is served without TLS: add it to the hosts of a spec.tls entry "
        "(the stack's ingress.tlsSecretName or ingress.controllerCertificate setting)",
    ]


def test_wildcard_tls_host_does_not_cover_the_bare_domain_or_deeper_names() -> None:
    tls = [{"hosts": ["*.example.com"], "secretName": "wildcard-tls"}]
    resource = ingress(tls=tls)
    resource["spec"]["rules"] = [{"host": "example.com"}, {"host": "a.b.example.com"}]

    messages = rules.ingress_tls_configured(resource, require_tls=True)

    assert [m.split("'")[1] for m in messages] == ["example.com", "a.b.example.com"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"tls": TLS, "defaultBackend": {"service": {"name": "hello-world", "port": {"number": 80}}}},
            [
                "spec.defaultBackend answers for any host name, which no TLS certificate covers: remove it "
                "and route each host through a rule whose host is listed in spec.tls"
            ],
        ),
        (
            {"tls": TLS, "rules": [{"host": "hello.example.com"}, {"http": {"paths": []}}]},
            [
                "spec.rules[1] has no host, so it answers for any host name, which no TLS certificate covers: "
                "set its host (the stack's ingress.host setting) and list that host in spec.tls"
            ],
        ),
        (
            {"tls": [{"secretName": "default-tls"}], "rules": [{"host": ""}]},
            [
                "spec.rules[0] has no host, so it answers for any host name, which no TLS certificate covers: "
                "set its host (the stack's ingress.host setting) and list that host in spec.tls"
            ],
        ),
    ],
    ids=["default-backend", "rule-without-host", "empty-host-and-host-less-tls"],
)
def test_ingress_tls_configured_rejects_routes_that_answer_for_any_host(
    spec: dict[str, Any], expected: list[str]
) -> None:
    assert rules.ingress_tls_configured(ingress(**spec), require_tls=True) == expected


def test_ingress_tls_configured_without_tls_lists_the_host_less_routes_too() -> None:
    resource = ingress(defaultBackend={"resource": {"kind": "Bucket", "name": "static"}})
    resource["spec"]["rules"].append({"http": {"paths": []}})

    messages = rules.ingress_tls_configured(resource, require_tls=True)

    assert [message.split(":")[0] for message in messages] == [
        "spec.tls is not set",
        "spec.defaultBackend answers for any host name, which no TLS certificate covers",
        "spec.rules[1] has no host, so it answers for any host name, which no TLS certificate covers",
    ]


def test_ingress_tls_configured_ignores_host_less_routes_when_tls_is_not_required() -> None:
    resource = ingress(defaultBackend={"service": {"name": "hello-world", "port": {"number": 80}}})

    assert rules.ingress_tls_configured(resource) == []


def routed(host: str, *paths: tuple[str, str]) -> dict[str, Any]:
    """An Ingress rule for ``host`` routing each (path, service) as a Prefix path."""
    return {
        "host": host,
        "http": {
            "paths": [
                {"path": path, "pathType": "Prefix", "backend": {"service": {"name": name, "port": {"number": 80}}}}
                for path, name in paths
            ]
        },
    }


def test_ingress_routes_unique_accepts_services_on_distinct_hosts_and_paths() -> None:
    spec = {
        "rules": [
            routed("hello.example.com", ("/", "hello-world"), ("/v2", "hello-v2")),
            routed("beta.example.com", ("/", "hello-beta")),
        ]
    }

    assert rules.ingress_routes_unique({"spec": spec}) == []


@pytest.mark.parametrize(
    ("rules_", "message"),
    [
        (
            [routed("hello.example.com", ("/v2", "hello-world"), ("/v2/", "hello-v2"))],
            "host 'hello.example.com' routes the Prefix path '/v2/' to service 'hello-v2', a path that already "
            "leads to service 'hello-world'",
        ),
        (
            [routed("hello.example.com", ("/", "hello-world")), routed("hello.example.com", ("/", "hello-v2"))],
            "host 'hello.example.com' routes the Prefix path '/' to service 'hello-v2', a path that already "
            "leads to service 'hello-world'",
        ),
        (
            [routed("", ("/", "hello-world"), ("/", "hello-v2"))],
            "every host routes the Prefix path '/' to service 'hello-v2', a path that already leads to service "
            "'hello-world'",
        ),
    ],
    ids=["trailing-slash-in-one-rule", "same-host-in-two-rules", "host-less"],
)
def test_ingress_routes_unique_rejects_a_path_that_leads_to_two_services(
    rules_: list[dict[str, Any]], message: str
) -> None:
    assert rules.ingress_routes_unique({"spec": {"rules": rules_}}) == [
        f"{message}: route each host and path to one service "
        "(the stack's ingress.host/ingress.path and services[].host/services[].path)"
    ]
