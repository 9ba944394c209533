"""The policy pack as the engine runs it: names, config files, and every stack's real resources."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]  # no types-grpcio in requirements.txt
import pytest
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

from policy.pack import INGRESS, PACK_NAME, POLICIES, SERVICE, policy_name
from policy.workloads import WorkloadKind
from tests.conftest import ROOT, Deploy, Registered, stack_config, with_password
from tests.unit.policy.manifests import container, template, workload

POLICY_DIR = ROOT / "policy"
DEPLOYMENT = WorkloadKind.DEPLOYMENT.resource_type
CHECKED_TYPES = {*(kind.resource_type for kind in WorkloadKind), SERVICE, INGRESS}
KINDS = list(WorkloadKind)
KIND_IDS = [kind.kind for kind in WorkloadKind]
STACKS = ("dev", "staging", "prod")
BY_NAME = {policy.name: policy for policy in POLICIES}
# kubernetes-<api group's first label>-<version>-<kind>-<rule>, as in pulumi/compliance-policies.
POLICY_NAME = re.compile(r"^kubernetes-[a-z]+-v[0-9]+(alpha[0-9]+|beta[0-9]+)?-[a-z]+-[a-z0-9]+(-[a-z0-9]+)*$")
EXPECTED_LEVEL = {"dev": "advisory", "staging": "mandatory", "prod": "mandatory"}
EXPECTED_SETTINGS = {"dev": (2, False), "staging": (2, False), "prod": (3, True)}


def pack_config(stack: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((POLICY_DIR / "config" / f"{stack}.json").read_text())
    return loaded


def engine_config(stack: str) -> dict[str, dict[str, Any]]:
    """Each policy's config as the engine hands it over: schema defaults, then the file's values, numbers as floats."""
    given = pack_config(stack)
    result = {}
    for policy in POLICIES:
        schema = policy.config_schema.properties if policy.config_schema else {}
        values = {key: spec["default"] for key, spec in schema.items() if "default" in spec}
        if isinstance(entry := given.get(policy.name), dict):
            values.update({key: value for key, value in entry.items() if key != "enforcementLevel"})
        result[policy.name] = as_engine_sends(values)
    return result


def as_engine_sends(values: Mapping[str, Any]) -> dict[str, Any]:
    """Properties after the protobuf Struct round trip: every number becomes a float."""
    struct = struct_pb2.Struct()
    struct.update(values)
    sent: dict[str, Any] = json_format.MessageToDict(struct)
    return sent


def violations(resource: Registered, config: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """What each policy of the pack reports for ``resource``, run through the SDK's own wrappers."""
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    found: dict[str, list[str]] = {}
    for policy in POLICIES:
        args = ResourceValidationArgs(
            resource.type,
            unknown_checking_proxy(as_engine_sends(resource.inputs)),
            f"urn:pulumi:test::hello-world::{resource.type}::{resource.name}",
            resource.name,
            options,
            None,
            config[policy.name],
        )
        if reported := run_policy(policy, args):
            found[policy.name] = reported
    return found


def run_policy(policy: ResourceValidationPolicy, args: ResourceValidationArgs) -> list[str]:
    reported: list[str] = []
    policy.validate(args, lambda message, _urn: reported.append(message))
    return reported


def run_stack(deploy: Deploy, stack: str) -> list[Registered]:
    config = stack_config(stack)
    if "hello-world:build" in config:
        return deploy(stack, with_password(config), ("hello-world:registryPassword",)).resources
    return deploy(stack, config).resources


def test_policy_names_are_unique_and_follow_the_compliance_naming() -> None:
    names = [policy.name for policy in POLICIES]

    assert len(names) == len(set(names))
    for name in names:
        assert POLICY_NAME.match(name), name
    assert {name.split("-v1-")[0] for name in names} == {
        "kubernetes-apps",
        "kubernetes-batch",
        "kubernetes-core",
        "kubernetes-networking",
    }
    # Named in stack config files, the engine tests and the review recordings.
    assert {
        "kubernetes-apps-v1-deployment-min-replicas",
        "kubernetes-core-v1-service-node-port-in-range",
        "kubernetes-networking-v1-ingress-class-set",
        "kubernetes-networking-v1-ingress-routes-unique",
        "kubernetes-networking-v1-ingress-tls-configured",
    } <= set(names)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_every_workload_kind_has_the_rules_that_make_sense_for_it(kind: WorkloadKind) -> None:
    prefix = policy_name(kind.resource_type, "")
    found = {name.removeprefix(prefix) for name in BY_NAME if name.startswith(prefix)}

    expected = {"image-pinned-by-digest", "resources-configured", "restricted-security-context"}
    if kind.has_replicas:
        expected.add("min-replicas")
    if not kind.runs_to_completion:
        expected.add("probes-configured")
    assert found == expected


