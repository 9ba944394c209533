"""The stack settings, declared once: type, bound, pattern, default, expectation and doc live on each field."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WrapValidator, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from components import Builder, IngressArgs, ResourcesArgs, VerificationArgs
from components.container_image import DEFAULT_BUILDER, DEFAULT_PLATFORM
from components.ingress import DEFAULT_INGRESS_PATH
from components.web_service import (
    DEFAULT_REPLICAS,
    DEFAULT_ROLLOUT_TIMEOUT_SECONDS,
    MAX_SERVICE_NAME_LENGTH,
    NODE_PORTS,
    SERVICE_NAME,
)
from image_ref import PINNED_FORM, REGISTRY, REPOSITORY, ImageRef, parse_image_ref
from settings import DEFAULT_BUILD_CONTEXT, decoded_list, decoded_object, default_namespace

# The local platform writes its admin kubeconfig there; a stack must name any other cluster
# explicitly, so a user's default kubeconfig is never used by accident.
from settings.local_platform import LOCAL_KUBECONFIG

MAX_REPLICAS = 50
ROLLOUT_TIMEOUT_RANGE = (15, 3600)
"""From 15 s: a healthy rollout (all new pods at once, ready within seconds, then MIN_READY_SECONDS) fits."""
DEFAULT_REPOSITORY = "hello-world"

T = TypeVar("T")
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z"
DNS_NAME = r"^(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi)?\Z"


def _expect(text: str, **field_args: Any) -> Any:
    """A field whose errors, and whose row in the README, say ``<key> must be <text>``."""
    return Field(json_schema_extra={"expected": text}, **field_args)


def _secret(section: str, when: str, *, rendered_without: bool = False) -> Any:
    """A password that goes with ``section``, required ``when``; kept as given (a secret Output) and never shown.

    ``rendered_without``: a render (which gets no secrets) goes without it, and the program then makes nothing
    that holds it.
    """
    extra: dict[str, Any] = {
        "expected": "a secret string",
        "section": section,
        "when": when,
        "renderedWithout": rendered_without,
    }
    return Field(default=None, repr=False, exclude=True, json_schema_extra=extra)


def _between(low: int, high: int, default: int | None) -> Any:
    return _expect(f"an integer from {low} to {high}", default=default, ge=low, le=high)


def _plain(value: Any, handler: Callable[[Any], Any]) -> Any:
    """Config holds numbers and booleans as text: take ``"5"`` and ``"true"``, not ``"05"``, ``"5.0"`` or ``"yes"``."""
    parsed = handler(value)
    if str(value).strip().lower() != str(parsed).lower():
        raise PydanticCustomError("plain", "not written plainly")
    return parsed


Integer = Annotated[int, WrapValidator(_plain)]
Boolean = Annotated[bool, WrapValidator(_plain), _expect("true or false")]
Text = Annotated[str | None, _expect("text")]
Quantity = Annotated[str, _expect("a Kubernetes quantity such as 100m or 128Mi", pattern=QUANTITY)]
DnsName = Annotated[str, Field(pattern=DNS_NAME)]


def _pinned_ref(value: Any) -> ImageRef:
    """An image reference pinned by digest, parsed; a ValueError saying what the form is and what is wrong."""
    parsed = parse_image_ref(str(value))
    if isinstance(parsed, str):
        raise ValueError(f"{PINNED_FORM} ({parsed})")
    return parsed


class Section(BaseModel):
    """A group of settings: camelCase keys as in the stack file, no unknown key, immutable."""

    # Python's re engine: the patterns use look-ahead and \Z, which the default Rust engine lacks.
    # The field docstrings make the README reference and Pulumi.yaml (settings/reference.py reads them).
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, regex_engine="python-re")

    @model_validator(mode="before")
    @classmethod
    def _from_json(cls, value: Any) -> Any:
        """The engine passes an object setting as JSON text; other text stays text, and is refused."""
        return decoded_object(value)

    def as_args(self, target: Callable[..., T], **given: Any) -> T:
        """``target(**given)``, with every setting named like one of its parameters too."""
        named = inspect.signature(target).parameters.keys() & type(self).model_fields.keys() - given.keys()
        return target(**{name: getattr(self, name) for name in named}, **given)


def aliases(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key a stack file uses."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def section_of(info: FieldInfo) -> type[Section] | None:
    """The group of settings a field holds, if it holds one."""
    kinds = (info.annotation, *get_args(info.annotation))
    return next((kind for kind in kinds if isinstance(kind, type) and issubclass(kind, Section)), None)


def expectation(info: FieldInfo) -> str:
    """What a field takes, as its declaration says."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "expected" in extra:
        return str(extra["expected"])
    return "an object" if section_of(info) else "any value"


