"""Stack settings: parsing, defaults, and every error message a wrong setting produces."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components import Builder
from components.verification import DEFAULT_CHECKER_IMAGE
from settings.clashes import node_port_clashes
from settings.load import SettingsError, parse_settings
from settings.local_platform import LOCAL_KUBECONFIG
from settings.stack_files import read_stack_files
from tests.conftest import ROOT, Deploy

DIGEST = "sha256:" + "0123456789abcdef" * 4
PINNED = f"registry.example.com/team/hello-world@{DIGEST}"
BUILD = {"registry": "127.0.0.1:5000", "username": "hello"}
INGRESS = {"enabled": True, "host": "a.example.com"}


def building(**extra: Any) -> dict[str, Any]:
    return {"build": json.dumps(BUILD), "registryPassword": "pw", **extra}


def problems_of(raw: dict[str, Any], secret_keys: frozenset[str] = frozenset({"registryPassword"})) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        parse_settings(raw, stack="dev", secret_keys=secret_keys)
    return raised.value.problems


def test_settings_defaults_for_a_promoted_image() -> None:
    settings = parse_settings({"image": PINNED}, stack="qa")

    assert settings.namespace == "hello-world-qa"
    assert settings.replicas == 3
    assert settings.node_port is None
    assert str(settings.image) == PINNED
    assert settings.build is None
    assert settings.ingress is None
    assert settings.cluster.kubeconfig == LOCAL_KUBECONFIG
    assert settings.cluster.context is None
    assert settings.rollout_timeout_seconds == 300


def test_settings_build_defaults() -> None:
    settings = parse_settings(building(), stack="dev", secret_keys=frozenset({"registryPassword"}))

    assert settings.build is not None
    assert settings.build.builder is Builder.DOCKER_BUILD
    assert settings.build.repository == "hello-world"
    assert settings.build.context == "app"
    assert settings.build.platform == "linux/amd64"
    assert settings.build.build_on_preview is False
    assert settings.build.base_image is None
    assert settings.registry_password == "pw"


def test_settings_password_never_shows_in_a_repr() -> None:
    settings = parse_settings(building(), stack="dev", secret_keys=frozenset({"registryPassword"}))

    assert "'pw'" not in repr(settings)


def test_settings_read_every_key() -> None:
    raw = {
        "namespace": "team-a",
        "replicas": "5",
        "nodePort": "30080",
        "rolloutTimeoutSeconds": "60",
        "build": json.dumps(
            {
                **BUILD,
                "repository": "apps/hello",
                "builder": "docker-build",
                "context": "other",
                "baseImage": "node:24",
                "platform": "linux/arm64",
                "buildOnPreview": True,
            }
        ),
        "registryPassword": "pw",
        "resources": json.dumps({"cpuRequest": "10m", "memoryRequest": "32Mi", "cpuLimit": "1", "memoryLimit": "1Gi"}),
        "ingress": json.dumps(
            {"enabled": "true", "host": "a.example.com", "path": "/x", "className": "nginx", "tlsSecretName": "tls"}
        ),
        "cluster": json.dumps({"kubeconfig": "~/.kube/config", "context": "prod"}),
    }

    settings = parse_settings(raw, stack="dev", secret_keys=frozenset({"registryPassword"}))

    assert (settings.namespace, settings.replicas, settings.node_port) == ("team-a", 5, 30080)
    assert settings.rollout_timeout_seconds == 60
    assert settings.build is not None
    assert settings.build.builder is Builder.DOCKER_BUILD
    assert (settings.build.repository, settings.build.context) == ("apps/hello", "other")
    assert (settings.build.base_image, settings.build.platform) == ("node:24", "linux/arm64")
    assert settings.build.build_on_preview is True
    assert settings.resources.memory_limit == "1Gi"
    assert settings.ingress is not None
    assert settings.ingress.url == "https://a.example.com/x"
    assert (settings.cluster.kubeconfig, settings.cluster.context) == ("~/.kube/config", "prod")


def test_settings_ingress_with_the_controller_certificate_is_https() -> None:
    ingress = INGRESS | {"controllerCertificate": "true", "redirectToHttps": "true"}

    settings = parse_settings({"image": PINNED, "ingress": json.dumps(ingress)}, stack="s")

    assert settings.ingress is not None
    assert (settings.ingress.controller_certificate, settings.ingress.redirect_to_https) == (True, True)
    assert settings.ingress.url == "https://a.example.com/"


def test_settings_ingress_disabled_is_none() -> None:
    settings = parse_settings({"image": PINNED, "ingress": json.dumps({"enabled": False, "host": "a.b"})}, stack="s")

    assert settings.ingress is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"image": PINNED, "nodePort": "99999"}, "nodePort must be an integer from 30000 to 32767, got '99999'"),
        ({"image": PINNED, "nodePort": "80"}, "nodePort must be an integer from 30000 to 32767, got '80'"),
        ({"image": PINNED, "replicas": "0"}, "replicas must be an integer from 1 to 50, got '0'"),
        ({"image": PINNED, "replicas": "three"}, "replicas must be an integer from 1 to 50, got 'three'"),
        (
            {"image": PINNED, "replica": "3"},
            "replica is not a known setting: expected one of build, cluster, image, imagePull, imagePullPassword, "
            "ingress, namespace, nodePort, promotion, registryPassword, replicas, resources, rolloutTimeoutSeconds, "
            "services, verification, got 'replica' "
            "(did you mean 'replicas'?)",
        ),
        (
            {"image": PINNED, "ingress": json.dumps({"enabled": True})},
            "ingress.host must be a DNS host name when ingress.enabled is true, got nothing",
        ),
        (
            {"image": PINNED, "ingress": json.dumps({"enabled": True, "host": "a.example.com", "hots": "b"})},
            "ingress.hots is not a known setting: expected one of className, controllerCertificate, enabled, host, "
            "path, redirectToHttps, tlsSecretName, got 'hots' (did you mean 'ingress.host'?)",
        ),
        (
            {"image": PINNED, "ingress": json.dumps(INGRESS | {"tlsSecretName": "t", "controllerCertificate": True})},
            "ingress.controllerCertificate must be false when ingress.tlsSecretName names the certificate, got True",
        ),
        (
            {"image": PINNED, "ingress": json.dumps(INGRESS | {"redirectToHttps": True})},
            "ingress.redirectToHttps must be false unless the host has TLS (ingress.tlsSecretName or "
            "ingress.controllerCertificate), got True",
        ),
        (
            {"image": f"hello-world@{DIGEST}"},
            f"image must be <registry>/<repository>@sha256:<64 hex digits> (no registry host), "
            f"got 'hello-world@{DIGEST}'",
        ),
        (
            {"image": "registry.example.com/hello-world:v2"},
            "image must be <registry>/<repository>@sha256:<64 hex digits> (not pinned by a sha256 digest), "
            "got 'registry.example.com/hello-world:v2'",
        ),
        (
            {},
            "image or build must be set: expected a pinned image reference or a build section, got neither",
        ),
        (
            {**building(), "image": PINNED},
            "image and build are exclusive: expected image (deploy a pinned image) or build (build app/), got both",
        ),
        (
            {"build": json.dumps(BUILD)},
            "registryPassword must be set with `pulumi config set --secret registryPassword <password>` "
            "when building, got nothing",
        ),
        (
            building(build=json.dumps({**BUILD, "builder": "kaniko"})),
            "build.builder must be one of docker, docker-build, got 'kaniko'",
        ),
        (
            building(build=json.dumps({"username": "hello"})),
            "build.registry must be a registry host[:port] to push to, got nothing",
        ),
        (
            building(build=json.dumps({"registry": "127.0.0.1:5000"})),
            "build.username must be the registry user, got nothing",
        ),
        (
            building(build=json.dumps({**BUILD, "platform": "windows/amd64"})),
            "build.platform must be linux/amd64 or linux/arm64, got 'windows/amd64'",
        ),
        (
            building(build=json.dumps({**BUILD, "buildOnPreview": "sometimes"})),
            "build.buildOnPreview must be true or false, got 'sometimes'",
        ),
        (
            {"image": PINNED, "registryPassword": "pw"},
            "registryPassword is only used with build: expected no registryPassword, got one without a build section",
        ),
        (
            {"image": PINNED, "namespace": "Hello_World"},
            "namespace must be a DNS-1123 label (lowercase letters, digits, '-', at most 63), got 'Hello_World'",
        ),
        (
            {"image": PINNED, "resources": json.dumps({"cpuLimit": "lots"})},
            "resources.cpuLimit must be a Kubernetes quantity such as 100m or 128Mi, got 'lots'",
        ),
        (
            {"image": PINNED, "rolloutTimeoutSeconds": "5"},
            "rolloutTimeoutSeconds must be an integer from 15 to 3600, got '5'",
        ),
        ({"image": PINNED, "cluster": "[]"}, "cluster must be an object, got '[]'"),
        (
            {"image": PINNED, "cluster": json.dumps({"kubeconfig": "k", "namespace": "x"})},
            "cluster.namespace is not a known setting: expected one of context, createNamespace, kubeconfig, renderTo, "
            "got 'namespace' (did you mean 'cluster.createNamespace'?)",
        ),
    ],
    ids=[
        "node-port-too-high",
        "node-port-too-low",
        "zero-replicas",
        "replicas-not-a-number",
        "unknown-key-typo",
        "ingress-without-host",
        "unknown-nested-key",
        "two-certificates",
        "redirect-without-tls",
        "image-without-registry",
        "image-by-tag",
        "neither-image-nor-build",
        "both-image-and-build",
        "build-without-password",
        "unknown-builder",
        "build-without-registry",
        "build-without-username",
        "unsupported-platform",
        "bad-boolean",
        "password-without-build",
        "bad-namespace",
        "bad-quantity",
        "rollout-timeout-too-short",
        "cluster-not-an-object",
        "unknown-cluster-key",
    ],
)
def test_settings_error_names_key_expectation_and_value(raw: dict[str, Any], message: str) -> None:
    assert problems_of(raw) == [message]


def test_settings_plaintext_password_is_refused_without_echoing_it() -> None:
    problems = problems_of(building(registryPassword="hunter2-plain"), secret_keys=frozenset())

    assert problems == [
        "registryPassword must be a secret (pulumi config set --secret registryPassword ...), got a plaintext value"
    ]
    assert "hunter2-plain" not in str(problems)


def test_settings_error_lists_every_problem_at_once() -> None:
    with pytest.raises(SettingsError, match=re.escape("stack 'dev' has 3 problems in its settings:\n  - ")) as raised:
        parse_settings({"image": PINNED, "nodePort": "99999", "replicas": "0", "replica": "2"}, stack="dev")

    assert [p.split(" ")[0] for p in raised.value.problems] == ["replica", "replicas", "nodePort"]


def test_bad_setting_stops_the_program_before_any_resource(deploy: Deploy) -> None:
    with pytest.raises(SettingsError, match="nodePort must be an integer from 30000 to 32767, got '99999'"):
        deploy("staging", {"hello-world:image": PINNED, "hello-world:nodePort": "99999"})

    assert deploy.registered == []


def test_good_settings_register_resources_through_the_same_harness(deploy: Deploy) -> None:
    deploy("staging", {"hello-world:image": PINNED})

    assert len(deploy.registered) > 0


LOCAL = {"kubeconfig": "/var/lib/hello-pulumi/kube/admin.kubeconfig"}


def staging_on(node_port: int, cluster: dict[str, str] | None = None) -> Any:
    raw: dict[str, Any] = {"image": PINNED, "nodePort": str(node_port)}
    if cluster is not None:
        raw["cluster"] = json.dumps(cluster)
    return parse_settings(raw, stack="staging")


def test_node_port_clash_with_another_stack_on_the_same_cluster_names_both() -> None:
    clashes = node_port_clashes(staging_on(31611), {"dev": {"nodePort": 31611}, "prod": {"nodePort": 31613}})

    assert clashes == [
        "nodePort must be unique among the stacks of one cluster, got 31611, which stack 'dev' also claims "
        "on the same cluster (kubeconfig /var/lib/hello-pulumi/kube/admin.kubeconfig, context current)"
    ]


def test_node_port_without_clash_passes() -> None:
    assert node_port_clashes(staging_on(31612), {"dev": {"nodePort": 31611}, "staging": {"nodePort": 31612}}) == []


@pytest.mark.parametrize(
    "other_cluster",
    [{**LOCAL, "context": "other"}, {"kubeconfig": "/etc/other.kubeconfig"}],
    ids=["other-context", "other-kubeconfig"],
)
def test_same_node_port_on_different_clusters_passes(other_cluster: dict[str, str]) -> None:
    others = {"dev": {"nodePort": 31611, "cluster": other_cluster}}

    assert node_port_clashes(staging_on(31611, LOCAL), others) == []


def test_node_port_left_to_the_cluster_never_clashes() -> None:
    settings = parse_settings({"image": PINNED}, stack="staging")

    assert node_port_clashes(settings, {"dev": {"nodePort": 31611}}) == []


def test_project_stack_files_claim_distinct_node_ports() -> None:
    stacks = read_stack_files(ROOT)

    assert set(stacks) == {"dev", "staging", "prod"}
    assert sorted(int(raw["nodePort"]) for raw in stacks.values()) == [31611, 31612, 31613]


def test_new_stack_claiming_devs_node_port_stops_before_any_resource(deploy: Deploy) -> None:
    with pytest.raises(SettingsError, match="got 31611, which stack 'dev' also claims on the same cluster"):
        deploy("qa", {"hello-world:image": PINNED, "hello-world:nodePort": "31611"})

    assert deploy.registered == []


def test_settings_verification_defaults_to_hello_world_on_the_root_path() -> None:
    check = parse_settings({"image": PINNED}, stack="qa").verification

    assert (check.path, check.status, check.body) == ("/", 200, "Hello World")
    assert check.checker_image == DEFAULT_CHECKER_IMAGE


@pytest.mark.parametrize(
    ("verification", "message"),
    [
        ({"path": "health"}, "verification.path must be a path starting with '/', got 'health'"),
        ({"status": "2000"}, "verification.status must be an integer from 100 to 599, got '2000'"),
        ({"body": ""}, "verification.body must be non-empty text, got ''"),
        (
            {"checkerImage": "node:24-bookworm-slim"},
            "verification.checkerImage must be <registry>/<repository>@sha256:<64 hex digits> "
            "(not pinned by a sha256 digest), got 'node:24-bookworm-slim'",
        ),
        (
            {"checkerImage": "node@sha256:" + "a" * 64},
            "verification.checkerImage must be <registry>/<repository>@sha256:<64 hex digits> "
            f"(no registry host), got 'node@sha256:{'a' * 64}'",
        ),
        (
            {"bdy": "x"},
            "verification.bdy is not a known setting: expected one of body, checkerImage, path, status, got 'bdy' "
            "(did you mean 'verification.body'?)",
        ),
    ],
    ids=[
        "relative-path",
        "status-out-of-range",
        "empty-body",
        "tagged-checker",
        "checker-without-registry",
        "unknown-key",
    ],
)
def test_settings_verification_errors_name_key_expectation_and_value(
    verification: dict[str, str], message: str
) -> None:
    assert problems_of({"image": PINNED, "verification": json.dumps(verification)}) == [message]


def test_settings_promotion_record_keeps_why_verification_was_skipped() -> None:
    record = {"from": "dev", "digest": DIGEST, "skippedVerification": "hotfix, verified by hand"}

    settings = parse_settings({"image": PINNED, "promotion": json.dumps(record)}, stack="staging")

    assert settings.promotion is not None
    assert settings.promotion.skipped_verification == "hotfix, verified by hand"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"image": PINNED, "replicas": "05"}, "replicas must be an integer from 1 to 50, got '05'"),
        ({"image": PINNED, "replicas": "5.0"}, "replicas must be an integer from 1 to 50, got '5.0'"),
        ({"image": PINNED, "replicas": "1_0"}, "replicas must be an integer from 1 to 50, got '1_0'"),
        (
            {"image": PINNED, "verification": json.dumps({"status": True})},
            "verification.status must be an integer from 100 to 599, got True",
        ),
        (
            building(build=json.dumps({**BUILD, "buildOnPreview": "yes"})),
            "build.buildOnPreview must be true or false, got 'yes'",
        ),
        (
            {"image": PINNED, "ingress": json.dumps({"enabled": 1, "host": "a.example.com"})},
            "ingress.enabled must be true or false, got 1",
        ),
    ],
    ids=["leading-zero", "decimal-point", "underscore", "boolean-for-a-number", "yes-for-true", "number-for-a-boolean"],
)
def test_settings_numbers_and_booleans_must_be_written_plainly(raw: dict[str, Any], message: str) -> None:
    assert problems_of(raw) == [message]


def test_settings_plain_numbers_and_booleans_are_read() -> None:
    raw = {"image": PINNED, "replicas": " 7", "ingress": json.dumps({"enabled": "True", "host": "a.example.com"})}

    settings = parse_settings(raw, stack="qa")

    assert settings.replicas == 7
    assert settings.ingress is not None