@pytest.mark.parametrize(
    ("resource_type", "name"),
    [
        ("kubernetes:batch/v1:CronJob", "kubernetes-batch-v1-cronjob-rule"),
        ("kubernetes:core/v1:ReplicationController", "kubernetes-core-v1-replicationcontroller-rule"),
        ("kubernetes:networking.k8s.io/v1:Ingress", "kubernetes-networking-v1-ingress-rule"),
    ],
    ids=["batch", "core", "dotted-group"],
)
def test_policy_name_is_derived_from_the_resource_type(resource_type: str, name: str) -> None:
    assert policy_name(resource_type, "rule") == name


def test_every_policy_has_a_description_and_severity() -> None:
    for policy in POLICIES:
        assert policy.description.endswith("."), policy.name
        assert policy.severity is not None, policy.name


@pytest.mark.parametrize("stack", STACKS)
def test_config_file_names_only_known_policies_and_declared_settings(stack: str) -> None:
    config = pack_config(stack)

    assert config["all"] == EXPECTED_LEVEL[stack]
    for name, entry in config.items():
        if name == "all":
            continue
        policy = BY_NAME[name]
        assert policy.config_schema is not None, f"{name} takes no settings"
        schema = policy.config_schema.properties
        for key, value in entry.items():
            expected = {"integer": int, "boolean": bool}[schema[key]["type"]]
            assert type(value) is expected, f"{name}.{key} must be {schema[key]['type']}, got {value!r}"


@pytest.mark.parametrize("stack", STACKS)
def test_config_file_sets_the_stacks_replicas_floor_and_tls_requirement(stack: str) -> None:
    config = engine_config(stack)

    floors = {name: entry["minReplicas"] for name, entry in config.items() if name.endswith("-min-replicas")}
    tls = config["kubernetes-networking-v1-ingress-tls-configured"]["requireIngressTls"]
    assert set(pack_config(stack)) >= set(floors), "every replicas floor is set in the file, not left to the default"
    assert set(floors.values()) == {EXPECTED_SETTINGS[stack][0]}
    assert tls == EXPECTED_SETTINGS[stack][1]


@pytest.mark.parametrize("stack", STACKS)
def test_stack_resources_pass_every_policy_under_the_stacks_config(deploy: Deploy, stack: str) -> None:
    resources = run_stack(deploy, stack)
    config = engine_config(stack)

    checked = [r for r in resources if r.type in CHECKED_TYPES]
    assert {r.type for r in checked} >= {DEPLOYMENT, SERVICE}
    assert {r.name: violations(r, config) for r in checked} == {r.name: {} for r in checked}


def prod_with_services(deploy: Deploy, *services: dict[str, str]) -> list[Registered]:
    return deploy("prod", {**stack_config("prod"), "hello-world:services": json.dumps(list(services))}).resources


def test_prod_with_further_services_passes_every_policy_under_prods_config(deploy: Deploy) -> None:
    resources = prod_with_services(
        deploy,
        {"name": "hello-v2", "message": "Hello World v2", "path": "/v2"},
        {"name": "beta", "host": "b.example.com"},
    )
    config = engine_config("prod")

    checked = [r for r in resources if r.type in CHECKED_TYPES]
    assert len([r for r in checked if r.type == DEPLOYMENT]) == 3
    assert {r.name: violations(r, config) for r in checked} == {r.name: {} for r in checked}


def test_a_further_service_below_prods_replicas_floor_is_reported_on_its_own_deployment(deploy: Deploy) -> None:
    resources = prod_with_services(deploy, {"name": "hello-v2", "path": "/v2", "replicas": "1"})

    found = {r.name: violations(r, engine_config("prod")) for r in resources if r.type == DEPLOYMENT}
    assert found["hello-world-deployment"] == {}
    assert list(found["hello-world-hello-v2-deployment"]) == ["kubernetes-apps-v1-deployment-min-replicas"]


