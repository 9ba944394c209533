"""WebService: the Kubernetes side of the app: namespace, Deployment, NodePort Service, NetworkPolicy, Ingress, and
the further services its Ingress routes to."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pulumi
import pulumi_kubernetes as k8s

from components.ingress import IngressArgs, Route, RoutedServiceArgs, routed_ingress
from components.labels import AppLabels
from components.pull_secret import PullSecretArgs, pull_secret, pull_secret_refs
from components.unknown import unknown
from components.verification import Hardening, VerificationArgs, verification_job, verification_network_policy
from image_ref import DIGEST

CONTAINER_PORT = 8080
"""The port server.js listens on."""
SERVICE_PORT = 80
"""The Service's port, as in the original exercise."""
HEALTH_PATH = "/healthz"
"""Readiness: fails while the pod drains, so no new request is routed to it."""
LIVENESS_PATH = "/livez"
"""Liveness: answers as long as the process serves, draining included, so a slow drain is never restarted."""
RUN_AS_USER = 65532
"""The non-root user of app/Dockerfile."""
NODE_PORTS = (30000, 32767)
"""Kubernetes' default node port range; the policy pack keeps its own copy, held equal by a test."""
DEFAULT_REPLICAS = 3
DEFAULT_ROLLOUT_TIMEOUT_SECONDS = 300
SERVICE_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
"""A name Kubernetes takes for a Service (RFC 1035: it starts with a letter)."""
POD_SECURITY_LABELS = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
"""The API server itself refuses any pod in the namespace that breaks the "restricted" Pod Security Standard."""
PRE_STOP_SECONDS = 5
"""Pause before SIGTERM, while the endpoint controllers take the pod out of the Service."""
SHUTDOWN_DRAIN_SECONDS = 5
"""server.js keeps serving this long after SIGTERM, then closes."""
TERMINATION_GRACE_SECONDS = 30
"""Covers the pause, the drain and in-flight requests (keep-alive 5 s), with room to spare."""
MIN_READY_SECONDS = 2
"""A new pod counts as available only after staying ready this long: two readiness probes in a row."""
READINESS_PERIOD_SECONDS = 1
VERSION_LABEL = "app.kubernetes.io/version"
"""On the pods: the image they run, so the check reaches the new version's pods only."""
DENY_EGRESS_SUFFIX = "-deny-egress"
VERIFY_SUFFIX = "-verify"
VERIFY_TARGET_SUFFIX = "-verify-target"
MAX_SERVICE_NAME_LENGTH = 63 - len(VERIFY_TARGET_SUFFIX)
"""A further service's name, with the longest suffix its objects add, still fits a DNS label (63)."""
SERVICE_CHILDREN = (
    "deployment",
    "service",
    "network-policy",
    "deny-egress",
    "disruption-budget",
    "verify-target",
    "verify-network-policy",
    "verify",
)
"""How each service's children are named after their prefix: the component's name, then a further service's."""
COMPONENT_CHILDREN = ("namespace", "pull-secret", "ingress")
"""How the children the services share are named after the component's name."""


@dataclass(frozen=True, kw_only=True)
class ResourcesArgs:
    """CPU, memory and ephemeral storage of the container, as Kubernetes quantities."""

    cpu_request: str = "50m"
    """Default ``50m``."""
    memory_request: str = "64Mi"
    """Default ``64Mi``."""
    cpu_limit: str = "500m"
    """Default ``500m``."""
    memory_limit: str = "128Mi"
    """Default ``128Mi``."""
    ephemeral_storage_request: str = "32Mi"
    """Node disk for logs and any writable layer. Default ``32Mi``: the root filesystem is read-only."""
    ephemeral_storage_limit: str = "128Mi"
    """Past it the kubelet evicts the pod, before it fills the node's disk. Default ``128Mi``."""

    @property
    def requirements(self) -> k8s.core.v1.ResourceRequirementsArgs:
        """As a container's ``resources``."""
        return k8s.core.v1.ResourceRequirementsArgs(
            requests={
                "cpu": self.cpu_request,
                "memory": self.memory_request,
                "ephemeral-storage": self.ephemeral_storage_request,
            },
            limits={
                "cpu": self.cpu_limit,
                "memory": self.memory_limit,
                "ephemeral-storage": self.ephemeral_storage_limit,
            },
        )