def rendered_without(info: FieldInfo) -> bool:
    """Whether a render goes without this secret setting."""
    extra = info.json_schema_extra
    return isinstance(extra, dict) and extra.get("renderedWithout") is True


def secret_of(info: FieldInfo) -> tuple[str, str] | None:
    """The group a secret setting goes with and when it is required; ``None`` for any other setting."""
    extra = info.json_schema_extra
    return (str(extra["section"]), str(extra["when"])) if isinstance(extra, dict) and "section" in extra else None


class BuildSettings(Section):
    """How the stack builds ``app/`` and where it pushes the result."""

    registry: str = _expect("a registry host[:port] to push to", pattern=rf"^{REGISTRY.pattern}\Z")
    """Registry host[:port] that receives the image, such as ``127.0.0.1:5000``. Required."""
    username: str = _expect("the registry user", min_length=1)
    """Registry user. Required; the password is the secret setting ``registryPassword``."""
    repository: str = _expect(
        "a repository name (lowercase, '/', '.', '_', '-')",
        default=DEFAULT_REPOSITORY,
        pattern=rf"^{REPOSITORY.pattern}\Z",
    )
    """Repository inside the registry. Default ``hello-world``."""
    builder: Builder = _expect("one of " + ", ".join(kind.value for kind in Builder), default=DEFAULT_BUILDER)
    """Image builder: ``docker-build`` or ``docker``. Default ``docker-build``, Pulumi's advice for new projects."""
    context: str = _expect("a folder relative to the project", default=DEFAULT_BUILD_CONTEXT, min_length=1)
    """Build context folder, relative to the project. Default ``app``."""
    base_image: str | None = _expect("an image reference", default=None, min_length=1)
    """``BASE_IMAGE`` build argument. Default: the Dockerfile's own (official Node LTS)."""
    platform: str = _expect("linux/amd64 or linux/arm64", default=DEFAULT_PLATFORM, pattern=r"^linux/(amd64|arm64)\Z")
    """Target platform, so that an arm64 laptop builds for amd64 nodes. Default ``linux/amd64``."""
    build_on_preview: Boolean = False
    """Build during ``pulumi preview`` too. Default ``false``: previews have no side effects."""


class ResourcesSettings(Section):
    """CPU, memory and ephemeral storage of the containers (the app's and the verification Job's)."""

    cpu_request: Quantity = ResourcesArgs.cpu_request
    """CPU request. Default ``50m``."""
    memory_request: Quantity = ResourcesArgs.memory_request
    """Memory request. Default ``64Mi``."""
    cpu_limit: Quantity = ResourcesArgs.cpu_limit
    """CPU limit. Default ``500m``."""
    memory_limit: Quantity = ResourcesArgs.memory_limit
    """Memory limit. Default ``128Mi``."""
    ephemeral_storage_request: Quantity = ResourcesArgs.ephemeral_storage_request
    """Ephemeral storage request (logs, writable layers). Default ``32Mi``."""
    ephemeral_storage_limit: Quantity = ResourcesArgs.ephemeral_storage_limit
    """Ephemeral storage limit; past it the pod is evicted. Default ``128Mi``."""


