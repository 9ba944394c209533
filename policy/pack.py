"""The pack's policies: each rule of :mod:`policy.rules` wrapped for the Pulumi policy engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from policy import rules
from policy.workloads import WorkloadKind

PACK_NAME = "hello-world-kubernetes"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"

MIN_REPLICAS_KEY = "minReplicas"
REQUIRE_INGRESS_TLS_KEY = "requireIngressTls"

Check = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]
"""A rule bound to its config: (resource properties, the policy's config) -> violation messages."""


def policy_name(resource_type: str, rule: str) -> str:
    """``kubernetes-<api group's first label>-<version>-<kind>-<rule>``, as in pulumi/compliance-policies."""
    _, module, kind = resource_type.split(":")
    group, version = module.split("/")
    return f"kubernetes-{group.split('.')[0]}-{version}-{kind.lower()}-{rule}"


def min_replicas(config: Mapping[str, Any]) -> int:
    """``minReplicas`` from a policy's config; the engine sends numbers as floats."""
    return int(config.get(MIN_REPLICAS_KEY, rules.DEFAULT_MIN_REPLICAS))


def require_ingress_tls(config: Mapping[str, Any]) -> bool:
    """``requireIngressTls`` from a policy's config."""
    return bool(config.get(REQUIRE_INGRESS_TLS_KEY, rules.DEFAULT_REQUIRE_INGRESS_TLS))


def _policy(
    resource_type: str,
    rule: str,
    check: Check,
    *,
    description: str,
    severity: Severity,
    config_schema: PolicyConfigSchema | None = None,
) -> ResourceValidationPolicy:
    """A policy that runs ``check`` on every resource of ``resource_type`` and reports each message."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != resource_type:
            return
        for message in check(args.props, args.get_config()):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=policy_name(resource_type, rule),
        description=description,
        validate=validate,
        severity=severity,
        config_schema=config_schema,
    )


def _workload_policies(kind: WorkloadKind) -> list[ResourceValidationPolicy]:
    """The rules of one workload kind: min replicas only where it has replicas, probes only where pods keep running."""
    name = kind.kind
    policies = [
        _policy(
            kind.resource_type,
            "image-pinned-by-digest",
            lambda props, _: rules.workload_image_pinned_by_digest(props, kind),
            description=f"{name} containers reference their image by @sha256 digest, never by a tag such as latest.",
            severity=Severity.HIGH,
        )
    ]
    if kind.has_replicas:
        policies.append(
            _policy(
                kind.resource_type,
                "min-replicas",
                lambda props, config: rules.workload_min_replicas(props, min_replicas=min_replicas(config)),
                description=f"{name}s run at least minReplicas pods (2 by default, 3 in prod).",
                severity=Severity.MEDIUM,
                config_schema=PolicyConfigSchema(
                    properties={
                        MIN_REPLICAS_KEY: {
                            "type": "integer",
                            "minimum": 1,
                            "default": rules.DEFAULT_MIN_REPLICAS,
                            "description": f"Fewest replicas a {name} may run.",
                        }
                    }
                ),
            )
        )
    if not kind.runs_to_completion:
        policies.append(
            _policy(
                kind.resource_type,
                "probes-configured",
                lambda props, _: rules.workload_probes_configured(props, kind),
                description=(
                    f"Long-running {name} containers have a readiness probe and a liveness probe that asks another "
                    "endpoint."
                ),
                severity=Severity.MEDIUM,
            )
        )
    policies += [
        _policy(
            kind.resource_type,
            "resources-configured",
            lambda props, _: rules.workload_resources_configured(props, kind),
            description=(
                f"{name} containers and init containers set CPU, memory and ephemeral-storage requests and limits."
            ),
            severity=Severity.MEDIUM,
        ),
        _policy(
            kind.resource_type,
            "restricted-security-context",
            lambda props, _: rules.workload_restricted_security_context(props, kind),
            description=(
                f"{name} pods meet every control of the Pod Security Standards' restricted profile "
                "and run with a read-only root filesystem."
            ),
            severity=Severity.HIGH,
        ),
    ]
    return policies


POLICIES: list[ResourceValidationPolicy] = [
    *(policy for kind in WorkloadKind for policy in _workload_policies(kind)),
    _policy(
        SERVICE,
        "node-port-in-range",
        lambda props, _: rules.service_node_port_in_range(props),
        description="A Service's fixed nodePort lies in the node port range 30000-32767.",
        severity=Severity.LOW,
    ),
    _policy(
        INGRESS,
        "class-set",
        lambda props, _: rules.ingress_class_set(props),
        description="Ingresses name their IngressClass (spec.ingressClassName).",
        severity=Severity.LOW,
    ),
    _policy(
        INGRESS,
        "routes-unique",
        lambda props, _: rules.ingress_routes_unique(props),
        description="Each host and path of an Ingress leads to one service, not to whichever the controller picks.",
        severity=Severity.MEDIUM,
    ),
    _policy(
        INGRESS,
        "tls-configured",
        lambda props, config: rules.ingress_tls_configured(props, require_tls=require_ingress_tls(config)),
        description=(
            "Ingresses terminate TLS for every host they route, and route no host-less rule or default backend, "
            "where requireIngressTls is set (prod)."
        ),
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            properties={
                REQUIRE_INGRESS_TLS_KEY: {
                    "type": "boolean",
                    "default": rules.DEFAULT_REQUIRE_INGRESS_TLS,
                    "description": "Whether every Ingress host must be covered by spec.tls.",
                }
            }
        ),
    ),
]
"""Every policy of the pack, in the order the engine reports them."""
