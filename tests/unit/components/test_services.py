"""WebService with further services behind its one Ingress, built directly under the recording mocks."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pytest

from components import IngressArgs, RoutedServiceArgs, WebService, WebServiceArgs
from components.verification import VerificationArgs
from components.web_service import COMPONENT_CHILDREN, SERVICE_CHILDREN
from tests.conftest import CHECK_TARGET_IP, FAKE_DIGEST, VERIFIED_AT, Deployed
from tests.unit.components.test_components import settle

IMAGE = f"registry.example.com/hello@{FAKE_DIGEST}"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
JOB = "kubernetes:batch/v1:Job"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
BUDGET = "kubernetes:policy/v1:PodDisruptionBudget"
V2 = RoutedServiceArgs(name="web-v2", path="/v2", message="Hello World v2")
BETA = RoutedServiceArgs(name="beta", host="beta.example.com", replicas=1)


def two_services(**overrides: Any) -> WebServiceArgs:
    """The main service on web.example.com/, web-v2 on its /v2 and beta on a host of its own."""
    return WebServiceArgs(
        **{
            "name": "web",
            "instance": "test",
            "namespace": "web-test",
            "image": IMAGE,
            "replicas": 2,
            "node_port": 30111,
            "ingress": IngressArgs(host="web.example.com", class_name="traefik", tls_secret_name="web-tls"),
            "services": (V2, BETA),
            **overrides,
        }
    )


def by_name(recorded: Deployed, type_: str) -> dict[str, dict[str, Any]]:
    return {resource.inputs["metadata"]["name"]: resource.inputs for resource in recorded.of_type(type_)}


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"]}


def test_further_services_get_their_own_children_named_from_the_component_and_the_service(
    recorded: Deployed,
) -> None:
    settle(lambda: WebService("shop", two_services(services=(V2,))))

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
        "shop-web-v2-deny-egress",
        "shop-web-v2-deployment",
        "shop-web-v2-disruption-budget",
        "shop-web-v2-network-policy",
        "shop-web-v2-service",
        "shop-web-v2-verify",
        "shop-web-v2-verify-network-policy",
        "shop-web-v2-verify-target",
    ]
    # The names routing_problems keeps apart are the ones the component gives.
    assert set(names) == {
        *(f"shop-{child}" for child in (*SERVICE_CHILDREN, *COMPONENT_CHILDREN) if child != "pull-secret"),
        *(f"shop-web-v2-{child}" for child in SERVICE_CHILDREN),
    }


def test_every_service_runs_the_one_image_with_its_own_message_and_replicas(recorded: Deployed) -> None:
    settle(lambda: WebService("web", two_services()))

    deployments = by_name(recorded, DEPLOYMENT)
    assert sorted(deployments) == ["beta", "web", "web-v2"]
    for deployment in deployments.values():
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert "MESSAGE" not in env_of(deployments["web"])
    assert env_of(deployments["web-v2"])["MESSAGE"] == "Hello World v2"
    assert "MESSAGE" not in env_of(deployments["beta"])  # no message: the app's own answer
    assert {name: d["spec"]["replicas"] for name, d in deployments.items()} == {"web": 2, "web-v2": 2, "beta": 1}
    assert sorted(by_name(recorded, BUDGET)) == ["web", "web-v2"]  # one pod has nothing to budget


def test_further_services_are_cluster_ips_reached_only_through_the_ingress(recorded: Deployed) -> None:
    settle(lambda: WebService("web", two_services()))

    services = by_name(recorded, SERVICE)
    assert services["web"]["spec"]["type"] == "NodePort"
    for name in ("web-v2", "beta"):
        spec = services[name]["spec"]
        assert "type" not in spec
        assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
        assert spec["selector"] == {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "test"}


def test_one_ingress_routes_each_host_and_path_to_its_service_with_tls_for_every_host(recorded: Deployed) -> None:
    settle(lambda: WebService("web", two_services()))

    (ingress,) = recorded.of_type(INGRESS)
    spec = ingress.inputs["spec"]

    def route(path: str, service: str) -> dict[str, Any]:
        backend = {"service": {"name": service, "port": {"number": 80}}}
        return {"path": path, "pathType": "Prefix", "backend": backend}

    assert spec["rules"] == [
        {"host": "web.example.com", "http": {"paths": [route("/", "web"), route("/v2", "web-v2")]}},
        {"host": "beta.example.com", "http": {"paths": [route("/", "beta")]}},
    ]
    assert spec["tls"] == [{"hosts": ["web.example.com", "beta.example.com"], "secretName": "web-tls"}]
    assert spec["ingressClassName"] == "traefik"


def test_each_service_is_checked_on_its_own_new_pods_for_its_own_answer(recorded: Deployed) -> None:
    checker_image = f"checker.example.com/node@{FAKE_DIGEST}"
    check = VerificationArgs(path="/", status=200, body="Hello World", checker_image=checker_image)
    settle(lambda: WebService("web", two_services(verification=check)))

    jobs = {job.name: job.inputs["spec"]["template"] for job in recorded.of_type(JOB)}
    assert sorted(jobs) == ["web-beta-verify", "web-verify", "web-web-v2-verify"]
    expected_bodies = {
        "web-verify": "Hello World",
        "web-web-v2-verify": "Hello World v2",
        "web-beta-verify": "Hello World",
    }
    for name, template in jobs.items():
        (checker,) = template["spec"]["containers"]
        env = {item["name"]: item["value"] for item in checker["env"]}
        assert env["EXPECT_BODY"] == expected_bodies[name]
        assert checker["image"] == checker_image, "every service is checked from the stack's checker image"
        assert env["TARGET"] == f"http://{CHECK_TARGET_IP}:80/"
    targets = by_name(recorded, SERVICE)
    version = FAKE_DIGEST.removeprefix("sha256:")[:12]
    for name in ("web", "web-v2", "beta"):
        assert targets[f"{name}-verify-target"]["spec"]["selector"] == {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": "test",
            "app.kubernetes.io/version": version,
        }


def test_each_check_reaches_only_the_pods_of_the_service_it_checks(recorded: Deployed) -> None:
    settle(lambda: WebService("web", two_services()))

    policies = by_name(recorded, NETWORK_POLICY)
    jobs = {
        job.inputs["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]: job
        for job in recorded.of_type(JOB)
    }
    for name in ("web", "web-v2", "beta"):
        selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "test"}
        check = policies[f"{name}-verify"]["spec"]
        assert (
            check["podSelector"]["matchLabels"].items()
            <= jobs[f"{name}-verify"].inputs["spec"]["template"]["metadata"]["labels"].items()
        )
        assert check["egress"] == [
            {"to": [{"podSelector": {"matchLabels": selector}}], "ports": [{"port": "http", "protocol": "TCP"}]}
        ]
        assert policies[name]["spec"]["podSelector"] == {"matchLabels": selector}
        assert policies[f"{name}-deny-egress"]["spec"] == {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Egress"],
        }


@pulumi.runtime.test
def test_web_service_exposes_every_services_url_through_the_ingress(recorded: Deployed) -> pulumi.Output[None]:
    service = WebService("web", two_services())

    def check(values: list[Any]) -> None:
        assert values == [
            {
                "web": "https://web.example.com/",
                "web-v2": "https://web.example.com/v2",
                "beta": "https://beta.example.com/",
            },
            "https://web.example.com/",
            IMAGE,
            VERIFIED_AT,
        ]

    assert service.service_urls is not None
    assert service.ingress_url is not None
    return pulumi.Output.all(
        service.service_urls, service.ingress_url, service.verified_image_ref, service.verified_at
    ).apply(check)


@pulumi.runtime.test
def test_web_service_without_an_ingress_has_no_service_urls(recorded: Deployed) -> pulumi.Output[None]:
    service = WebService("web", two_services(ingress=None, services=()))

    assert service.service_urls is None
    return service.namespace.apply(lambda namespace: None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"ingress": None},
            "services must come with ingress.enabled: true (they are reached only through it), got 'web-v2', 'beta'",
        ),
        (
            {"services": (RoutedServiceArgs(name="web", path="/other"),)},
            "services[0].name must be a name no other service has, got 'web', which the main service has",
        ),
        (
            {"services": (RoutedServiceArgs(name="web-verify", path="/other"),)},
            "services[0].name must be a name whose objects no other service's objects share, got 'web-verify': "
            "the main service ('web') names one of its objects 'web-verify' too",
        ),
        (
            {"services": (V2, RoutedServiceArgs(name="web-v2", path="/other"))},
            "services[1].name must be a name no other service has, got 'web-v2', which services[0] has",
        ),
        (
            {"services": (RoutedServiceArgs(name="2nd", path="/other"),)},
            "services[0].name must be a DNS label of at most 49 characters starting with a letter, got '2nd'",
        ),
        (
            {"services": (RoutedServiceArgs(name="a" * 50, path="/other"),)},
            f"services[0].name must be a DNS label of at most 49 characters starting with a letter, got {'a' * 50!r}",
        ),
        (
            {"services": (RoutedServiceArgs(name="root"),)},
            "services[0].path must be a path no other service routes on host 'web.example.com', got '/', "
            "which the main service (ingress.host and ingress.path) routes",
        ),
        (
            {"services": (V2, RoutedServiceArgs(name="again", path="/v2/", host="web.example.com"))},
            "services[1].path must be a path no other service routes on host 'web.example.com', got '/v2/', "
            "which services[0] ('web-v2') routes",
        ),
        (
            {"services": (RoutedServiceArgs(name="verify", path="/check"),)},
            "services[0].name must be a name that names none of its resources like one of the main service's, got "
            "'verify': its network-policy would be named as the main service's verify-network-policy",
        ),
        (
            {"services": (RoutedServiceArgs(name="none", path="/none", replicas=0),)},
            "services[0].replicas must be at least 1, got 0",
        ),
    ],
    ids=[
        "services-without-ingress",
        "name-of-the-main-service",
        "name-of-a-main-service-object",
        "name-of-another-service",
        "name-not-starting-with-a-letter",
        "name-too-long",
        "route-of-the-main-service",
        "same-prefix-with-a-trailing-slash",
        "name-making-a-resource-name-of-the-main-service",
        "no-replicas",
    ],
)
def test_web_service_args_refuse_services_that_clash_or_cannot_be_reached(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        two_services(**overrides)


def test_the_same_path_on_another_host_is_another_route() -> None:
    args = two_services(services=(RoutedServiceArgs(name="other", host="other.example.com"),))

    assert [(route.host, route.path, route.service) for route in args.routes] == [
        ("web.example.com", "/", "web"),
        ("other.example.com", "/", "other"),
    ]