class IngressSettings(Section):
    """An Ingress in front of the Service."""

    enabled: Boolean = False
    """Create the Ingress. Default ``false``: only the node port."""
    host: DnsName | None = _expect("a DNS host name such as hello.example.com", default=None, validate_default=True)
    """Host name to route. Required when ``enabled``."""
    path: str = _expect("a path starting with '/'", default=DEFAULT_INGRESS_PATH, pattern=r"^/")
    """Path prefix. Default ``/``."""
    class_name: DnsName | None = _expect("an IngressClass name", default=None)
    """IngressClass; the cluster must have it (a preview or up asks). Default: the cluster's default class."""
    tls_secret_name: DnsName | None = _expect("a Secret name", default=None)
    """Secret in the namespace with the certificate of every host routed (a preview or up asks). Default: no TLS."""
    controller_certificate: Boolean = False
    """TLS with the controller's default certificate (local: ``*.hello-pulumi.test``). Default ``false``."""
    redirect_to_https: Boolean = False
    """Redirect plain HTTP to HTTPS (local Traefik's ``https-redirect@file``); needs TLS. Default ``false``."""

    @field_validator("host")
    @classmethod
    def _host_when_enabled(cls, host: str | None, info: ValidationInfo) -> str | None:
        if host is None and info.data.get("enabled"):
            raise ValueError("a DNS host name when ingress.enabled is true")
        return host

    @field_validator("controller_certificate")
    @classmethod
    def _one_certificate(cls, controller_certificate: bool, info: ValidationInfo) -> bool:
        if controller_certificate and info.data.get("tls_secret_name"):
            raise ValueError("false when ingress.tlsSecretName names the certificate")
        return controller_certificate

    @field_validator("redirect_to_https")
    @classmethod
    def _redirect_needs_tls(cls, redirect_to_https: bool, info: ValidationInfo) -> bool:
        if redirect_to_https and not (info.data.get("tls_secret_name") or info.data.get("controller_certificate")):
            raise ValueError("false unless the host has TLS (ingress.tlsSecretName or ingress.controllerCertificate)")
        return redirect_to_https

    @property
    def url(self) -> str:
        return self.as_args(IngressArgs).url


class ServiceSettings(Section):
    """A further service: the stack's image, its own Deployment and ClusterIP Service, reached through the Ingress."""

    name: str = _expect(
        f"a DNS label starting with a letter (lowercase letters, digits, '-', at most {MAX_SERVICE_NAME_LENGTH})",
        pattern=rf"^{SERVICE_NAME.pattern}\Z",
        max_length=MAX_SERVICE_NAME_LENGTH,
    )
    """Names its Deployment and Service. Required; no other service's objects may share it."""
    message: str | None = _expect("non-empty text", default=None, min_length=1)
    """What its pods answer (the app's ``MESSAGE``), which its check expects. Default: the app's ``Hello World``."""
    path: str = _expect("a path starting with '/'", default=DEFAULT_INGRESS_PATH, pattern=r"^/")
    """Path prefix the Ingress routes to it. Default ``/``; no other service may route its host and path."""
    host: DnsName | None = _expect("a DNS host name such as v2.example.com", default=None)
    """Host name the Ingress routes to it. Default: ``ingress.host``."""
    replicas: Integer | None = _between(1, MAX_REPLICAS, None)
    """Pod count. Default: the stack's ``replicas``."""


class ClusterSettings(Section):
    """Which cluster the stack deploys to."""

    kubeconfig: str = _expect("a path to a kubeconfig file", default=LOCAL_KUBECONFIG, min_length=1)
    """Path of the kubeconfig file. Default: the local platform's."""
    context: str | None = _expect("a context name in the kubeconfig", default=None, min_length=1)
    """Context inside the kubeconfig. Default: its current context."""
    render_to: str | None = _expect("an absolute folder path", default=None, pattern=r"^/")
    """Write manifests to this folder instead of applying them (``make render`` sets it). Default: apply."""
    create_namespace: Boolean = True
    """Create the namespace. ``false``: deploy into one that exists (a namespace-scoped account). Default ``true``."""


class ImagePullSettings(Section):
    """An image pull secret: credentials the pods pull the image with, from a registry that refuses anonymous pulls."""

    username: str = _expect("the registry user (no ':')", pattern=r"^[^:]+\Z")
    """Registry user of the image's registry. Required; the password is the secret setting ``imagePullPassword``."""


class VerificationSettings(Section):
    """The check every deploy runs inside the cluster, on the new image's pods, before it counts as done."""

    path: str = _expect("a path starting with '/'", default=VerificationArgs.path, pattern=r"^/")
    """Path to request. Default ``/``."""
    status: Integer = _between(100, 599, VerificationArgs.status)
    """HTTP status the answer must have. Default 200."""
    body: str = _expect("non-empty text", default=VerificationArgs.body, min_length=1)
    """Text the answer must contain. Default ``Hello World``."""
    checker_image: str = _expect(PINNED_FORM, default=VerificationArgs.checker_image)
    """Image the check runs in, pinned by digest, with ``node`` on its PATH; never the image under test. Default:
    the official ``node:24-bookworm-slim``, pinned; on the local platform, `make` fills in its Node base image."""

    @field_validator("checker_image")
    @classmethod
    def _checker_pinned(cls, value: str) -> str:
        _pinned_ref(value)
        return value