def object_names(service: str) -> frozenset[str]:
    """The names one service's objects take in the namespace: its Deployment, Service, policies and check's.

    Two services whose names share one would overwrite each other's objects, or select each other's pods.
    """
    return frozenset(
        {service, *(service + suffix for suffix in (DENY_EGRESS_SUFFIX, VERIFY_SUFFIX, VERIFY_TARGET_SUFFIX))}
    )


def routing_problems(main: str, ingress: IngressArgs | None, services: Sequence[RoutedServiceArgs]) -> list[str]:
    """Every reason why the further ``services`` cannot stand beside the main service ``main`` behind ``ingress``.

    Phrased with the stack settings' keys (``services[<index>].<field>``), which name the same things.
    """
    if not services:
        return []
    if ingress is None:
        names = ", ".join(repr(service.name) for service in services)
        return [f"services must come with ingress.enabled: true (they are reached only through it), got {names}"]
    problems = []
    # A further service's children are named after the main service's prefix and its own name, so some names
    # would make a child the same as one of the main service's (``verify`` + ``network-policy``).
    main_children = {*SERVICE_CHILDREN, *COMPONENT_CHILDREN}
    main_route = Route(ingress.host, ingress.path, main)
    owners = {taken: ("the main service", main) for taken in object_names(main)}
    routed = {(main_route.host, main_route.prefix): "the main service (ingress.host and ingress.path)"}
    for index, service in enumerate(services):
        key = f"services[{index}]"
        if not (SERVICE_NAME.fullmatch(service.name) and len(service.name) <= MAX_SERVICE_NAME_LENGTH):
            problems.append(
                f"{key}.name must be a DNS label of at most {MAX_SERVICE_NAME_LENGTH} characters starting with a "
                f"letter, got {service.name!r}"
            )
        elif shared := sorted(object_names(service.name) & owners.keys()):
            owner, owners_name = owners[shared[0]]
            problems.append(
                f"{key}.name must be a name no other service has, got {service.name!r}, which {owner} has"
                if owners_name == service.name
                else f"{key}.name must be a name whose objects no other service's objects share, got "
                f"{service.name!r}: {owner} ({owners_name!r}) names one of its objects {shared[0]!r} too"
            )
        elif named := [child for child in SERVICE_CHILDREN if f"{service.name}-{child}" in main_children]:
            problems.append(
                f"{key}.name must be a name that names none of its resources like one of the main service's, got "
                f"{service.name!r}: its {named[0]} would be named as the main service's {service.name}-{named[0]}"
            )
        for taken in object_names(service.name):
            owners.setdefault(taken, (key, service.name))
        if service.replicas is not None and service.replicas < 1:
            problems.append(f"{key}.replicas must be at least 1, got {service.replicas}")
        route = Route(service.host or ingress.host, service.path, service.name)
        if (route.host, route.prefix) in routed:
            problems.append(
                f"{key}.path must be a path no other service routes on host {route.host!r}, got {route.path!r}, "
                f"which {routed[route.host, route.prefix]} routes"
            )
        routed.setdefault((route.host, route.prefix), f"{key} ({service.name!r})")
    return problems


