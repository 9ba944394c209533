"""The Ingress in front of a stack's services: its settings, its routes, and the one Ingress object they make."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

DEFAULT_INGRESS_PATH = "/"
REDIRECT_ANNOTATIONS = {"traefik.ingress.kubernetes.io/router.middlewares": "https-redirect@file"}
"""Asks the local platform's Traefik for its ``https-redirect`` middleware (tooling/platform/ingress.sh)."""


@dataclass(frozen=True, kw_only=True)
class IngressArgs:
    """Routes ``http(s)://host/path`` to the Service."""

    host: str
    """Host name to route."""
    path: str = DEFAULT_INGRESS_PATH
    """Path prefix. Default ``/``."""
    class_name: str | None = None
    """IngressClass; default: the cluster's default class."""
    tls_secret_name: str | None = None
    """Secret with the certificate for ``host`` and every further service's host; default: no TLS."""
    controller_certificate: bool = False
    """TLS for ``host`` with the ingress controller's default certificate (a ``tls`` entry without a Secret);
    default ``False``."""
    redirect_to_https: bool = False
    """Plain HTTP answers with a redirect to HTTPS (the local platform's Traefik middleware); default ``False``."""

    def __post_init__(self) -> None:
        if self.controller_certificate and self.tls_secret_name:
            raise ValueError("controller_certificate must be False when tls_secret_name is set, got True")
        if self.redirect_to_https and not self.has_tls:
            raise ValueError(
                "redirect_to_https must be False without TLS (tls_secret_name or controller_certificate), got True"
            )

    @property
    def has_tls(self) -> bool:
        """Whether ``host`` is served over TLS."""
        return bool(self.tls_secret_name) or self.controller_certificate

    @property
    def url(self) -> str:
        """The main service's URL through the Ingress."""
        return self.url_for(self.host, self.path)

    def url_for(self, host: str, path: str) -> str:
        """The URL of ``host`` and ``path`` through this Ingress: HTTPS where it terminates TLS (for every host)."""
        scheme = "https" if self.has_tls else "http"
        return f"{scheme}://{host}{path}"


@dataclass(frozen=True, kw_only=True)
class RoutedServiceArgs:
    """A further service beside the main one: the same image, with a Deployment and a ClusterIP Service of its own,
    reached only through the main service's Ingress (it has no node port)."""

    name: str
    """Names its Deployment, Service and ``app.kubernetes.io/name``: a DNS label of at most 49 characters, so that
    the names of its objects (``<name>-verify-target``) fit one too."""
    path: str = DEFAULT_INGRESS_PATH
    """Path prefix the Ingress routes to it. Default ``/``."""
    host: str | None = None
    """Host name the Ingress routes to it. Default: the Ingress's ``host``."""
    message: str | None = None
    """What its pods answer (the app's ``MESSAGE``), which its check expects too. Default: the app's own answer,
    checked like the main service's."""
    replicas: int | None = None
    """Pod count. Default: the main service's."""


@dataclass(frozen=True)
class Route:
    """A host and path prefix of the Ingress, and the service that answers there."""

    host: str
    path: str
    service: str
    """The Kubernetes name of the Service."""

    @property
    def prefix(self) -> str:
        """The path as a Prefix match reads it: ``/v2`` and ``/v2/`` match the same requests."""
        return self.path.rstrip("/") or "/"


def routed_ingress(
    name: str,
    ingress: IngressArgs,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    routes: Sequence[Route],
    services: Sequence[k8s.core.v1.Service],
    parent: pulumi.Resource,
    port: int,
) -> k8s.networking.v1.Ingress:
    """The one Ingress of the stack: a rule per host, a Prefix path per route, one TLS entry for every host."""
    by_name = {route.service: service for route, service in zip(routes, services, strict=True)}
    hosts = list(dict.fromkeys(route.host for route in routes))
    rules = [
        k8s.networking.v1.IngressRuleArgs(
            host=host,
            http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                paths=[
                    k8s.networking.v1.HTTPIngressPathArgs(
                        path=route.path, path_type="Prefix", backend=_backend(by_name[route.service], port)
                    )
                    for route in routes
                    if route.host == host
                ]
            ),
        )
        for host in hosts
    ]
    return k8s.networking.v1.Ingress(
        f"{name}-ingress",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=metadata.name,
            namespace=metadata.namespace,
            labels=metadata.labels,
            # Pulumi would otherwise wait for a load balancer address that only an
            # ingress controller assigns; local and NodePort clusters have none.
            annotations={"pulumi.com/skipAwait": "true", **(REDIRECT_ANNOTATIONS if ingress.redirect_to_https else {})},
        ),
        spec=k8s.networking.v1.IngressSpecArgs(
            ingress_class_name=ingress.class_name,
            rules=rules,
            # No secret_name with the controller's certificate: the controller serves every host with its default one.
            tls=(
                [k8s.networking.v1.IngressTLSArgs(hosts=hosts, secret_name=ingress.tls_secret_name)]
                if ingress.has_tls
                else None
            ),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(services)),
    )


def _backend(service: k8s.core.v1.Service, port: int) -> k8s.networking.v1.IngressBackendArgs:
    return k8s.networking.v1.IngressBackendArgs(
        service=k8s.networking.v1.IngressServiceBackendArgs(
            name=service.metadata.name,
            port=k8s.networking.v1.ServiceBackendPortArgs(number=port),
        )
    )
