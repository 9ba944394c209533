"""Each stack file, run through the real program under mocks: what it registers and exports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.web_service import image_version
from settings.load import SettingsError
from tests.conftest import (
    CLUSTER_CHOSEN_NODE_PORT,
    FAKE_DIGEST,
    PASSWORD,
    SECRET_SIG,
    Deploy,
    Deployed,
    stack_config,
    with_password,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DOCKER_BUILD_IMAGE = "docker-build:index:Image"
DOCKER_IMAGE = "docker:index/image:Image"
SECRET_KEYS = ("hello-world:registryPassword",)


def run_stack(deploy: Deploy, stack: str) -> Deployed:
    config = stack_config(stack)
    if "hello-world:build" in config:
        return deploy(stack, with_password(config), SECRET_KEYS)
    return deploy(stack, config)


def container(deployed: Deployed) -> dict[str, Any]:
    containers = deployed.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    only: dict[str, Any] = containers[0]
    return only


@pytest.mark.parametrize(
    ("stack", "replicas", "node_port"),
    [("dev", 2, 31611), ("staging", 2, 31612), ("prod", 3, 31613)],
    ids=["dev", "staging", "prod"],
)
def test_stack_deploys_replicas_on_its_node_port(deploy: Deploy, stack: str, replicas: int, node_port: int) -> None:
    deployed = run_stack(deploy, stack)

    assert deployed.one(DEPLOYMENT).inputs["spec"]["replicas"] == replicas
    ports = deployed.named(SERVICE, "hello-world-service").inputs["spec"]["ports"]
    assert deployed.named(SERVICE, "hello-world-service").inputs["spec"]["type"] == "NodePort"
    assert ports == [{"name": "http", "port": 80, "targetPort": "http", "nodePort": node_port}]
    assert container(deployed)["ports"] == [{"name": "http", "containerPort": 8080}]
    assert deployed.outputs["nodePort"] == node_port


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_lives_in_its_own_namespace(deploy: Deploy, stack: str) -> None:
    deployed = run_stack(deploy, stack)

    namespace = deployed.one(NAMESPACE).inputs["metadata"]["name"]
    assert namespace == f"hello-world-{stack}"
    for resource in (deployed.one(DEPLOYMENT), *deployed.of_type(SERVICE)):
        assert resource.inputs["metadata"]["namespace"] == namespace
    assert deployed.outputs["namespace"] == namespace
    assert deployed.outputs["serviceName"] == "hello-world"
    assert deployed.outputs["clusterUrl"] == f"http://hello-world.{namespace}.svc.cluster.local"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_selectors_match_template_labels(deploy: Deploy, stack: str) -> None:
    deployed = run_stack(deploy, stack)

    spec = deployed.one(DEPLOYMENT).inputs["spec"]
    selector = spec["selector"]["matchLabels"]
    template_labels = spec["template"]["metadata"]["labels"]
    service_selector = deployed.named(SERVICE, "hello-world-service").inputs["spec"]["selector"]
    assert selector == {"app.kubernetes.io/name": "hello-world", "app.kubernetes.io/instance": stack}
    assert service_selector == selector
    assert selector.items() <= template_labels.items()
    assert template_labels["app.kubernetes.io/managed-by"] == "pulumi"
    # Pods also carry the version of the image they run; the objects around them carry the app's labels.
    app_labels = {key: value for key, value in template_labels.items() if key != "app.kubernetes.io/version"}
    assert template_labels["app.kubernetes.io/version"] == image_version(
        deployed.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    for resource in (deployed.one(DEPLOYMENT), *deployed.of_type(SERVICE)):
        assert resource.inputs["metadata"]["labels"] == app_labels
    # The Namespace adds its Pod Security labels to the app's.
    assert app_labels.items() <= deployed.one(NAMESPACE).inputs["metadata"]["labels"].items()


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_probes_health_and_rolls_all_new_pods_at_once_without_losing_capacity(deploy: Deploy, stack: str) -> None:
    deployed = run_stack(deploy, stack)

    app = container(deployed)
    assert app["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Liveness asks an endpoint that stays healthy while the pod drains (and fails readiness).
    assert app["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    strategy = deployed.one(DEPLOYMENT).inputs["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "100%"}}
    assert set(app["resources"]) == {"requests", "limits"}
    quantities = {"cpu", "memory", "ephemeral-storage"}
    assert set(app["resources"]["requests"]) == set(app["resources"]["limits"]) == quantities


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_runs_restricted(deploy: Deploy, stack: str) -> None:
    deployed = run_stack(deploy, stack)

    pod = deployed.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(deployed)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_dev_builds_pushes_and_deploys_its_image_by_digest(deploy: Deploy) -> None:
    deployed = run_stack(deploy, "dev")

    image = deployed.one(DOCKER_BUILD_IMAGE)
    assert image.inputs["tags"] == ["127.0.0.1:5000/hello-world:dev"]
    assert image.inputs["push"] is True
    assert image.inputs["context"] == {"location": "app"}
    assert image.inputs["buildArgs"] == {"BASE_IMAGE": "127.0.0.1:5000/hello-pulumi/node-base:local"}
    assert image.inputs["buildOnPreview"] is False
    expected = f"127.0.0.1:5000/hello-world@{FAKE_DIGEST}"
    assert container(deployed)["image"] == expected
    assert deployed.outputs["imageRef"] == expected
    assert not deployed.of_type(DOCKER_IMAGE)


def test_dev_registry_password_stays_secret(deploy: Deploy) -> None:
    deployed = run_stack(deploy, "dev")

    registry = deployed.one(DOCKER_BUILD_IMAGE).wire["registries"][0]
    assert registry["username"] == "hello"
    assert SECRET_SIG in registry["password"].values()
    assert registry["password"]["value"] == PASSWORD
    everything_else = [r.wire for r in deployed.resources if r.type != DOCKER_BUILD_IMAGE]
    assert PASSWORD not in json.dumps(everything_else)
    assert PASSWORD not in json.dumps(deployed.outputs, default=str)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_promoted_stack_deploys_the_pinned_image_without_building(deploy: Deploy, stack: str) -> None:
    deployed = run_stack(deploy, stack)

    pinned = stack_config(stack)["hello-world:image"]
    assert "@sha256:" in pinned
    assert container(deployed)["image"] == pinned
    assert deployed.outputs["imageRef"] == pinned
    assert not deployed.of_type(DOCKER_BUILD_IMAGE)
    assert not deployed.of_type(DOCKER_IMAGE)


def test_prod_exposes_an_ingress_with_tls(deploy: Deploy) -> None:
    deployed = run_stack(deploy, "prod")

    ingress = deployed.one(INGRESS).inputs
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "traefik"
    (rule,) = spec["rules"]
    assert rule["host"] == "hello.hello-pulumi.test"
    assert rule["http"]["paths"] == [
        {
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": "hello-world", "port": {"number": 80}}},
        }
    ]
    # The controller's default certificate (the local platform's, for *.hello-pulumi.test) serves the host.
    assert spec["tls"] == [{"hosts": ["hello.hello-pulumi.test"]}]
    assert ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"] == (
        "https-redirect@file"
    )
    assert deployed.outputs["ingressUrl"] == "https://hello.hello-pulumi.test/"
    assert deployed.outputs["serviceUrls"] == {"hello-world": "https://hello.hello-pulumi.test/"}


def test_stack_with_a_second_service_routes_both_through_one_ingress_and_exports_their_urls(deploy: Deploy) -> None:
    second = {"name": "hello-v2", "message": "Hello World v2", "host": "v2.hello-pulumi.test", "replicas": "3"}
    config = {**stack_config("prod"), "hello-world:services": json.dumps([second])}

    deployed = deploy("prod", config)

    (ingress,) = deployed.of_type(INGRESS)
    assert [rule["host"] for rule in ingress.inputs["spec"]["rules"]] == [
        "hello.hello-pulumi.test",
        "v2.hello-pulumi.test",
    ]
    assert sorted(d.inputs["metadata"]["name"] for d in deployed.of_type(DEPLOYMENT)) == ["hello-v2", "hello-world"]
    assert deployed.outputs["serviceUrls"] == {
        "hello-world": "https://hello.hello-pulumi.test/",
        "hello-v2": "https://v2.hello-pulumi.test/",
    }
    assert deployed.outputs["ingressUrl"] == "https://hello.hello-pulumi.test/"
    assert deployed.outputs["verifiedImageRef"] == stack_config("prod")["hello-world:image"]


def test_services_that_clash_stop_the_program_before_any_resource(deploy: Deploy) -> None:
    clash = {"name": "hello-v2", "path": "/"}
    config = {**stack_config("prod"), "hello-world:services": json.dumps([clash])}

    with pytest.raises(SettingsError, match=r"services\[0\]\.path must be a path no other service routes"):
        deploy("prod", config)

    assert deploy.registered == []


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_stack_without_ingress_has_none(deploy: Deploy, stack: str) -> None:
    deployed = run_stack(deploy, stack)

    assert not deployed.of_type(INGRESS)
    assert "ingressUrl" not in deployed.outputs
    assert "serviceUrls" not in deployed.outputs


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_admits_only_http_to_its_pods_and_no_egress(deploy: Deploy, stack: str) -> None:
    deployed = run_stack(deploy, stack)

    (policy,) = [p.inputs for p in deployed.of_type(NETWORK_POLICY) if p.name == "hello-world-network-policy"]
    assert policy["metadata"]["namespace"] == f"hello-world-{stack}"
    service = deployed.named(SERVICE, "hello-world-service")
    assert policy["spec"]["podSelector"] == {"matchLabels": service.inputs["spec"]["selector"]}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    (egress,) = [p.inputs["spec"] for p in deployed.of_type(NETWORK_POLICY) if p.name == "hello-world-deny-egress"]
    assert egress == {"podSelector": policy["spec"]["podSelector"], "policyTypes": ["Egress"]}


def test_prod_runs_at_least_the_original_three_replicas(deploy: Deploy) -> None:
    deployed = run_stack(deploy, "prod")

    assert deployed.one(DEPLOYMENT).inputs["spec"]["replicas"] >= 3
    assert container(deployed)["resources"]["limits"] == {"cpu": "1", "memory": "192Mi", "ephemeral-storage": "128Mi"}


def test_node_port_left_out_is_chosen_by_the_cluster(deploy: Deploy) -> None:
    config = {key: value for key, value in stack_config("staging").items() if key != "hello-world:nodePort"}

    deployed = deploy("staging", config)

    assert "nodePort" not in deployed.named(SERVICE, "hello-world-service").inputs["spec"]["ports"][0]
    assert deployed.outputs["nodePort"] == CLUSTER_CHOSEN_NODE_PORT


def test_classic_docker_builder_pushes_with_secret_credentials(deploy: Deploy) -> None:
    config = with_password(stack_config("dev"))
    build = json.loads(config["hello-world:build"])
    config["hello-world:build"] = json.dumps({**build, "builder": "docker"})

    deployed = deploy("dev", config, ("hello-world:registryPassword",))

    image = deployed.one(DOCKER_IMAGE)
    assert image.inputs["imageName"] == "127.0.0.1:5000/hello-world:dev"
    assert image.inputs["build"]["context"] == "app"
    assert image.inputs["build"]["platform"] == "linux/amd64"
    assert image.wire["registry"]["password"]["value"] == PASSWORD
    assert SECRET_SIG in image.wire["registry"]["password"].values()
    assert container(deployed)["image"] == f"127.0.0.1:5000/hello-world@{FAKE_DIGEST}"
    assert not deployed.of_type(DOCKER_BUILD_IMAGE)


def test_kubernetes_resources_use_the_stacks_cluster_provider(deploy: Deploy) -> None:
    deployed = run_stack(deploy, "dev")

    provider = deployed.one("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "/var/lib/hello-pulumi/kube/admin.kubeconfig"
    assert "context" not in provider.inputs


def test_provider_refuses_to_adopt_objects_that_already_exist(deploy: Deploy) -> None:
    deployed = run_stack(deploy, "staging")

    # Server-side apply would "upsert" an existing object into this stack; client-side create refuses it.
    assert deployed.one("pulumi:providers:kubernetes").inputs["enableServerSideApply"] == "false"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_namespace_enforces_the_restricted_pod_security_standard(deploy: Deploy, stack: str) -> None:
    labels = run_stack(deploy, stack).one(NAMESPACE).inputs["metadata"]["labels"]

    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