@dataclass(frozen=True, kw_only=True)
class WebServiceArgs:
    """Inputs of :class:`WebService`."""

    name: str
    """Application name: names the Deployment and Service, and ``app.kubernetes.io/name``."""
    instance: str
    """Instance name (the stack): ``app.kubernetes.io/instance``."""
    namespace: str
    """Namespace created for this instance."""
    image: pulumi.Input[str]
    """Image reference; pass one pinned by digest."""
    replicas: int = DEFAULT_REPLICAS
    """Pod count. Default 3, as in the original exercise."""
    node_port: int | None = None
    """Fixed node port (30000-32767); default: chosen by the cluster."""
    resources: ResourcesArgs = field(default_factory=ResourcesArgs)
    """Requests and limits. Default: :class:`ResourcesArgs` defaults."""
    ingress: IngressArgs | None = None
    """Ingress in front of the Service; default: none, only the node port."""
    rollout_timeout_seconds: int = DEFAULT_ROLLOUT_TIMEOUT_SECONDS
    """How long Pulumi waits for a rollout before failing it; also the Deployment's progress deadline. Default 300."""
    verification: VerificationArgs = field(default_factory=VerificationArgs)
    """The check a deploy must pass inside the cluster. Default: ``/`` answers 200 with ``Hello World``."""
    image_pull: PullSecretArgs | None = None
    """Credentials for a registry that refuses anonymous pulls: an image pull secret the pods use. Default: none,
    the node pulls with its own credentials."""
    create_namespace: bool = True
    """Create ``namespace``, enforcing the "restricted" Pod Security Standard. ``False``: deploy into a namespace
    that exists, as an account whose rights end at that namespace must. Default ``True``."""
    services: tuple[RoutedServiceArgs, ...] = ()
    """Further services the Ingress routes to, each by its host and path, all running ``image``: a deploy moves them
    together, and its check covers each. They need ``ingress``. Default: none."""

    @property
    def pull_secret_name(self) -> str | None:
        """Name of the image pull secret the pods reference, when there is one."""
        return f"{self.name}-pull" if self.image_pull is not None else None

    def __post_init__(self) -> None:
        low, high = NODE_PORTS
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {self.replicas}")
        if self.node_port is not None and not low <= self.node_port <= high:
            raise ValueError(f"node_port must be from {low} to {high}, got {self.node_port}")
        if self.rollout_timeout_seconds < 1:
            raise ValueError(f"rollout_timeout_seconds must be at least 1, got {self.rollout_timeout_seconds}")
        if problems := routing_problems(self.name, self.ingress, self.services):
            raise ValueError("; ".join(problems))

    @property
    def routes(self) -> list[Route]:
        """Where the Ingress sends requests: the main service first, then each further one; none without an Ingress."""
        if self.ingress is None:
            return []
        return [
            Route(host=self.ingress.host, path=self.ingress.path, service=self.name),
            *(Route(host=s.host or self.ingress.host, path=s.path, service=s.name) for s in self.services),
        ]


