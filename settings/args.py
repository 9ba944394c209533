"""Turns a stack's settings into the inputs of the components and of the Kubernetes provider."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import (
    ContainerImageArgs,
    IngressArgs,
    PullSecretArgs,
    RegistryArgs,
    ResourcesArgs,
    RoutedServiceArgs,
    VerificationArgs,
    WebServiceArgs,
)
from settings import PROJECT
from settings.model import StackSettings


def image_args(settings: StackSettings) -> ContainerImageArgs | None:
    """The :class:`ContainerImage` inputs of a stack that builds; the password stays a Pulumi secret."""
    build = settings.build
    if build is None:
        return None
    password = pulumi.Output.secret(settings.registry_password)
    return build.as_args(
        ContainerImageArgs,
        context=Path(build.context),
        registry=RegistryArgs(address=build.registry, username=build.username, password=password),
        tag=settings.stack,
        build_args={"BASE_IMAGE": build.base_image} if build.base_image else {},
    )


def web_service_args(settings: StackSettings, image: pulumi.Input[str]) -> WebServiceArgs:
    """The :class:`WebService` inputs of the stack, running ``image``."""
    return settings.as_args(
        WebServiceArgs,
        name=PROJECT,
        instance=settings.stack,
        image=image,
        resources=settings.resources.as_args(ResourcesArgs),
        ingress=ingress_args(settings),
        verification=settings.verification.as_args(VerificationArgs),
        image_pull=pull_secret_args(settings),
        create_namespace=settings.cluster.create_namespace,
        services=service_args(settings),
    )


def ingress_args(settings: StackSettings) -> IngressArgs | None:
    """The Ingress's inputs, when the stack has one."""
    return settings.ingress.as_args(IngressArgs) if settings.ingress else None


def service_args(settings: StackSettings) -> tuple[RoutedServiceArgs, ...]:
    """The further services' inputs, in the order the stack declares them."""
    return tuple(service.as_args(RoutedServiceArgs) for service in settings.services)


def pull_secret_args(settings: StackSettings) -> PullSecretArgs | None:
    """The image pull secret's inputs, for the registry the stack's image comes from; the password stays a secret.

    A stack that renders manifests has no password (a render gets no secrets): its pods reference the
    Secret, which is then made outside the stack.
    """
    if settings.image_pull is None:
        return None
    image_registry = settings.image.registry if settings.image is not None else None
    registry = image_registry or (settings.build.registry if settings.build is not None else "")
    password = None if settings.image_pull_password is None else pulumi.Output.secret(settings.image_pull_password)
    return PullSecretArgs(registry=registry, username=settings.image_pull.username, password=password)


def provider_args(settings: StackSettings) -> k8s.ProviderArgs:
    """The Kubernetes provider's inputs: the stack's cluster, or a folder to render manifests to."""
    if settings.cluster.render_to is not None:
        # The provider refuses a kubeconfig in render mode: rendering never contacts a cluster.
        return k8s.ProviderArgs(render_yaml_to_directory=settings.cluster.render_to)
    # Client-side create fails on an object that already exists; server-side apply (this provider
    # version's default) would silently adopt it, and destroying this stack would then delete
    # another stack's or another team's object. The pinned provider has no other way to refuse.
    return settings.cluster.as_args(k8s.ProviderArgs, enable_server_side_apply=False)
