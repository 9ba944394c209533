"""The components on their own: WebService and ContainerImage built directly under the recording mocks."""

from __future__ import annotations

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
from components.web_service import NODE_PORTS
from policy.rules import NODE_PORT_RANGE
from tests.conftest import FAKE_DIGEST, PASSWORD, SECRET_SIG, Deployed

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
    ports = recorded.one("kubernetes:core/v1:Service").inputs["spec"]["ports"]
    assert ports == [{"name": "http", "nodePort": 30111, "port": 80, "targetPort": "http"}]
    assert recorded.of_type("kubernetes:networking.k8s.io/v1:Ingress") == []


def test_web_service_children_are_named_from_the_component(recorded: Deployed) -> None:
    settle(lambda: WebService("shop", web_service_args(ingress=IngressArgs(host="shop.example.com"))))

    names = sorted(resource.name for resource in recorded.resources if resource.type.startswith("kubernetes:"))
    assert names == ["shop-deployment", "shop-ingress", "shop-namespace", "shop-network-policy", "shop-service"]


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
