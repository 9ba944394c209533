"""Parses a stack's configuration into one typed, validated model before any resource exists."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import (
    Builder,
    ContainerImageArgs,
    IngressArgs,
    RegistryArgs,
    ResourcesArgs,
    WebServiceArgs,
)
from components.container_image import DEFAULT_PLATFORM
from components.web_service import DEFAULT_REPLICAS, DEFAULT_ROLLOUT_TIMEOUT_SECONDS

PROJECT = "hello-world"

MAX_REPLICAS = 50
NODE_PORT_RANGE = (30000, 32767)
DEFAULT_REPOSITORY = "hello-world"
DEFAULT_BUILD_CONTEXT = "app"
ROLLOUT_TIMEOUT_RANGE = (30, 3600)
# The local platform writes its admin kubeconfig here (see platform/env.sh); a stack
# must name any other cluster explicitly, so a user's default kubeconfig is never used
# by accident.
LOCAL_KUBECONFIG = "/var/lib/hello-pulumi/kube/admin.kubeconfig"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_REGISTRY = re.compile(r"^(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+|[a-z0-9.-]+:[0-9]{1,5})(:[0-9]{1,5})?$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi)?$")
_PLATFORM = re.compile(r"^linux/(amd64|arm64)$")


class SecretStr:
    """A string that never shows itself in reprs, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, kw_only=True)
class ImageRef:
    """An image pinned by digest: ``<registry>/<repository>@sha256:<hex>``."""

    registry: str
    repository: str
    digest: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    """How the stack builds ``app/`` and where it pushes the result."""

    registry: str
    """Registry host[:port] that receives the image. Required."""
    username: str
    """Registry user. Required."""
    password: SecretStr
    """Registry password, from the secret key ``registryPassword``. Required."""
    repository: str = DEFAULT_REPOSITORY
    """Repository inside the registry. Default ``hello-world``."""
    builder: Builder = Builder.DOCKER
    """Provider that builds the image. Default ``docker``."""
    context: str = DEFAULT_BUILD_CONTEXT
    """Build context folder, relative to the project. Default ``app``."""
    base_image: str | None = None
    """``BASE_IMAGE`` build argument; default: the Dockerfile's own (official Node LTS)."""
    platform: str = DEFAULT_PLATFORM
    """Target platform, so that an arm64 laptop builds for amd64 nodes. Default ``linux/amd64``."""
    build_on_preview: bool = False
    """Build during ``pulumi preview`` too. Default ``False``: previews have no side effects."""

    def image_args(self, tag: str) -> ContainerImageArgs:
        """The :class:`ContainerImage` inputs; the password goes in as a Pulumi secret."""
        return ContainerImageArgs(
            context=Path(self.context),
            repository=self.repository,
            registry=RegistryArgs(
                address=self.registry,
                username=self.username,
                password=pulumi.Output.secret(self.password.reveal()),
            ),
            builder=self.builder,
            tag=tag,
            build_args={"BASE_IMAGE": self.base_image} if self.base_image else {},
            platform=self.platform,
            build_on_preview=self.build_on_preview,
        )


@dataclass(frozen=True, kw_only=True)
class ClusterSettings:
    """Which cluster the stack deploys to."""

    kubeconfig: str = LOCAL_KUBECONFIG
    """Path of the kubeconfig file. Default: the local platform's."""
    context: str | None = None
    """Context inside the kubeconfig; default: its current context."""
    render_to: str | None = None
    """Write the manifests to this folder instead of applying them (``make render``); default: apply."""

    def provider_args(self) -> k8s.ProviderArgs:
        if self.render_to is not None:
            # The provider refuses a kubeconfig in render mode: rendering never contacts a cluster.
            return k8s.ProviderArgs(render_yaml_to_directory=self.render_to)
        return k8s.ProviderArgs(kubeconfig=self.kubeconfig, context=self.context)


@dataclass(frozen=True, kw_only=True)
class StackSettings:
    """Everything a stack can set, parsed and checked."""

    stack: str
    namespace: str
    replicas: int = DEFAULT_REPLICAS
    node_port: int | None = None
    """Fixed node port; ``None`` lets the cluster choose."""
    image: ImageRef | None = None
    """A promoted image, pinned by digest. Exactly one of ``image`` and ``build`` is set."""
    build: BuildSettings | None = None
    resources: ResourcesArgs = field(default_factory=ResourcesArgs)
    ingress: IngressArgs | None = None
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    rollout_timeout_seconds: int = DEFAULT_ROLLOUT_TIMEOUT_SECONDS

    def web_service_args(self, image: pulumi.Input[str]) -> WebServiceArgs:
        """The :class:`WebService` inputs of this stack, running ``image``."""
        return WebServiceArgs(
            name=PROJECT,
            instance=self.stack,
            namespace=self.namespace,
            image=image,
            replicas=self.replicas,
            node_port=self.node_port,
            resources=self.resources,
            ingress=self.ingress,
            rollout_timeout_seconds=self.rollout_timeout_seconds,
        )