def test_dev_resources_fall_short_of_the_prod_replicas_floor(deploy: Deploy) -> None:
    resources = run_stack(deploy, "dev")

    (deployment,) = [r for r in resources if r.type == DEPLOYMENT]
    assert violations(deployment, engine_config("prod")) == {
        "kubernetes-apps-v1-deployment-min-replicas": [
            "spec.replicas is 2, expected at least 3: "
            "set the stack's replicas to 3 or more (Pulumi.<stack>.yaml, hello-world:replicas)"
        ]
    }


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_the_programs_pod_passes_every_policy_in_every_workload_kind(kind: WorkloadKind) -> None:
    resource = Registered(type=kind.resource_type, name="hello-world", inputs=workload(kind, replicas=3), wire={})

    assert violations(resource, engine_config("prod")) == {}


@pytest.mark.parametrize(
    ("kind", "policy"),
    [
        (WorkloadKind.POD, "kubernetes-core-v1-pod-restricted-security-context"),
        (WorkloadKind.STATEFUL_SET, "kubernetes-apps-v1-statefulset-restricted-security-context"),
        (WorkloadKind.CRON_JOB, "kubernetes-batch-v1-cronjob-restricted-security-context"),
    ],
    ids=["Pod", "StatefulSet", "CronJob"],
)
def test_policy_reports_a_violation_under_the_workloads_own_kind(kind: WorkloadKind, policy: str) -> None:
    pod = template(container(ports=[{"name": "http", "containerPort": 8080, "hostPort": 8080}]))
    resource = Registered(type=kind.resource_type, name="hello-world", inputs=workload(kind, pod, replicas=3), wire={})

    assert violations(resource, engine_config("prod")) == {
        policy: [
            "container 'hello-world' port 'http' sets hostPort 8080, which binds a port on the node: "
            "remove it and reach the pod through a Service"
        ]
    }


def test_policy_ignores_resources_of_other_types() -> None:
    namespace = Registered(type="kubernetes:core/v1:Namespace", name="ns", inputs={"spec": {}}, wire={})

    assert violations(namespace, engine_config("prod")) == {}


def test_pulumi_policy_yaml_runs_python_in_the_projects_venv() -> None:
    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())

    assert project["runtime"]["name"] == "python"
    # Lexically, not resolved: a checkout's .venv may be a link to another's (a git worktree's).
    venv = Path(os.path.normpath(POLICY_DIR / project["runtime"]["options"]["virtualenv"]))
    assert venv == ROOT / ".venv"


@pytest.fixture
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack started as the language host starts it (`python policy/`), connected over gRPC."""
    process = subprocess.Popen(
        [sys.executable, "-u", str(POLICY_DIR)],
        cwd=Path("/"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.isdigit(), f"the pack printed no port: {port!r} {process.stderr.read() if process.stderr else ''}"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.kill()
        process.wait()


def test_pack_serves_every_policy_and_its_config_schema_to_the_engine(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())

    assert info.name == PACK_NAME
    assert [p.name for p in info.policies] == [p.name for p in POLICIES]
    schema = {p.name: json_format.MessageToDict(p.configSchema) for p in info.policies if p.configSchema.properties}
    assert schema["kubernetes-apps-v1-deployment-min-replicas"]["properties"]["minReplicas"]["default"] == 2
    assert schema["kubernetes-networking-v1-ingress-tls-configured"]["properties"]["requireIngressTls"] == {
        "type": "boolean",
        "default": False,
        "description": "Whether every Ingress host must be covered by spec.tls.",
    }


def test_pack_reports_a_mandatory_violation_under_prod_config(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    policy_config = {}
    for name, values in engine_config("prod").items():
        properties = struct_pb2.Struct()
        properties.update(values)
        policy_config[name] = analyzer_pb2.PolicyConfig(
            enforcementLevel=analyzer_pb2.MANDATORY,
            properties=properties,
        )
    analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=policy_config))
    props = struct_pb2.Struct()
    props.update({"spec": {"replicas": 2, "template": {"spec": {"containers": []}}}})

    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type=DEPLOYMENT, properties=props, urn="urn:pulumi:prod::hello-world::x::d", name="d"
        )
    )

    assert [(d.policyName, d.enforcementLevel, d.message) for d in response.diagnostics] == [
        (
            "kubernetes-apps-v1-deployment-min-replicas",
            analyzer_pb2.MANDATORY,
            # The SDK shows the policy's description above the rule's message.
            "Deployments run at least minReplicas pods (2 by default, 3 in prod).\n"
            "spec.replicas is 2, expected at least 3: "
            "set the stack's replicas to 3 or more (Pulumi.<stack>.yaml, hello-world:replicas)",
        )
    ]
