"""Before a preview or an up: the IngressClass and the TLS Secret a stack's Ingress names must be in its cluster.

Neither is the stack's own, so the program cannot see them: an Ingress that names a class no controller serves is
created and never answers, and one whose Secret is missing is served with another certificate. The cluster is asked
with kubectl, through the stack's kubeconfig and context, so whatever way that kubeconfig signs in works. A cluster
that cannot be asked (unreachable, no kubectl, no right to read) is said, not refused: a preview still shows the
changes, and an up fails on its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops import to_stderr
from settings import decoded_object, default_namespace
from settings.local_platform import LOCAL_KUBECONFIG
from settings.stack_files import StackFileError, read_known_settings

KUBECTL_TIMEOUT_SECONDS = 20
"""How long kubectl may take to answer, all in; it gives the API server half of it."""
INGRESS_CLASS = "ingressclass"
SECRET = "secret"
NAMESPACE = "namespace"


class IngressObjectsMissingError(StackFileError):
    """The stack's Ingress names an IngressClass or a TLS Secret its cluster does not have; nothing ran (exit 2)."""


class ClusterUnaskedError(Exception):
    """The cluster could not say which of the objects it has."""


@dataclass(frozen=True, kw_only=True)
class ClusterObject:
    """An object of the cluster, as kubectl names it (``secret/hello-tls``)."""

    kind: str
    name: str

    @property
    def reference(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, kw_only=True)
class IngressNeeds:
    """What a stack's Ingress needs its cluster to hold, and where to ask."""

    kubeconfig: str
    context: str | None
    namespace: str
    creates_namespace: bool
    class_name: str | None
    tls_secret_name: str | None


Find = Callable[[IngressNeeds, Sequence[ClusterObject]], set[ClusterObject]]
"""Asks the cluster which of the objects it has (:func:`kubectl_find`).

Raises ClusterUnaskedError when it cannot say."""


def ingress_needs(settings: Mapping[str, Any], stack: str, work_dir: Path) -> IngressNeeds | None:
    """What the stack's Ingress names outside the stack; ``None`` when it names nothing or renders manifests.

    Values that are not what the settings expect count as none: the program refuses them anyway.
    """
    ingress = decoded_object(settings.get("ingress"))
    cluster = decoded_object(settings.get("cluster"))
    cluster = cluster if isinstance(cluster, dict) else {}
    if not isinstance(ingress, dict) or str(ingress.get("enabled")).lower() != "true":
        return None
    if cluster.get("renderTo") is not None:
        return None  # a render asks no cluster
    class_name, secret = ingress.get("className"), ingress.get("tlsSecretName")
    if not isinstance(class_name, str) and not isinstance(secret, str):
        return None
    kubeconfig = cluster.get("kubeconfig")
    kubeconfig = kubeconfig if isinstance(kubeconfig, str) and kubeconfig else LOCAL_KUBECONFIG
    context = cluster.get("context")
    namespace = settings.get("namespace")
    return IngressNeeds(
        kubeconfig=str(work_dir / os.path.expanduser(kubeconfig)),
        context=context if isinstance(context, str) and context else None,
        namespace=namespace if isinstance(namespace, str) and namespace else default_namespace(stack),
        creates_namespace=str(cluster.get("createNamespace", True)).lower() != "false",
        class_name=class_name if isinstance(class_name, str) else None,
        tls_secret_name=secret if isinstance(secret, str) else None,
    )


def check_ingress_objects(
    settings: Mapping[str, Any],
    stack: str,
    work_dir: Path,
    *,
    say: Callable[[str], None],
    find: Find | None = None,
) -> None:
    """The IngressClass (``ingress.className``) and TLS Secret (``ingress.tlsSecretName``) must be in the cluster.

    Raises:
        IngressObjectsMissingError: Naming each that is missing, and how to make it; nothing ran.
    """
    needs = ingress_needs(settings, stack, work_dir)
    if needs is None:
        return
    wanted = []
    if needs.class_name is not None:
        wanted.append(ClusterObject(kind=INGRESS_CLASS, name=needs.class_name))
    if needs.tls_secret_name is not None:
        wanted.append(ClusterObject(kind=SECRET, name=needs.tls_secret_name))
        if needs.creates_namespace:
            # Whether the namespace is there yet says why its Secret cannot be.
            wanted.append(ClusterObject(kind=NAMESPACE, name=needs.namespace))
    ask = find or kubectl_find
    try:
        found = ask(needs, wanted)
        problems = _problems(needs, found, ask)
    except ClusterUnaskedError as error:
        say(f"warning: the IngressClass and TLS Secret stack {stack!r} names were not checked: {error}")
        return
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise IngressObjectsMissingError(
            f"the Ingress of stack {stack!r} names what its cluster does not have, so nothing ran:\n{lines}"
        )