class SettingsError(pulumi.RunError):
    """Raised with every problem of a stack's settings at once."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"stack '{stack}' has {len(problems)} {noun} in its settings:\n{lines}")


TOP_LEVEL_KEYS = frozenset(
    {
        "namespace",
        "replicas",
        "nodePort",
        "image",
        "build",
        "registryPassword",
        "resources",
        "ingress",
        "cluster",
        "rolloutTimeoutSeconds",
        "promotion",
    }
)
BUILD_KEYS = frozenset(
    {"registry", "username", "repository", "builder", "context", "baseImage", "platform", "buildOnPreview"}
)
RESOURCE_KEYS = frozenset({"cpuRequest", "memoryRequest", "cpuLimit", "memoryLimit"})
INGRESS_KEYS = frozenset({"enabled", "host", "path", "className", "tlsSecretName"})
CLUSTER_KEYS = frozenset({"kubeconfig", "context", "renderTo"})
PROMOTION_KEYS = frozenset({"from", "digest", "at", "commit"})

T = TypeVar("T")


class _Reader:
    """Reads raw values, collecting a problem for each bad one instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, key: str, expected: str, got: Any) -> None:
        given = "nothing" if got is None else repr(got)
        self.problems.append(f"{key} must be {expected}, got {given}")

    def unknown_keys(self, where: str, given: Mapping[str, Any], known: frozenset[str]) -> None:
        for key in sorted(set(given) - known):
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean '{where}{hint[0]}'?)" if hint else ""
            self.problems.append(
                f"{where}{key} is not a known setting: expected one of {', '.join(sorted(known))}, "
                f"got {key!r}{suggestion}"
            )

    def obj(self, key: str, raw: Any) -> dict[str, Any] | None:
        if raw is None:
            return None
        value = json.loads(raw) if isinstance(raw, str) and raw.lstrip().startswith("{") else raw
        if not isinstance(value, dict):
            self.fail(key, "an object", raw)
            return None
        return value

    def text(self, key: str, raw: Any, check: Callable[[str], object], expected: str) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, str) or not check(raw):
            self.fail(key, expected, raw)
            return None
        return raw

    def integer(self, key: str, raw: Any, bounds: tuple[int, int]) -> int | None:
        if raw is None:
            return None
        low, high = bounds
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or isinstance(raw, bool) or str(raw).strip() != str(value) or not low <= value <= high:
            self.fail(key, f"an integer from {low} to {high}", raw)
            return None
        return value

    def boolean(self, key: str, raw: Any) -> bool | None:
        if raw is None or isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.fail(key, "true or false", raw)
        return None

    def choice(self, key: str, raw: Any, kind: type[T]) -> T | None:
        if raw is None:
            return None
        options = [member.value for member in kind]  # type: ignore[attr-defined]
        if raw not in options:
            self.fail(key, "one of " + ", ".join(options), raw)
            return None
        return kind(raw)  # type: ignore[call-arg]


def parse_image_ref(value: str) -> ImageRef | str:
    """Returns the parsed reference, or the reason it is not one."""
    name, sep, digest = value.partition("@")
    if not sep or not _DIGEST.match(digest):
        return "not pinned by a sha256 digest"
    registry, slash, repository = name.partition("/")
    if not slash or not _REGISTRY.match(registry):
        return "no registry host"
    if not _REPOSITORY.match(repository):
        return "an invalid repository name"
    return ImageRef(registry=registry, repository=repository, digest=digest)


def _present(**values: Any) -> dict[str, Any]:
    """Keyword arguments that were given, so that dataclass defaults apply to the rest."""
    return {key: value for key, value in values.items() if value is not None}


