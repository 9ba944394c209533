"""WebService: the Kubernetes side of the app: namespace, Deployment, NodePort Service, NetworkPolicy, Ingress."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

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
DEFAULT_INGRESS_PATH = "/"
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
    """Secret with the certificate for ``host``; default: no TLS."""

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_secret_name else "http"
        return f"{scheme}://{self.host}{self.path}"


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


class WebService(pulumi.ComponentResource):
    """Runs an HTTP container behind a NodePort Service, hardened and probed."""

    namespace: pulumi.Output[str]
    """The namespace holding everything."""
    service_name: pulumi.Output[str]
    """Name of the Service."""
    node_port: pulumi.Output[int]
    """Node port the Service answers on (fixed, or the one the cluster chose)."""
    cluster_url: pulumi.Output[str]
    """URL of the Service inside the cluster."""
    ingress_url: pulumi.Output[str] | None
    """Public URL through the Ingress, when there is one."""
    verified_image_ref: pulumi.Output[str | None]
    """The image that passed the in-cluster check; known once the check Job has completed."""
    verified_at: pulumi.Output[str | None]
    """When the check passed (the Job's completion time, UTC)."""

    def __init__(self, name: str, args: WebServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hello-world:index:WebService", name, None, opts)
        labels = AppLabels(name=args.name, instance=args.instance)

        namespace_name = _namespace(name, args, labels, self)
        in_namespace = k8s.meta.v1.ObjectMetaArgs(name=args.name, namespace=namespace_name, labels=labels.all)
        timeout = f"{args.rollout_timeout_seconds}s"
        hardening = _hardening(args)
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
        pulls_with = [credentials] if credentials is not None else []
        pod = _pod_spec(args, labels, hardening)
        version = pulumi.Output.from_input(args.image).apply(image_version)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=in_namespace,
            spec=_deployment_spec(args, labels, version, pod),
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
                depends_on=pulls_with,
            ),
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=in_namespace,
            spec=k8s.core.v1.ServiceSpecArgs(
                type="NodePort",
                selector=labels.selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http", port=SERVICE_PORT, target_port="http", node_port=args.node_port
                    )
                ],
            ),
            # The provider waits for the Service's endpoints; without this, a first rollout whose pods never
            # get ready would be reported after the provider's 10 minutes instead of the rollout timeout.
            opts=pulumi.ResourceOptions(
                parent=self, custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)
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
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The app opens no connection of its own: all egress is denied. A policy of its own, because
        # an enforcer that evaluates both types as one chain (kube-router 2.1) would let the ingress
        # rule above pass the app's own connections to its siblings' http port.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-deny-egress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{args.name}-deny-egress", namespace=namespace_name, labels=labels.all
            ),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels.selector), policy_types=["Egress"]
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.replicas >= 2:
            # Voluntary disruptions (drains, evictions) take one pod at a time: prod keeps replicas - 1.
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-disruption-budget",
                metadata=in_namespace,
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels.selector)
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        checker = AppLabels(name=f"{args.name}-verify", instance=args.instance, component="verify")
        # The check asks this Service, which selects the pods of the image under test only: through the app's
        # Service it could be answered by an old pod that is still draining, and pass an image that fails.
        under_test = k8s.core.v1.Service(
            f"{name}-verify-target",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{args.name}-verify-target",
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
            opts=pulumi.ResourceOptions(parent=self),
        )
        verification_network_policy(
            name,
            k8s.meta.v1.ObjectMetaArgs(name=f"{args.name}-verify", namespace=namespace_name, labels=checker.all),
            checker.selector,
            labels.selector,
            pulumi.ResourceOptions(parent=self),
        )
        job = verification_job(
            name,
            args.verification,
            args.image,
            hardening,
            args.pull_secret_name,
            # No name: each new image gets a new Job, created before the old one is deleted. Its labels
            # differ from the Service's selector, so no traffic is ever sent to it.
            k8s.meta.v1.ObjectMetaArgs(namespace=namespace_name, labels=checker.all),
            # A Service that does not exist yet (a preview) has no address: the target is then unknown.
            under_test.spec.cluster_ip.apply(
                lambda ip: f"http://{ip}:{SERVICE_PORT}{args.verification.path}" if ip else unknown()
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[deployment, service, under_test, *pulls_with]),
        )
        # No status when nothing ran the Job (render mode): then nothing was verified.
        ran = job.status.apply(lambda status: status is not None)
        self.verified_at = ran.apply(lambda yes: job.status.completion_time if yes else None)
        passed = ran.apply(lambda yes: job.status.succeeded.apply(bool) if yes else False)
        self.verified_image_ref = pulumi.Output.all(passed, args.image).apply(lambda v: v[1] if v[0] else None)
        self.namespace = namespace_name
        self.service_name = service.metadata.name
        self.node_port = service.spec.ports[0].node_port
        self.cluster_url = pulumi.Output.concat(
            "http://", service.metadata.name, ".", namespace_name, ".svc.cluster.local"
        )
        self.ingress_url = None
        if args.ingress is not None:
            _ingress(name, args, args.ingress, in_namespace, service, self)
            self.ingress_url = pulumi.Output.from_input(args.ingress.url)

        self.register_outputs(
            {
                "namespace": self.namespace,
                "service_name": self.service_name,
                "node_port": self.node_port,
                "cluster_url": self.cluster_url,
                "ingress_url": self.ingress_url,
                "verified_image_ref": self.verified_image_ref,
                "verified_at": self.verified_at,
            }
        )


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


