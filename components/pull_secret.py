"""The image pull secret: credentials the kubelet pulls the app's image with, kept a Pulumi secret throughout."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from image_ref import REGISTRY

SECRET_TYPE = "kubernetes.io/dockerconfigjson"
SECRET_KEY = ".dockerconfigjson"


@dataclass(frozen=True, kw_only=True)
class PullSecretArgs:
    """Credentials for a registry that refuses anonymous pulls; the pods reference them by name."""

    registry: str
    """Registry host[:port] the credentials are for, such as ``ghcr.io``: the image's own registry."""
    username: str
    """Registry user."""
    password: pulumi.Input[str] | None
    """Password or token, kept a Pulumi secret. ``None``: the Secret is made outside this stack (rendered manifests),
    and the pods only reference it."""

    def __post_init__(self) -> None:
        if not REGISTRY.fullmatch(self.registry.lower()):
            raise ValueError(f"image_pull.registry must be a registry host[:port], got {self.registry!r}")
        # Basic auth joins user and password with ':', so a ':' in the user would move it into the password.
        if not self.username or ":" in self.username:
            raise ValueError(f"image_pull.username must be a non-empty user without ':', got {self.username!r}")


def docker_config_json(registry: str, username: str, password: str) -> str:
    """The ``.dockerconfigjson`` document the kubelet reads, for one registry."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"username": username, "password": password, "auth": auth}}})


def pull_secret(
    name: str, args: PullSecretArgs, metadata: k8s.meta.v1.ObjectMetaArgs, opts: pulumi.ResourceOptions
) -> k8s.core.v1.Secret | None:
    """The ``kubernetes.io/dockerconfigjson`` Secret, or None when it is made outside the stack.

    The document is built inside ``apply`` on a secret Output, so the password never exists as plain
    program data, and the Secret's data is a secret output in the state as well.
    """
    if args.password is None:
        return None
    document = pulumi.Output.secret(args.password).apply(
        lambda password: base64.b64encode(docker_config_json(args.registry, args.username, password).encode()).decode()
    )
    return k8s.core.v1.Secret(
        f"{name}-pull-secret",
        metadata=metadata,
        type=SECRET_TYPE,
        data={SECRET_KEY: document},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["data"])),
    )


def pull_secret_refs(name: str | None) -> list[k8s.core.v1.LocalObjectReferenceArgs] | None:
    """A pod's ``imagePullSecrets`` naming the Secret ``name``, or None when its pods pull without one."""
    return [k8s.core.v1.LocalObjectReferenceArgs(name=name)] if name else None