def parse_settings(raw: Mapping[str, Any], *, stack: str, secret_keys: frozenset[str] = frozenset()) -> StackSettings:
    """Parses the project's config values (keys without the ``hello-world:`` prefix).

    Args:
        raw: Config values as the engine passes them: strings, objects as JSON strings.
        stack: Name of the stack, for defaults and messages.
        secret_keys: Keys that were set with ``--secret``.

    Raises:
        SettingsError: Listing every invalid, missing or unknown setting.
    """
    r = _Reader()
    r.unknown_keys("", raw, TOP_LEVEL_KEYS)

    namespace = r.text(
        "namespace",
        raw.get("namespace"),
        _DNS_LABEL.match,
        "a DNS-1123 label (lowercase letters, digits, '-', at most 63)",
    )
    replicas = r.integer("replicas", raw.get("replicas"), (1, MAX_REPLICAS))
    node_port = r.integer("nodePort", raw.get("nodePort"), NODE_PORT_RANGE)
    rollout = r.integer("rolloutTimeoutSeconds", raw.get("rolloutTimeoutSeconds"), ROLLOUT_TIMEOUT_RANGE)

    image: ImageRef | None = None
    if (raw_image := raw.get("image")) is not None:
        parsed = parse_image_ref(str(raw_image))
        if isinstance(parsed, ImageRef):
            image = parsed
        else:
            r.fail("image", f"<registry>/<repository>@sha256:<64 hex digits> ({parsed})", raw_image)

    build = _parse_build(r, raw, secret_keys)
    if raw.get("image") is not None and raw.get("build") is not None:
        r.problems.append(
            "image and build are exclusive: expected image (deploy a pinned image) or build (build app/), got both"
        )
    if raw.get("image") is None and raw.get("build") is None:
        r.problems.append(
            "image or build must be set: expected a pinned image reference or a build section, got neither"
        )
    if raw.get("build") is None and raw.get("registryPassword") is not None:
        r.problems.append(
            "registryPassword is only used with build: expected no registryPassword, got one without a build section"
        )

    resources = _parse_resources(r, raw.get("resources"))
    ingress = _parse_ingress(r, raw.get("ingress"))
    cluster = _parse_cluster(r, raw.get("cluster"))
    # Written by `make promote` as a record of where the image came from; the program ignores it.
    if (promotion := r.obj("promotion", raw.get("promotion"))) is not None:
        r.unknown_keys("promotion.", promotion, PROMOTION_KEYS)

    if r.problems:
        raise SettingsError(stack, r.problems)
    return StackSettings(
        stack=stack,
        namespace=namespace or f"{PROJECT}-{stack}",
        image=image,
        build=build,
        ingress=ingress,
        **_present(
            replicas=replicas,
            node_port=node_port,
            rollout_timeout_seconds=rollout,
            resources=resources,
            cluster=cluster,
        ),
    )


def _parse_build(r: _Reader, raw: Mapping[str, Any], secret_keys: frozenset[str]) -> BuildSettings | None:
    values = r.obj("build", raw.get("build"))
    if values is None:
        return None
    r.unknown_keys("build.", values, BUILD_KEYS)
    registry = r.text(
        "build.registry", values.get("registry"), _REGISTRY.match, "a registry host[:port], such as 127.0.0.1:5000"
    )
    username = r.text("build.username", values.get("username"), bool, "a non-empty user name")
    repository = r.text(
        "build.repository",
        values.get("repository"),
        _REPOSITORY.match,
        "a repository name (lowercase, '/', '.', '_', '-')",
    )
    builder = r.choice("build.builder", values.get("builder"), Builder)
    context = r.text("build.context", values.get("context"), bool, "a folder relative to the project")
    base_image = r.text("build.baseImage", values.get("baseImage"), bool, "an image reference")
    platform = r.text("build.platform", values.get("platform"), _PLATFORM.match, "linux/amd64 or linux/arm64")
    build_on_preview = r.boolean("build.buildOnPreview", values.get("buildOnPreview"))
    if registry is None and "registry" not in values:
        r.fail("build.registry", "a registry host[:port] to push to", None)
    if username is None and "username" not in values:
        r.fail("build.username", "the registry user", None)

    password = raw.get("registryPassword")
    if password is None:
        r.fail(
            "registryPassword", "set with `pulumi config set --secret registryPassword <password>` when building", None
        )
    elif "registryPassword" not in secret_keys:
        # Never echo the value: it is a password that was stored in plaintext by mistake.
        r.problems.append(
            "registryPassword must be a secret (pulumi config set --secret registryPassword ...), got a plaintext value"
        )
    if registry is None or username is None or password is None or "registryPassword" not in secret_keys:
        return None
    return BuildSettings(
        registry=registry,
        username=username,
        password=SecretStr(str(password)),
        base_image=base_image,
        **_present(
            repository=repository,
            builder=builder,
            context=context,
            platform=platform,
            build_on_preview=build_on_preview,
        ),
    )


def _parse_resources(r: _Reader, raw: Any) -> ResourcesArgs | None:
    values = r.obj("resources", raw)
    if values is None:
        return None
    r.unknown_keys("resources.", values, RESOURCE_KEYS)
    quantities = {
        name: r.text(
            f"resources.{key}", values.get(key), _QUANTITY.match, "a Kubernetes quantity such as 100m or 128Mi"
        )
        for name, key in (
            ("cpu_request", "cpuRequest"),
            ("memory_request", "memoryRequest"),
            ("cpu_limit", "cpuLimit"),
            ("memory_limit", "memoryLimit"),
        )
    }
    return ResourcesArgs(**_present(**quantities))