class PromotionRecord(Section):
    """Where a promoted image came from; written by ``make promote``, read by people, ignored by the program."""

    from_: Text = Field(default=None, alias="from")
    """Stack the image was promoted from."""
    digest: Text = None
    """Digest that was promoted."""
    at: Text = None
    """When, in UTC."""
    commit: Text = None
    """Git commit of the project at the time."""
    skipped_verification: Text = None
    """Why it was promoted although its verification had not passed (``--skip-verification``)."""


class StackSettings(Section):
    """Everything a stack can set (``hello-world:<key>`` in ``Pulumi.<stack>.yaml``)."""

    namespace: str = _expect("a DNS-1123 label (lowercase letters, digits, '-', at most 63)", pattern=DNS_LABEL)
    """Namespace created for the stack. Default ``hello-world-<stack>``."""
    replicas: Integer = _between(1, MAX_REPLICAS, DEFAULT_REPLICAS)
    """Pod count. Default 3."""
    node_port: Integer | None = _between(*NODE_PORTS, None)
    """Fixed node port. Default: chosen by the cluster."""
    rollout_timeout_seconds: Integer = _between(*ROLLOUT_TIMEOUT_RANGE, DEFAULT_ROLLOUT_TIMEOUT_SECONDS)
    """Seconds Pulumi waits for a rollout before failing it. Default 300."""
    image: ImageRef | None = _expect(PINNED_FORM, default=None)
    """A promoted image, pinned by digest. Default: none; exactly one of ``image`` and ``build`` is set."""
    build: BuildSettings | None = None
    """Build ``app/`` and push it; see the ``build.*`` keys. Default: none; exactly one of ``image`` and ``build``."""
    registry_password: Any = _secret("build", "when building")
    """Password of ``build.registry``; set with ``pulumi config set --secret``. Required with ``build``."""
    image_pull: ImagePullSettings | None = None
    """An image pull secret for the image's registry; see the ``imagePull.*`` keys. Default: none."""
    # A render makes no pull Secret (it would be plaintext in the manifests); its pods only name it.
    image_pull_password: Any = _secret("imagePull", "with imagePull", rendered_without=True)
    """Password of ``imagePull.username``; set with ``pulumi config set --secret``. Required with ``imagePull``."""
    resources: ResourcesSettings = ResourcesSettings()
    """Requests and limits; see the ``resources.*`` keys. Default: theirs."""
    ingress: IngressSettings | None = None
    """An Ingress in front of the Service; see the ``ingress.*`` keys. Default: none."""
    services: tuple[ServiceSettings, ...] = _expect("a list of services, each an object with a name", default=())
    """More services behind the Ingress, all running the one image; see the ``services[].*`` keys. Default: none."""
    cluster: ClusterSettings = ClusterSettings()
    """Target cluster; see the ``cluster.*`` keys. Default: the local platform."""
    verification: VerificationSettings = VerificationSettings()
    """The in-cluster check of every deploy; see the ``verification.*`` keys. Default: theirs."""
    promotion: PromotionRecord | None = None
    """Provenance that ``make promote`` records. Default: none."""

    _stack: str = ""

    @property
    def stack(self) -> str:
        """Name of the stack these settings belong to."""
        return self._stack

    @field_validator("image", mode="before")
    @classmethod
    def _pinned(cls, value: Any) -> ImageRef:
        return _pinned_ref(value)

    @field_validator("services", mode="before")
    @classmethod
    def _services_from_json(cls, value: Any) -> Any:
        """The engine passes a list setting as JSON text."""
        return decoded_list(value)

    @field_validator("ingress")
    @classmethod
    def _enabled_only(cls, ingress: IngressSettings | None) -> IngressSettings | None:
        return ingress if ingress is not None and ingress.enabled else None

    @model_validator(mode="wrap")
    @classmethod
    def _of_stack(cls, data: Any, handler: Callable[[Any], StackSettings], info: ValidationInfo) -> StackSettings:
        """The stack comes in the validation context; the namespace defaults to ``hello-world-<stack>``."""
        stack: str = (info.context or {})["stack"]
        settings = handler({"namespace": default_namespace(stack), **data})
        settings._stack = stack
        return settings
