"""The components on their own: WebService and ContainerImage built directly under the recording mocks."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import (
    Builder,
    ContainerImage,
    ContainerImageArgs,
    IngressArgs,
    RegistryArgs,
    WebService,
    WebServiceArgs,
)
from components.verification import DEFAULT_CHECKER_IMAGE, VerificationArgs
from components.web_service import NODE_PORTS, image_version
from policy.rules import NODE_PORT_RANGE
from tests.conftest import CHECK_TARGET_IP, FAKE_DIGEST, PASSWORD, SECRET_SIG, VERIFIED_AT, Deployed

IMAGE = f"registry.example.com/hello@{FAKE_DIGEST}"


def web_service_args(**overrides: Any) -> WebServiceArgs:
    return WebServiceArgs(**{"name": "web", "instance": "test", "namespace": "web-test", "image": IMAGE, **overrides})


def settle(make: Callable[[], object]) -> None:
    """Runs ``make`` under the mocks and returns once every resource it made is registered."""

    @pulumi.runtime.test
    def program() -> None:
        make()

    program()


@pulumi.runtime.test
def test_web_service_exposes_its_namespace_and_node_port(recorded: Deployed) -> pulumi.Output[None]:
    service = WebService("web", web_service_args(node_port=30111))

    def check(values: list[Any]) -> None:
        assert values == ["web-test", 30111, "http://web.web-test.svc.cluster.local", None]

    return pulumi.Output.all(service.namespace, service.node_port, service.cluster_url, service.ingress_url).apply(
        check
    )


def test_web_service_runs_its_replicas_of_the_image_behind_the_node_port(recorded: Deployed) -> None:
    settle(lambda: WebService("web", web_service_args(replicas=2, node_port=30111)))

    deployment = recorded.one("kubernetes:apps/v1:Deployment").inputs
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    ports = recorded.named("kubernetes:core/v1:Service", "web-service").inputs["spec"]["ports"]
    assert ports == [{"name": "http", "nodePort": 30111, "port": 80, "targetPort": "http"}]
    assert recorded.of_type("kubernetes:networking.k8s.io/v1:Ingress") == []


def test_web_service_children_are_named_from_the_component(recorded: Deployed) -> None:
    settle(lambda: WebService("shop", web_service_args(ingress=IngressArgs(host="shop.example.com"))))

    names = sorted(resource.name for resource in recorded.resources if resource.type.startswith("kubernetes:"))
    assert names == [
        "shop-deny-egress",
        "shop-deployment",
        "shop-disruption-budget",
        "shop-ingress",
        "shop-namespace",
        "shop-network-policy",
        "shop-service",
        "shop-verify",
        "shop-verify-network-policy",
        "shop-verify-target",
    ]


def test_web_service_ingress_with_the_controller_certificate_lists_its_host_without_a_secret(
    recorded: Deployed,
) -> None:
    ingress = IngressArgs(host="shop.example.com", controller_certificate=True, redirect_to_https=True)

    settle(lambda: WebService("shop", web_service_args(ingress=ingress)))

    inputs = recorded.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    assert inputs["spec"]["tls"] == [{"hosts": ["shop.example.com"]}]
    assert inputs["metadata"]["annotations"] == {
        "pulumi.com/skipAwait": "true",
        "traefik.ingress.kubernetes.io/router.middlewares": "https-redirect@file",
    }
    assert ingress.url == "https://shop.example.com/"


def test_web_service_ingress_without_tls_asks_for_no_redirect(recorded: Deployed) -> None:
    settle(lambda: WebService("shop", web_service_args(ingress=IngressArgs(host="shop.example.com"))))

    inputs = recorded.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    assert "tls" not in inputs["spec"]
    assert inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"tls_secret_name": "shop-tls", "controller_certificate": True},
            "controller_certificate must be False when tls_secret_name is set, got True",
        ),
        (
            {"redirect_to_https": True},
            r"redirect_to_https must be False without TLS \(tls_secret_name or controller_certificate\), got True",
        ),
    ],
    ids=["two-certificates", "redirect-without-tls"],
)
def test_ingress_args_refuse_a_tls_choice_that_cannot_hold(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        IngressArgs(host="shop.example.com", **overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replicas": 0}, "replicas must be at least 1, got 0"),
        ({"node_port": 80}, "node_port must be from 30000 to 32767, got 80"),
        ({"node_port": 32768}, "node_port must be from 30000 to 32767, got 32768"),
        ({"rollout_timeout_seconds": 0}, "rollout_timeout_seconds must be at least 1, got 0"),
    ],
    ids=["no-replicas", "port-below-range", "port-above-range", "no-rollout-time"],
)
def test_web_service_args_refuse_values_the_cluster_would_reject(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        web_service_args(**overrides)


def test_node_port_range_is_the_same_in_the_component_and_the_policy_pack() -> None:
    assert NODE_PORTS == NODE_PORT_RANGE


def image_args(builder: Builder) -> ContainerImageArgs:
    registry = RegistryArgs(address="127.0.0.1:5000", username="u", password=pulumi.Output.secret(PASSWORD))
    return ContainerImageArgs(context=Path("app"), repository="hello", registry=registry, builder=builder)


@pytest.mark.parametrize("builder", list(Builder), ids=[b.value for b in Builder])
@pulumi.runtime.test
def test_container_image_exposes_the_pushed_image_by_digest(
    recorded: Deployed, builder: Builder
) -> pulumi.Output[None]:
    image = ContainerImage("app", image_args(builder))

    def check(ref: str) -> None:
        assert ref == f"127.0.0.1:5000/hello@{FAKE_DIGEST}"

    return image.image_ref.apply(check)


@pytest.mark.parametrize("builder", list(Builder), ids=[b.value for b in Builder])
def test_container_image_sends_the_password_only_as_a_secret(recorded: Deployed, builder: Builder) -> None:
    settle(lambda: ContainerImage("app", image_args(builder)))

    (pushed,) = [resource for resource in recorded.resources if resource.type.startswith("docker")]
    registry = pushed.wire["registry"] if builder is Builder.DOCKER else pushed.wire["registries"][0]
    assert registry["password"]["value"] == PASSWORD
    assert SECRET_SIG in registry["password"].values()


def test_web_service_rolls_and_stops_pods_without_dropping_requests(recorded: Deployed) -> None:
    settle(lambda: WebService("web", web_service_args(replicas=3, rollout_timeout_seconds=120)))

    spec = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert (spec["minReadySeconds"], spec["progressDeadlineSeconds"]) == (2, 120)
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert pod["terminationGracePeriodSeconds"] >= 5 + 5 + 5
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > (
        readiness["periodSeconds"] * readiness["failureThreshold"]
    )
    (spread,) = pod["topologySpreadConstraints"]
    assert (spread["whenUnsatisfiable"], spread["topologyKey"]) == ("ScheduleAnyway", "kubernetes.io/hostname")


@pytest.mark.parametrize(("replicas", "budgets"), [(1, 0), (2, 1), (3, 1)], ids=["one", "two", "three"])
def test_web_service_budgets_voluntary_disruptions_one_pod_at_a_time(
    recorded: Deployed, replicas: int, budgets: int
) -> None:
    settle(lambda: WebService("web", web_service_args(replicas=replicas)))

    found = recorded.of_type("kubernetes:policy/v1:PodDisruptionBudget")
    assert len(found) == budgets
    for budget in found:
        assert budget.inputs["spec"]["maxUnavailable"] == 1
        selector = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["selector"]
        assert budget.inputs["spec"]["selector"] == selector


def test_web_service_verifies_its_image_through_the_service_inside_the_cluster(recorded: Deployed) -> None:
    check = VerificationArgs(path="/hello", status=201, body="Hi")
    settle(lambda: WebService("web", web_service_args(verification=check)))

    job = recorded.one("kubernetes:batch/v1:Job").inputs
    pod = job["spec"]["template"]["spec"]
    (checker,) = pod["containers"]
    env = {item["name"]: item["value"] for item in checker["env"]}
    assert checker["image"] == DEFAULT_CHECKER_IMAGE
    assert checker["command"][:2] == ["node", "-e"]
    assert env == {
        "IMAGE_UNDER_TEST": IMAGE,  # what the evidence of a passed check names (ops/evidence.py)
        "TARGET": f"http://{CHECK_TARGET_IP}:80/hello",
        "EXPECT_STATUS": "201",
        "EXPECT_BODY": "Hi",
    }
    assert "name" not in job["metadata"]  # a new Job, with a new name, for every new image
    assert job["spec"]["backoffLimit"] == 0
    app = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert checker["securityContext"] == app["containers"][0]["securityContext"]
    assert checker["resources"] == app["containers"][0]["resources"]
    assert pod["securityContext"] == app["securityContext"]
    service_selector = recorded.named("kubernetes:core/v1:Service", "web-service").inputs["spec"]["selector"]
    assert not service_selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(
    "checker_image",
    [DEFAULT_CHECKER_IMAGE, f"127.0.0.1:5000/hello-pulumi/node-base@{FAKE_DIGEST}"],
    ids=["default", "local-base"],
)
def test_web_service_never_runs_its_check_in_the_image_under_test(recorded: Deployed, checker_image: str) -> None:
    """An image checked by its own ``node`` passes itself: the check's image must come from elsewhere."""
    settle(lambda: WebService("web", web_service_args(verification=VerificationArgs(checker_image=checker_image))))

    (app,) = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"]
    job_pod = recorded.one("kubernetes:batch/v1:Job").inputs["spec"]["template"]["spec"]
    images = [container["image"] for container in job_pod["containers"] + job_pod.get("initContainers", [])]
    assert images == [checker_image]
    assert app["image"] == IMAGE
    assert IMAGE not in images