def _pod_spec(args: WebServiceArgs, labels: AppLabels, hardening: Hardening) -> k8s.core.v1.PodSpecArgs:
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
                name=args.name,
                image=args.image,
                ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=CONTAINER_PORT)],
                env=[
                    k8s.core.v1.EnvVarArgs(name="PORT", value=str(CONTAINER_PORT)),
                    k8s.core.v1.EnvVarArgs(name="SHUTDOWN_DRAIN_SECONDS", value=str(SHUTDOWN_DRAIN_SECONDS)),
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
    args: WebServiceArgs, labels: AppLabels, version: pulumi.Output[str], pod: k8s.core.v1.PodSpecArgs
) -> k8s.apps.v1.DeploymentSpecArgs:
    return k8s.apps.v1.DeploymentSpecArgs(
        replicas=args.replicas,
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


def _ingress(
    name: str,
    args: WebServiceArgs,
    ingress: IngressArgs,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    service: k8s.core.v1.Service,
    parent: pulumi.Resource,
) -> k8s.networking.v1.Ingress:
    backend = k8s.networking.v1.IngressBackendArgs(
        service=k8s.networking.v1.IngressServiceBackendArgs(
            name=service.metadata.name,
            port=k8s.networking.v1.ServiceBackendPortArgs(number=SERVICE_PORT),
        )
    )
    return k8s.networking.v1.Ingress(
        f"{name}-ingress",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=args.name,
            namespace=metadata.namespace,
            labels=metadata.labels,
            # Pulumi would otherwise wait for a load balancer address that only an
            # ingress controller assigns; local and NodePort clusters have none.
            annotations={"pulumi.com/skipAwait": "true"},
        ),
        spec=k8s.networking.v1.IngressSpecArgs(
            ingress_class_name=ingress.class_name,
            rules=[
                k8s.networking.v1.IngressRuleArgs(
                    host=ingress.host,
                    http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                        paths=[
                            k8s.networking.v1.HTTPIngressPathArgs(
                                path=ingress.path, path_type="Prefix", backend=backend
                            )
                        ]
                    ),
                )
            ],
            tls=(
                [k8s.networking.v1.IngressTLSArgs(hosts=[ingress.host], secret_name=ingress.tls_secret_name)]
                if ingress.tls_secret_name
                else None
            ),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[service]),
    )


def image_version(image: str) -> str:
    """A label value naming an image: its digest's first 12 hex digits (as Docker shortens IDs), else a hash."""
    digest = image.rpartition("@")[2]
    hex_digits = (
        digest.removeprefix("sha256:") if DIGEST.fullmatch(digest) else hashlib.sha256(image.encode()).hexdigest()
    )
    return hex_digits[:12]
