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

PACK_NAME = "hello-world-kubernetes"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"

MIN_REPLICAS_KEY = "minReplicas"
REQUIRE_INGRESS_TLS_KEY = "requireIngressTls"

Check = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]
"""A rule bound to its config: (resource properties, the policy's config) -> violation messages."""


def min_replicas(config: Mapping[str, Any]) -> int:
    """``minReplicas`` from a policy's config; the engine sends numbers as floats."""
    return int(config.get(MIN_REPLICAS_KEY, rules.DEFAULT_MIN_REPLICAS))


def require_ingress_tls(config: Mapping[str, Any]) -> bool:
    """``requireIngressTls`` from a policy's config."""
    return bool(config.get(REQUIRE_INGRESS_TLS_KEY, rules.DEFAULT_REQUIRE_INGRESS_TLS))


def _policy(
    name: str,
    resource_type: str,
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
        name=name,
        description=description,
        validate=validate,
        severity=severity,
        config_schema=config_schema,
    )


POLICIES: list[ResourceValidationPolicy] = [
    _policy(
        "kubernetes-apps-v1-deployment-image-pinned-by-digest",
        DEPLOYMENT,
        lambda props, _: rules.deployment_image_pinned_by_digest(props),
        description="Deployment containers reference their image by @sha256 digest, never by a tag such as latest.",
        severity=Severity.HIGH,
    ),
    _policy(
        "kubernetes-apps-v1-deployment-min-replicas",
        DEPLOYMENT,
        lambda props, config: rules.deployment_min_replicas(props, min_replicas=min_replicas(config)),
        description="Deployments run at least minReplicas pods (2 by default, 3 in prod).",
        severity=Severity.MEDIUM,
        config_schema=PolicyConfigSchema(
            properties={
                MIN_REPLICAS_KEY: {
                    "type": "integer",
                    "minimum": 1,
                    "default": rules.DEFAULT_MIN_REPLICAS,
                    "description": "Fewest replicas a Deployment may run.",
                }
            }
        ),
    ),
    _policy(
        "kubernetes-apps-v1-deployment-probes-configured",
        DEPLOYMENT,
        lambda props, _: rules.deployment_probes_configured(props),
        description="Deployment containers have a readiness probe and a liveness probe.",
        severity=Severity.MEDIUM,
    ),
    _policy(
        "kubernetes-apps-v1-deployment-resources-configured",
        DEPLOYMENT,
        lambda props, _: rules.deployment_resources_configured(props),
        description="Deployment containers set CPU and memory requests and limits.",
        severity=Severity.MEDIUM,
    ),
    _policy(
        "kubernetes-apps-v1-deployment-restricted-security-context",
        DEPLOYMENT,
        lambda props, _: rules.deployment_restricted_security_context(props),
        description=(
            "Deployment containers run restricted: non-root, no privilege escalation, all capabilities dropped, "
            "read-only root filesystem, RuntimeDefault seccomp profile."
        ),
        severity=Severity.HIGH,
    ),
    _policy(
        "kubernetes-core-v1-service-node-port-in-range",
        SERVICE,
        lambda props, _: rules.service_node_port_in_range(props),
        description="A Service's fixed nodePort lies in the node port range 30000-32767.",
        severity=Severity.LOW,
    ),
    _policy(
        "kubernetes-networking-v1-ingress-class-set",
        INGRESS,
        lambda props, _: rules.ingress_class_set(props),
        description="Ingresses name their IngressClass (spec.ingressClassName).",
        severity=Severity.LOW,
    ),
    _policy(
        "kubernetes-networking-v1-ingress-tls-configured",
        INGRESS,
        lambda props, config: rules.ingress_tls_configured(props, require_tls=require_ingress_tls(config)),
        description="Ingresses terminate TLS for every host they route, where requireIngressTls is set (prod).",
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