def check_stack_ingress(stack: str, work_dir: Path) -> None:
    """:func:`check_ingress_objects` of the stack's file as it is, what could not be asked said on stderr: what a
    preview, an up, a review and a promotion run first.

    Raises:
        IngressObjectsMissingError: As :func:`check_ingress_objects`.
        StackFileError: When the stack's file is missing or broken.
    """
    check_ingress_objects(read_known_settings(work_dir, stack), stack, work_dir, say=to_stderr)


def _problems(needs: IngressNeeds, found: set[ClusterObject], ask: Find) -> list[str]:
    problems = []
    if needs.class_name is not None and ClusterObject(kind=INGRESS_CLASS, name=needs.class_name) not in found:
        classes = sorted(found.name for found in ask(needs, [ClusterObject(kind=INGRESS_CLASS, name="")]))
        has = f"it has {', '.join(classes)}" if classes else "it has none: no ingress controller is installed"
        problems.append(
            f"ingress.className must be an IngressClass of the stack's cluster ({has}), got {needs.class_name!r}"
        )
    secret = needs.tls_secret_name
    if secret is not None and ClusterObject(kind=SECRET, name=secret) not in found:
        namespace = needs.namespace
        if needs.creates_namespace and ClusterObject(kind=NAMESPACE, name=namespace) not in found:
            fix = (
                "the stack creates that namespace, so no Secret can be there before its first deploy: deploy into a "
                "namespace that exists and holds the Secret (namespace, cluster.createNamespace: false)"
            )
        else:
            fix = f"make it first: kubectl -n {namespace} create secret tls {secret} --cert=<file> --key=<file>"
        problems.append(
            f"ingress.tlsSecretName must be a Secret in namespace {namespace!r} of the stack's cluster, "
            f"got {secret!r}, which is not there; {fix}"
        )
    return problems


def kubectl_find(needs: IngressNeeds, wanted: Sequence[ClusterObject]) -> set[ClusterObject]:
    """The objects of ``wanted`` the cluster has, asked in one ``kubectl get``; an object with an empty name asks
    for every object of its kind.

    Raises:
        ClusterUnaskedError: When kubectl is missing, times out or fails (the cluster is down, a right is missing).
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ClusterUnaskedError("kubectl is not on PATH")
    every_of = sorted({each.kind for each in wanted if not each.name})
    named = [each.reference for each in wanted if each.name]
    command = [kubectl, "--kubeconfig", needs.kubeconfig, *(["--context", needs.context] if needs.context else [])]
    command += ["--namespace", needs.namespace, f"--request-timeout={KUBECTL_TIMEOUT_SECONDS // 2}s"]
    command += ["get", *(every_of or named), "--ignore-not-found", "--output=name"]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=KUBECTL_TIMEOUT_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as error:
        raise ClusterUnaskedError(f"kubectl did not answer within {KUBECTL_TIMEOUT_SECONDS} s") from error
    if result.returncode != 0:
        said = result.stderr.strip().splitlines()
        raise ClusterUnaskedError(f"kubectl failed: {said[-1] if said else f'exit {result.returncode}'}")
    return {_named(line) for line in result.stdout.split()}


def _named(line: str) -> ClusterObject:
    """An object from kubectl's ``--output=name`` line, such as ``ingressclass.networking.k8s.io/traefik``."""
    resource, _, name = line.partition("/")
    return ClusterObject(kind=resource.partition(".")[0], name=name)
