"""ContainerImage: builds the app folder, pushes it, and exposes the image by digest."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from components.unknown import unknown

DEFAULT_PLATFORM = "linux/amd64"
DEFAULT_TAG = "latest"


class Builder(enum.Enum):
    """Which Pulumi provider builds and pushes the image."""

    DOCKER = "docker"
    """pulumi-docker's ``Image`` (the classic provider)."""
    DOCKER_BUILD = "docker-build"
    """pulumi-docker-build's ``Image`` (BuildKit)."""


# docker-build is the provider Pulumi recommends for new projects; the classic one stays a choice.
DEFAULT_BUILDER = Builder.DOCKER_BUILD


@dataclass(frozen=True, kw_only=True)
class RegistryArgs:
    """A registry and the credentials to push to it."""

    address: str
    """Registry host[:port], such as ``127.0.0.1:5000``."""
    username: pulumi.Input[str]
    """User name for the push."""
    password: pulumi.Input[str]
    """Password for the push; pass a Pulumi secret."""


@dataclass(frozen=True, kw_only=True)
class ContainerImageArgs:
    """Inputs of :class:`ContainerImage`."""

    context: Path
    """Build context folder holding the Dockerfile."""
    repository: str
    """Repository inside the registry, such as ``hello-world``."""
    registry: RegistryArgs
    """Where the image is pushed."""
    builder: Builder = DEFAULT_BUILDER
    """Provider that builds. Default ``Builder.DOCKER_BUILD``, which Pulumi recommends for new projects;
    ``Builder.DOCKER`` is the classic provider."""
    tag: str = DEFAULT_TAG
    """Tag pushed next to the digest; nothing deploys by it. Default ``latest``."""
    build_args: dict[str, str] = field(default_factory=dict)
    """Dockerfile build arguments. Default: none."""
    platform: str = DEFAULT_PLATFORM
    """Target platform. Default ``linux/amd64``."""
    build_on_preview: bool = False
    """Build during previews too. Default ``False``: a preview has no side effects."""


class ContainerImage(pulumi.ComponentResource):
    """Builds ``args.context`` and pushes it to a registry.

    Deployments must use :attr:`image_ref`, never the tag: the digest changes exactly
    when the image's content does, so an unchanged build rolls nothing out.
    """

    image_ref: pulumi.Output[str]
    """The pushed image by digest: ``<registry>/<repository>@sha256:<hex>``."""

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hello-world:index:ContainerImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repository = f"{args.registry.address}/{args.repository}"
        if args.builder is Builder.DOCKER:
            self.image_ref = _build_with_docker(name, args, repository, child)
        else:
            self.image_ref = _build_with_docker_build(name, args, repository, child)
        self.register_outputs({"image_ref": self.image_ref})


def _build_with_docker(
    name: str, args: ContainerImageArgs, repository: str, opts: pulumi.ResourceOptions
) -> pulumi.Output[str]:
    # Imported by the builder that uses it: each SDK costs a program ~0.1 s to load, and a stack
    # builds with one of them, or (staging, prod) with none.
    import pulumi_docker as docker

    image = docker.Image(
        f"{name}-image",
        docker.ImageArgs(
            image_name=f"{repository}:{args.tag}",
            build=docker.DockerBuildArgs(
                context=str(args.context),
                dockerfile=str(args.context / "Dockerfile"),
                args=args.build_args,
                platform=args.platform,
            ),
            registry=docker.RegistryArgs(
                server=args.registry.address,
                username=args.registry.username,
                password=args.registry.password,
            ),
            build_on_preview=args.build_on_preview,
        ),
        opts,
    )
    return image.repo_digest


def _build_with_docker_build(
    name: str, args: ContainerImageArgs, repository: str, opts: pulumi.ResourceOptions
) -> pulumi.Output[str]:
    import pulumi_docker_build as docker_build

    image = docker_build.Image(
        f"{name}-image",
        docker_build.ImageArgs(
            tags=[f"{repository}:{args.tag}"],
            context=docker_build.BuildContextArgs(location=str(args.context)),
            dockerfile=docker_build.DockerfileArgs(location=str(args.context / "Dockerfile")),
            build_args=args.build_args,
            platforms=[docker_build.Platform(args.platform)],
            push=True,
            registries=[
                docker_build.RegistryArgs(
                    address=args.registry.address,
                    username=args.registry.username,
                    password=args.registry.password,
                )
            ],
            build_on_preview=args.build_on_preview,
        ),
        opts,
    )
    return image.digest.apply(lambda digest: _by_digest(repository, digest))


def _by_digest(repository: str, digest: str) -> pulumi.Input[str]:
    if digest:
        return f"{repository}@{digest}"
    # docker-build reports an empty digest when it did not build (a preview without
    # build_on_preview). Unknown, not "repo@", is the truth: the preview then shows the
    # Deployment's image as computed rather than a reference without a digest.
    return unknown()