def test_web_service_refuses_a_checker_image_that_is_the_image_under_test(recorded: Deployed) -> None:
    check = VerificationArgs(checker_image=IMAGE)
    expected = f"verification.checker_image must be another image than the one under test, got {IMAGE}"

    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        WebService("web", web_service_args(verification=check))
    assert recorded.of_type("kubernetes:batch/v1:Job") == []


@pytest.mark.parametrize(
    "checker_image",
    ["node:24-bookworm-slim", "docker.io/library/node:24", f"node@{FAKE_DIGEST}", ""],
    ids=["tag", "registry-and-tag", "no-registry", "empty"],
)
def test_verification_args_refuse_a_checker_image_not_pinned_by_digest(checker_image: str) -> None:
    with pytest.raises(
        ValueError, match=r"^checker_image must be <registry>/<repository>@sha256:<64 hex digits> \(.+\), got "
    ):
        VerificationArgs(checker_image=checker_image)


def test_web_service_checks_only_the_pods_that_run_the_image_under_test(recorded: Deployed) -> None:
    """Through the app's Service, an old pod still draining could answer the check and pass a bad image."""
    settle(lambda: WebService("web", web_service_args()))

    template = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["metadata"]["labels"]
    target_service = recorded.named("kubernetes:core/v1:Service", "web-verify-target").inputs
    target = target_service["spec"]
    app = recorded.named("kubernetes:core/v1:Service", "web-service").inputs["spec"]
    assert template["app.kubernetes.io/version"] == FAKE_DIGEST.removeprefix("sha256:")[:12]
    assert target["selector"] == {**app["selector"], "app.kubernetes.io/version": template["app.kubernetes.io/version"]}
    assert "type" not in target  # a ClusterIP: inside the cluster only
    # Its pods are the rollout's: a rollout that never gets ready is the Deployment's failure to report.
    assert target_service["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    assert target["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("registry.example.com/hello@sha256:" + "0123456789ab" + "f" * 52, "0123456789ab"),
        ("registry.example.com/hello:1.0", "59d5b30768c7"),
    ],
    ids=["pinned", "tagged"],
)
def test_image_version_is_the_digest_s_short_form_or_else_a_hash_of_the_name(image: str, version: str) -> None:
    assert image_version(image) == version


@pulumi.runtime.test
def test_web_service_exposes_the_image_that_passed_and_when(recorded: Deployed) -> pulumi.Output[None]:
    service = WebService("web", web_service_args())

    def check(values: list[Any]) -> None:
        assert values == [IMAGE, VERIFIED_AT]

    return pulumi.Output.all(service.verified_image_ref, service.verified_at).apply(check)


def test_web_service_lets_the_check_reach_only_the_apps_http_port(recorded: Deployed) -> None:
    settle(lambda: WebService("web", web_service_args()))

    policies = {p.name: p.inputs["spec"] for p in recorded.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    check = policies["web-verify-network-policy"]
    job_labels = recorded.one("kubernetes:batch/v1:Job").inputs["spec"]["template"]["metadata"]["labels"]
    app_selector = recorded.named("kubernetes:core/v1:Service", "web-service").inputs["spec"]["selector"]
    assert check["podSelector"]["matchLabels"].items() <= job_labels.items()
    assert check["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in check
    assert check["egress"] == [
        {"to": [{"podSelector": {"matchLabels": app_selector}}], "ports": [{"port": "http", "protocol": "TCP"}]}
    ]
