"""The check every deploy must pass: a Job, inside the cluster, that asks the new pods' Service and reads the answer.

The Job runs a checker image of its own, never the image under test: an image could otherwise bring a ``node``
that passes any check, and pass itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.pull_secret import pull_secret_refs
from image_ref import PINNED_FORM, parse_image_ref

DEFAULT_PATH = "/"
DEFAULT_STATUS = 200
DEFAULT_BODY = "Hello World"
DEFAULT_CHECKER_IMAGE = "docker.io/library/node@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d"
"""The official Node.js image the app's Dockerfile builds on by default, ``node:24-bookworm-slim`` (Node 24.18.0),
pinned by digest: the checker runs ``node -e`` and needs nothing else. To move to a newer one, pin what
``docker buildx imagetools inspect node:24-bookworm-slim`` shows. Stacks on the local platform run its own Node
base image instead, pinned by the digest this machine's registry serves (settings/local_platform.py)."""
TIMEOUT_SECONDS = 60
"""How long the Job may run in all; each request waits at most 5 s."""
# Any image with `node` on its PATH runs it, as a non-root user on a read-only root filesystem. A few tries,
# spaced, cover a Service whose endpoints are still being programmed.
_CHECK = """
const {TARGET, EXPECT_STATUS, EXPECT_BODY} = process.env;
let tries = 5;
const attempt = () => require('http').get(TARGET, {timeout: 5000}, (res) => {
  let body = '';
  res.setEncoding('utf8').on('data', (chunk) => { body += chunk; }).on('end', () => {
    const ok = res.statusCode === Number(EXPECT_STATUS) && body.includes(EXPECT_BODY);
    console.log(`${TARGET}: status ${res.statusCode}, body ${JSON.stringify(body.slice(0, 200))}`);
    ok ? process.exit(0) : retry(`expected status ${EXPECT_STATUS} and ${JSON.stringify(EXPECT_BODY)}`);
  });
}).on('timeout', function () { this.destroy(new Error('timed out')); }).on('error', (e) => retry(e.message));
const retry = (why) => {
  console.log(`check failed: ${why}`);
  --tries > 0 ? setTimeout(attempt, 2000) : process.exit(1);
};
attempt();
"""


@dataclass(frozen=True, kw_only=True)
class VerificationArgs:
    """What a healthy deploy answers."""

    path: str = DEFAULT_PATH
    """Path requested from the pods of the image under test. Default ``/``."""
    status: int = DEFAULT_STATUS
    """Expected HTTP status. Default 200."""
    body: str = DEFAULT_BODY
    """Text the answer must contain. Default ``Hello World``."""
    checker_image: str = DEFAULT_CHECKER_IMAGE
    """The image the check runs in, pinned by digest; it must have ``node`` on its PATH and is never the image
    under test. Default :data:`DEFAULT_CHECKER_IMAGE`, the official ``node:24-bookworm-slim``."""

    def __post_init__(self) -> None:
        if isinstance(problem := parse_image_ref(self.checker_image), str):
            raise ValueError(f"checker_image must be {PINNED_FORM} ({problem}), got {self.checker_image!r}")


@dataclass(frozen=True, kw_only=True)
class Hardening:
    """The app container's confinement, which the check's container shares (its image has no say in it)."""

    pod: k8s.core.v1.PodSecurityContextArgs
    container: k8s.core.v1.SecurityContextArgs
    resources: k8s.core.v1.ResourceRequirementsArgs


def verification_network_policy(
    name: str,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    checker: Mapping[str, str],
    app: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.NetworkPolicy:
    """The check's pod takes no connection and opens one kind only: to the app's pods, on their http port."""
    return k8s.networking.v1.NetworkPolicy(
        f"{name}-verify-network-policy",
        metadata=metadata,
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(checker)),
            policy_types=["Ingress", "Egress"],
            egress=[
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                    to=[
                        k8s.networking.v1.NetworkPolicyPeerArgs(
                            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(app))
                        )
                    ],
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port="http", protocol="TCP")],
                )
            ],
        ),
        opts=opts,
    )


def verification_job(
    name: str,
    check: VerificationArgs,
    image: pulumi.Input[str],
    hardening: Hardening,
    pull_secret_name: str | None,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    target: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """A Job that runs the check from ``check.checker_image``, as confined as the app, aimed at ``target``, the
    pods of ``image``.

    It pulls as the app's pods do, with the image pull secret ``pull_secret_name`` when there is one (the kubelet
    offers it only to its own registry).

    Its pod template names ``image``, so a new digest replaces the Job and the check runs again;
    the provider waits for the Job and fails the update as soon as it fails.

    Raises:
        ValueError: When the checker image is the image under test, which would then check itself.
    """
    if image == check.checker_image:
        raise ValueError(f"verification.checker_image must be another image than the one under test, got {image}")
    checker = k8s.core.v1.ContainerArgs(
        name="verify",
        image=check.checker_image,
        command=["node", "-e", _CHECK],
        env=[
            # What is checked, named: the evidence a passed check signs is about this image (ops/evidence.py).
            k8s.core.v1.EnvVarArgs(name="IMAGE_UNDER_TEST", value=image),
            k8s.core.v1.EnvVarArgs(name="TARGET", value=target),
            k8s.core.v1.EnvVarArgs(name="EXPECT_STATUS", value=str(check.status)),
            k8s.core.v1.EnvVarArgs(name="EXPECT_BODY", value=check.body),
        ],
        resources=hardening.resources,
        security_context=hardening.container,
    )
    return k8s.batch.v1.Job(
        f"{name}-verify",
        metadata=metadata,
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=0,
            active_deadline_seconds=TIMEOUT_SECONDS,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=metadata.labels),
                spec=k8s.core.v1.PodSpecArgs(
                    restart_policy="Never",
                    automount_service_account_token=False,
                    security_context=hardening.pod,
                    image_pull_secrets=pull_secret_refs(pull_secret_name),
                    containers=[checker],
                ),
            ),
        ),
        opts=opts,
    )
