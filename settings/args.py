"""Turns a stack's settings into the inputs of the components and of the Kubernetes provider."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import ContainerImageArgs, RegistryArgs, ResourcesArgs, VerificationArgs, WebServiceArgs
from settings import PROJECT
from settings.model import StackSettings


def image_args(settings: StackSettings) -> ContainerImageArgs | None:
    """The :class:`ContainerImage` inputs of a stack that builds; the password stays a Pulumi secret."""
    build = settings.build
    if build is None:
        return None
    return ContainerImageArgs(
        context=Path(build.context),
        repository=build.repository,
        registry=RegistryArgs(
            address=build.registry,
            username=build.username,
            password=pulumi.Output.secret(settings.registry_password),
        ),
        builder=build.builder,
        tag=settings.stack,
        build_args={"BASE_IMAGE": build.base_image} if build.base_image else {},
        platform=build.platform,
        build_on_preview=build.build_on_preview,
    )


def web_service_args(settings: StackSettings, image: pulumi.Input[str]) -> WebServiceArgs:
    """The :class:`WebService` inputs of the stack, running ``image``."""
    return WebServiceArgs(
        name=PROJECT,
        instance=settings.stack,
        namespace=settings.namespace,
        image=image,
        replicas=settings.replicas,
        node_port=settings.node_port,
        resources=ResourcesArgs(**settings.resources.model_dump()),
        ingress=settings.ingress.args() if settings.ingress else None,
        rollout_timeout_seconds=settings.rollout_timeout_seconds,
        verification=VerificationArgs(**settings.verification.model_dump()),
    )


def provider_args(settings: StackSettings) -> k8s.ProviderArgs:
    cluster = settings.cluster
    if cluster.render_to is not None:
        # The provider refuses a kubeconfig in render mode: rendering never contacts a cluster.
        return k8s.ProviderArgs(render_yaml_to_directory=cluster.render_to)
    # Client-side create fails on an object that already exists; server-side apply (this provider
    # version's default) would silently adopt it, and destroying this stack would then delete
    # another stack's or another team's object. The pinned provider has no other way to refuse.
    return k8s.ProviderArgs(kubeconfig=cluster.kubeconfig, context=cluster.context, enable_server_side_apply=False)