def _parse_ingress(r: _Reader, raw: Any) -> IngressArgs | None:
    values = r.obj("ingress", raw)
    if values is None:
        return None
    r.unknown_keys("ingress.", values, INGRESS_KEYS)
    enabled = r.boolean("ingress.enabled", values.get("enabled"))
    host = r.text("ingress.host", values.get("host"), _DNS_NAME.match, "a DNS host name such as hello.example.com")
    path = r.text("ingress.path", values.get("path"), lambda p: p.startswith("/"), "a path starting with '/'")
    class_name = r.text("ingress.className", values.get("className"), _DNS_NAME.match, "an IngressClass name")
    tls = r.text("ingress.tlsSecretName", values.get("tlsSecretName"), _DNS_NAME.match, "a Secret name")
    if not enabled:
        return None
    if host is None:
        if "host" not in values:
            r.fail("ingress.host", "a DNS host name when ingress.enabled is true", None)
        return None
    return IngressArgs(host=host, class_name=class_name, tls_secret_name=tls, **_present(path=path))


def _parse_cluster(r: _Reader, raw: Any) -> ClusterSettings | None:
    values = r.obj("cluster", raw)
    if values is None:
        return None
    r.unknown_keys("cluster.", values, CLUSTER_KEYS)
    kubeconfig = r.text("cluster.kubeconfig", values.get("kubeconfig"), bool, "a path to a kubeconfig file")
    context = r.text("cluster.context", values.get("context"), bool, "a context name in the kubeconfig")
    render_to = r.text("cluster.renderTo", values.get("renderTo"), os.path.isabs, "an absolute folder path")
    return ClusterSettings(**_present(kubeconfig=kubeconfig, context=context, render_to=render_to))


def cluster_identity(cluster: ClusterSettings) -> tuple[str, str | None]:
    """Two stacks with the same identity deploy to the same cluster."""
    return os.path.realpath(os.path.expanduser(cluster.kubeconfig)), cluster.context


def node_port_clashes(settings: StackSettings, other_stacks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Problems for each other stack of the same cluster that claims this stack's node port.

    Kubernetes reports "provided port is already allocated" only when the second stack is
    applied; this finds it from the stack files before anything is registered.

    Args:
        settings: The current stack's parsed settings.
        other_stacks: Raw config (keys without the project prefix) of the project's other stacks.
    """
    if settings.node_port is None:
        return []
    clashes = []
    for name, raw in sorted(other_stacks.items()):
        if name == settings.stack:
            continue
        # Another stack's own mistakes are reported when that stack runs, not here.
        lenient = _Reader()
        port = lenient.integer("nodePort", raw.get("nodePort"), NODE_PORT_RANGE)
        cluster = _parse_cluster(lenient, raw.get("cluster")) or ClusterSettings()
        if port == settings.node_port and cluster_identity(cluster) == cluster_identity(settings.cluster):
            kubeconfig, context = cluster_identity(settings.cluster)
            clashes.append(
                f"nodePort must be unique among the stacks of one cluster, got {port}, which stack '{name}' "
                f"also claims on the same cluster (kubeconfig {kubeconfig}, context {context or 'current'})"
            )
    return clashes


def read_stack_files(directory: Path) -> dict[str, dict[str, Any]]:
    """The project's config of every ``Pulumi.<stack>.yaml`` in ``directory``, by stack name."""
    prefix = f"{PROJECT}:"
    stacks = {}
    for path in sorted(directory.glob("Pulumi.*.yaml")):
        document = yaml.safe_load(path.read_text()) or {}
        config = document.get("config") or {}
        name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        stacks[name] = {key.removeprefix(prefix): value for key, value in config.items() if key.startswith(prefix)}
    return stacks


def load_settings() -> StackSettings:
    """Reads the current stack's config from the Pulumi runtime and parses it.

    Raises:
        SettingsError: Listing every invalid, missing or unknown setting.
    """
    prefix = f"{PROJECT}:"
    # The engine passes config in PULUMI_CONFIG; mocks set it in the runtime's context.
    everything = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    raw = {key.removeprefix(prefix): value for key, value in everything.items() if key.startswith(prefix)}
    engine_secrets = set(pulumi.runtime.get_config_secret_keys_env())
    secret_keys = frozenset(
        key for key in raw if prefix + key in engine_secrets or pulumi.runtime.is_config_secret(prefix + key)
    )
    settings = parse_settings(raw, stack=pulumi.get_stack(), secret_keys=secret_keys)
    # The engine runs the program in the project folder, beside the stack files.
    clashes = node_port_clashes(settings, read_stack_files(Path.cwd()))
    if clashes:
        raise SettingsError(settings.stack, clashes)
    return settings