class WebService(pulumi.ComponentResource):
    """Runs an HTTP container behind a NodePort Service, hardened and probed; further services beside it behind its
    Ingress."""

    namespace: pulumi.Output[str]
    """The namespace holding everything."""
    service_name: pulumi.Output[str]
    """Name of the main Service."""
    node_port: pulumi.Output[int]
    """Node port the main Service answers on (fixed, or the one the cluster chose)."""
    cluster_url: pulumi.Output[str]
    """URL of the main Service inside the cluster."""
    ingress_url: pulumi.Output[str] | None
    """The main service's public URL through the Ingress, when there is one."""
    service_urls: pulumi.Output[dict[str, str]] | None
    """Every service's URL through the Ingress (the main one's too), by Service name, when there is one."""
    verified_image_ref: pulumi.Output[str | None]
    """The image that passed the in-cluster check of every service; known once the check Jobs have completed."""
    verified_at: pulumi.Output[str | None]
    """When the last check passed (its Job's completion time, UTC)."""

    def __init__(self, name: str, args: WebServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hello-world:index:WebService", name, None, opts)
        labels = AppLabels(name=args.name, instance=args.instance)
        namespace_name = _namespace(name, args, labels, self)
        # Pods name the Secret, they do not hold an Output of it: the dependency is stated, so no pod
        # tries to pull before its credentials exist.
        credentials = (
            pull_secret(
                name,
                args.image_pull,
                k8s.meta.v1.ObjectMetaArgs(name=args.pull_secret_name, namespace=namespace_name, labels=labels.all),
                pulumi.ResourceOptions(parent=self),
            )
            if args.image_pull is not None
            else None
        )
        shared = _Shared(
            args=args,
            namespace=namespace_name,
            hardening=_hardening(args),
            version=pulumi.Output.from_input(args.image).apply(image_version),
            pulls_with=[credentials] if credentials is not None else [],
        )
        main = _serve(name, _Served.main(args), shared, self)
        # Their children are named from this component and the service, as one component's children must be.
        further = [
            _serve(f"{name}-{service.name}", _Served.further(service, args), shared, self) for service in args.services
        ]
        served = [main, *further]
        self.verified_image_ref, self.verified_at = _verdict([each.job for each in served], args.image)
        self.namespace = namespace_name
        self.service_name = main.service.metadata.name
        self.node_port = main.service.spec.ports[0].node_port
        self.cluster_url = pulumi.Output.concat(
            "http://", main.service.metadata.name, ".", namespace_name, ".svc.cluster.local"
        )
        self.ingress_url = None
        self.service_urls = None
        if args.ingress is not None:
            in_namespace = k8s.meta.v1.ObjectMetaArgs(name=args.name, namespace=namespace_name, labels=labels.all)
            routed_ingress(
                name, args.ingress, in_namespace, args.routes, [each.service for each in served], self, SERVICE_PORT
            )
            self.ingress_url = pulumi.Output.from_input(args.ingress.url)
            self.service_urls = pulumi.Output.from_input(
                {route.service: args.ingress.url_for(route.host, route.path) for route in args.routes}
            )

        self.register_outputs(
            {
                "namespace": self.namespace,
                "service_name": self.service_name,
                "node_port": self.node_port,
                "cluster_url": self.cluster_url,
                "ingress_url": self.ingress_url,
                "service_urls": self.service_urls,
                "verified_image_ref": self.verified_image_ref,
                "verified_at": self.verified_at,
            }
        )


@dataclass(frozen=True, kw_only=True)
class _Shared:
    """What every service of one WebService shares: its settings, namespace, image and confinement."""

    args: WebServiceArgs
    namespace: pulumi.Output[str]
    hardening: Hardening
    version: pulumi.Output[str]
    """The image's label value (:func:`image_version`)."""
    pulls_with: list[pulumi.Resource]
    """The image pull Secret, when there is one: every pod waits for it."""


@dataclass(frozen=True, kw_only=True)
class _Served:
    """One service: its name, pods, how it is exposed and what its check expects."""

    name: str
    replicas: int
    message: str | None
    """The pods' ``MESSAGE``; ``None``: the app's own answer."""
    node_port: int | None
    exposed: bool
    """On a node port (the main service); a further service is a ClusterIP reached through the Ingress."""
    verification: VerificationArgs

    @classmethod
    def main(cls, args: WebServiceArgs) -> _Served:
        return cls(
            name=args.name,
            replicas=args.replicas,
            message=None,
            node_port=args.node_port,
            exposed=True,
            verification=args.verification,
        )

    @classmethod
    def further(cls, service: RoutedServiceArgs, args: WebServiceArgs) -> _Served:
        check = args.verification
        if service.message is not None:
            check = replace(check, body=service.message)
        return cls(
            name=service.name,
            replicas=service.replicas or args.replicas,
            message=service.message,
            node_port=None,
            exposed=False,
            verification=check,
        )


@dataclass(frozen=True, kw_only=True)
class _Serving:
    """What :func:`_serve` made that the component reads back."""

    service: k8s.core.v1.Service
    job: k8s.batch.v1.Job


def _serve(name: str, served: _Served, shared: _Shared, parent: pulumi.Resource) -> _Serving:
    """One service's Deployment, Service, NetworkPolicies, disruption budget and check; children named from ``name``."""
    args = shared.args
    labels = AppLabels(name=served.name, instance=args.instance)
    namespace_name = shared.namespace
    in_namespace = k8s.meta.v1.ObjectMetaArgs(name=served.name, namespace=namespace_name, labels=labels.all)
    timeout = f"{args.rollout_timeout_seconds}s"
    version = shared.version
    pod = _pod_spec(args, served, labels, shared.hardening)
    deployment = k8s.apps.v1.Deployment(
        f"{name}-deployment",
        metadata=in_namespace,
        spec=_deployment_spec(args, served, labels, version, pod),
        opts=pulumi.ResourceOptions(
            parent=parent,
            custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
            depends_on=shared.pulls_with,
        ),
    )
    service = k8s.core.v1.Service(
        f"{name}-service",
        metadata=in_namespace,
        spec=k8s.core.v1.ServiceSpecArgs(
            type="NodePort" if served.exposed else None,
            selector=labels.selector,
            ports=[
                k8s.core.v1.ServicePortArgs(
                    name="http", port=SERVICE_PORT, target_port="http", node_port=served.node_port
                )
            ],
        ),
        # The provider waits for the Service's endpoints; without this, a first rollout whose pods never
        # get ready would be reported after the provider's 10 minutes instead of the rollout timeout.
        opts=pulumi.ResourceOptions(
            parent=parent, custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)
        ),
    )
    k8s.networking.v1.NetworkPolicy(
        f"{name}-network-policy",
        metadata=in_namespace,
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels.selector),
            policy_types=["Ingress"],
            # Clients reach the pods only on "http" (node port, Ingress controller).
            ingress=[
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port="http", protocol="TCP")]
                )
            ],
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # The app opens no connection of its own: all egress is denied. A policy of its own, because
    # an enforcer that evaluates both types as one chain (kube-router 2.1) would let the ingress
    # rule above pass the app's own connections to its siblings' http port.
    k8s.networking.v1.NetworkPolicy(
        f"{name}-deny-egress",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"{served.name}{DENY_EGRESS_SUFFIX}", namespace=namespace_name, labels=labels.all
        ),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels.selector), policy_types=["Egress"]
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    if served.replicas >= 2:
        # Voluntary disruptions (drains, evictions) take one pod at a time: prod keeps replicas - 1.
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-disruption-budget",
            metadata=in_namespace,
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels.selector)
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )
    checker = AppLabels(name=f"{served.name}{VERIFY_SUFFIX}", instance=args.instance, component="verify")
    # The check asks this Service, which selects the pods of the image under test only: through the app's
    # Service it could be answered by an old pod that is still draining, and pass an image that fails.
    under_test = k8s.core.v1.Service(
        f"{name}-verify-target",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"{served.name}{VERIFY_TARGET_SUFFIX}",
            namespace=namespace_name,
            labels=labels.all,
            # Not awaited: its pods are the rollout's, which the Deployment's await already reports on
            # (a rollout that never gets ready must be named as such, not as a Service without endpoints).
            annotations={"pulumi.com/skipAwait": "true"},
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            selector=version.apply(lambda v: {**labels.selector, VERSION_LABEL: v}),
            ports=[k8s.core.v1.ServicePortArgs(name="http", port=SERVICE_PORT, target_port="http")],
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    verification_network_policy(
        name,
        k8s.meta.v1.ObjectMetaArgs(name=checker.name, namespace=namespace_name, labels=checker.all),
        checker.selector,
        labels.selector,
        pulumi.ResourceOptions(parent=parent),
    )
    check = served.verification
    job = verification_job(
        name,
        check,
        args.image,
        shared.hardening,
        args.pull_secret_name,
        # No name: each new image gets a new Job, created before the old one is deleted. Its labels
        # differ from the Service's selector, so no traffic is ever sent to it.
        k8s.meta.v1.ObjectMetaArgs(namespace=namespace_name, labels=checker.all),
        # A Service that does not exist yet (a preview) has no address: the target is then unknown.
        under_test.spec.cluster_ip.apply(lambda ip: f"http://{ip}:{SERVICE_PORT}{check.path}" if ip else unknown()),
        pulumi.ResourceOptions(parent=parent, depends_on=[deployment, service, under_test, *shared.pulls_with]),
    )
    return _Serving(service=service, job=job)


def _verdict(
    jobs: Sequence[k8s.batch.v1.Job], image: pulumi.Input[str]
) -> tuple[pulumi.Output[str | None], pulumi.Output[str | None]]:
    """The image every check passed, and when the last one did; ``None`` for both until each Job has succeeded."""
    outcomes = [_outcome(job) for job in jobs]
    every = pulumi.Output.all(*(passed for passed, _ in outcomes)).apply(all)
    verified_image_ref = pulumi.Output.all(every, image).apply(lambda v: v[1] if v[0] else None)
    verified_at = pulumi.Output.all(every, *(at for _, at in outcomes)).apply(
        lambda v: max((at for at in v[1:] if at), default=None) if v[0] else None
    )
    return verified_image_ref, verified_at


def _outcome(job: k8s.batch.v1.Job) -> tuple[pulumi.Output[bool], pulumi.Output[str | None]]:
    """Whether one check Job succeeded, and when it completed."""
    # No status when nothing ran the Job (render mode): then nothing was verified.
    ran = job.status.apply(lambda status: status is not None)
    completed: pulumi.Output[str | None] = ran.apply(lambda yes: job.status.completion_time if yes else None)
    passed: pulumi.Output[bool] = ran.apply(lambda yes: job.status.succeeded.apply(bool) if yes else False)
    return passed, completed


def _namespace(name: str, args: WebServiceArgs, labels: AppLabels, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The namespace's name, once it exists: created here, or given (and then its owner's to label)."""
    if not args.create_namespace:
        return pulumi.Output.from_input(args.namespace)
    namespace = k8s.core.v1.Namespace(
        f"{name}-namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=args.namespace, labels={**labels.all, **POD_SECURITY_LABELS}),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return namespace.metadata.name


def _hardening(args: WebServiceArgs) -> Hardening:
    return Hardening(
        pod=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_USER,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        container=k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            privileged=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        ),
        resources=args.resources.requirements,
    )


def _pod_spec(
    args: WebServiceArgs, served: _Served, labels: AppLabels, hardening: Hardening
) -> k8s.core.v1.PodSpecArgs:
    ready = k8s.core.v1.HTTPGetActionArgs(path=HEALTH_PATH, port="http")
    alive = k8s.core.v1.HTTPGetActionArgs(path=LIVENESS_PATH, port="http")
    return k8s.core.v1.PodSpecArgs(
        # Soft: a single-node cluster still schedules every replica.
        topology_spread_constraints=[
            k8s.core.v1.TopologySpreadConstraintArgs(
                max_skew=1,
                topology_key="kubernetes.io/hostname",
                when_unsatisfiable="ScheduleAnyway",
                label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels.selector),
            )
        ],
        # The app never calls the Kubernetes API.
        automount_service_account_token=False,
        image_pull_secrets=pull_secret_refs(args.pull_secret_name),
        termination_grace_period_seconds=TERMINATION_GRACE_SECONDS,
        security_context=hardening.pod,
        containers=[
            k8s.core.v1.ContainerArgs(
                name=served.name,
                image=args.image,
                ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=CONTAINER_PORT)],
                env=[
                    k8s.core.v1.EnvVarArgs(name="PORT", value=str(CONTAINER_PORT)),
                    k8s.core.v1.EnvVarArgs(name="SHUTDOWN_DRAIN_SECONDS", value=str(SHUTDOWN_DRAIN_SECONDS)),
                    *([k8s.core.v1.EnvVarArgs(name="MESSAGE", value=served.message)] if served.message else []),
                ],
                # Readiness is asked every second: a new pod joins the Service, and its rollout moves on, as
                # soon as it answers. Liveness asks another path, which stays healthy while the pod drains, and
                # has more slack, so a slow moment or a drain takes a pod out of the Service without killing it.
                readiness_probe=k8s.core.v1.ProbeArgs(
                    http_get=ready, period_seconds=READINESS_PERIOD_SECONDS, failure_threshold=3
                ),
                liveness_probe=k8s.core.v1.ProbeArgs(
                    http_get=alive, period_seconds=10, failure_threshold=6, timeout_seconds=3
                ),
                # The built-in sleep action needs no shell in the image.
                lifecycle=k8s.core.v1.LifecycleArgs(
                    pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                        sleep=k8s.core.v1.SleepActionArgs(seconds=PRE_STOP_SECONDS)
                    )
                ),
                resources=hardening.resources,
                security_context=hardening.container,
            )
        ],
    )


def _deployment_spec(
    args: WebServiceArgs,
    served: _Served,
    labels: AppLabels,
    version: pulumi.Output[str],
    pod: k8s.core.v1.PodSpecArgs,
) -> k8s.apps.v1.DeploymentSpecArgs:
    return k8s.apps.v1.DeploymentSpecArgs(
        replicas=served.replicas,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels.selector),
        min_ready_seconds=MIN_READY_SECONDS,
        progress_deadline_seconds=args.rollout_timeout_seconds,
        # Start every new pod at once and never go below the desired count: a rollout takes one pod's start
        # instead of one per replica, no capacity is lost, and new pods that never become ready stop it while
        # the old ones keep serving.
        strategy=k8s.apps.v1.DeploymentStrategyArgs(
            type="RollingUpdate",
            rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge="100%"),
        ),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=version.apply(lambda v: {**labels.all, VERSION_LABEL: v})),
            spec=pod,
        ),
    )


def image_version(image: str) -> str:
    """A label value naming an image: its digest's first 12 hex digits (as Docker shortens IDs), else a hash."""
    digest = image.rpartition("@")[2]
    hex_digits = (
        digest.removeprefix("sha256:") if DIGEST.fullmatch(digest) else hashlib.sha256(image.encode()).hexdigest()
    )
    return hex_digits[:12]
