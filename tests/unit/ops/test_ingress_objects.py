"""A preview, up or promotion of a stack whose Ingress names an IngressClass or a TLS Secret asks its cluster for
them first, and runs nothing when one is missing. Asked through a stand-in kubectl; no cluster, no engine."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ops.ingress_objects import (
    ClusterObject,
    ClusterUnaskedError,
    IngressNeeds,
    IngressObjectsMissingError,
    check_ingress_objects,
    ingress_needs,
    kubectl_find,
)
from settings.local_platform import LOCAL_KUBECONFIG
from tests.unit.ops.stand_in_kubectl import install_kubectl
from tests.unit.ops.test_deploy import ops_project
from tests.unit.ops.test_promotion import Promotion, fake_registry, promotion  # noqa: F401 - fixtures

PROD_INGRESS = {"enabled": True, "host": "hello.example.com", "className": "nginx", "tlsSecretName": "hello-tls"}


def holding(*objects: str, classes: Sequence[str] = ()) -> Any:
    """A cluster that holds ``objects`` (``kind/name``) and the IngressClasses ``classes``."""

    def find(needs: IngressNeeds, wanted: Sequence[ClusterObject]) -> set[ClusterObject]:
        if [each.name for each in wanted] == [""]:
            return {ClusterObject(kind="ingressclass", name=name) for name in classes}
        return {each for each in wanted if each.reference in objects}

    return find


def problems(settings: dict[str, Any], find: Any) -> str:
    with pytest.raises(IngressObjectsMissingError) as raised:
        check_ingress_objects(settings, "prod", Path("/project"), say=print, find=find)
    return str(raised.value)


def test_a_cluster_holding_the_class_and_the_secret_passes() -> None:
    found = holding("ingressclass/nginx", "secret/hello-tls", "namespace/hello-world-prod")

    check_ingress_objects({"ingress": PROD_INGRESS}, "prod", Path("/project"), say=print, find=found)


def test_a_class_the_cluster_lacks_is_named_with_the_classes_it_has() -> None:
    found = holding("secret/hello-tls", "namespace/hello-world-prod", classes=["traefik"])

    assert problems({"ingress": PROD_INGRESS}, found) == (
        "the Ingress of stack 'prod' names what its cluster does not have, so nothing ran:\n"
        "  - ingress.className must be an IngressClass of the stack's cluster (it has traefik), got 'nginx'"
    )


def test_a_cluster_without_any_class_says_no_controller_is_installed() -> None:
    found = holding("secret/hello-tls", "namespace/hello-world-prod")

    assert "(it has none: no ingress controller is installed), got 'nginx'" in problems(
        {"ingress": PROD_INGRESS}, found
    )


def test_a_missing_secret_in_a_namespace_that_exists_says_how_to_make_it() -> None:
    found = holding("ingressclass/nginx", "namespace/hello-world-prod")

    assert problems({"ingress": PROD_INGRESS}, found).endswith(
        "  - ingress.tlsSecretName must be a Secret in namespace 'hello-world-prod' of the stack's cluster, got "
        "'hello-tls', which is not there; make it first: kubectl -n hello-world-prod create secret tls hello-tls "
        "--cert=<file> --key=<file>"
    )


def test_a_secret_in_a_namespace_the_stack_creates_cannot_be_there_yet_and_that_is_said() -> None:
    found = holding("ingressclass/nginx")

    assert "the stack creates that namespace, so no Secret can be there before its first deploy" in problems(
        {"ingress": PROD_INGRESS, "namespace": "shop"}, found
    )


def test_both_missing_are_listed_at_once() -> None:
    message = problems({"ingress": PROD_INGRESS}, holding(classes=["traefik"]))

    assert [line.split(" ")[3] for line in message.splitlines()[1:]] == ["ingress.className", "ingress.tlsSecretName"]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"ingress": {**PROD_INGRESS, "enabled": False}},
        {"ingress": {"enabled": True, "host": "hello.example.com"}},
        {"ingress": PROD_INGRESS, "cluster": {"renderTo": "/out"}},
    ],
    ids=["no-ingress", "ingress-disabled", "no-class-no-secret", "render"],
)
def test_nothing_is_asked_when_the_ingress_names_nothing_outside_the_stack_or_renders(settings: dict[str, Any]) -> None:
    assert ingress_needs(settings, "prod", Path("/project")) is None


def test_the_cluster_is_asked_where_and_as_the_stack_deploys() -> None:
    settings = {
        "ingress": json.dumps(PROD_INGRESS),  # as the engine passes it
        "namespace": "shop",
        "cluster": {"kubeconfig": "kube/config", "context": "team", "createNamespace": False},
    }

    assert ingress_needs(settings, "prod", Path("/project")) == IngressNeeds(
        kubeconfig="/project/kube/config",
        context="team",
        namespace="shop",
        creates_namespace=False,
        class_name="nginx",
        tls_secret_name="hello-tls",
    )
    assert ingress_needs({"ingress": PROD_INGRESS}, "prod", Path("/p")) == IngressNeeds(
        kubeconfig=LOCAL_KUBECONFIG,
        context=None,
        namespace="hello-world-prod",
        creates_namespace=True,
        class_name="nginx",
        tls_secret_name="hello-tls",
    )


def test_a_cluster_that_cannot_be_asked_is_said_and_not_refused() -> None:
    def unreachable(needs: IngressNeeds, wanted: Sequence[ClusterObject]) -> set[ClusterObject]:
        raise ClusterUnaskedError("kubectl failed: connection refused")

    said: list[str] = []
    check_ingress_objects({"ingress": PROD_INGRESS}, "prod", Path("/p"), say=said.append, find=unreachable)

    assert said == [
        "warning: the IngressClass and TLS Secret stack 'prod' names were not checked: "
        "kubectl failed: connection refused"
    ]


def test_kubectl_is_asked_once_with_the_stacks_kubeconfig_context_and_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_kubectl(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(tmp_path / "kubectl.log"))
    monkeypatch.setenv("FAKE_KUBECTL_MISSING", "secret/hello-tls")
    needs = ingress_needs({"ingress": PROD_INGRESS, "cluster": {"context": "team"}}, "prod", tmp_path)
    assert needs is not None
    wanted = [ClusterObject(kind="ingressclass", name="nginx"), ClusterObject(kind="secret", name="hello-tls")]

    found = kubectl_find(needs, wanted)

    assert found == {ClusterObject(kind="ingressclass", name="nginx")}
    assert (tmp_path / "kubectl.log").read_text() == (
        f"--kubeconfig {LOCAL_KUBECONFIG} --context team --namespace hello-world-prod --request-timeout=10s "
        "get ingressclass/nginx secret/hello-tls --ignore-not-found --output=name\n"
    )


def test_kubectl_missing_or_failing_cannot_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs = ingress_needs({"ingress": PROD_INGRESS}, "prod", tmp_path)
    assert needs is not None
    wanted = [ClusterObject(kind="ingressclass", name="nginx")]
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(ClusterUnaskedError, match=r"^kubectl is not on PATH$"):
        kubectl_find(needs, wanted)

    install_kubectl(tmp_path / "bin")
    monkeypatch.setenv("FAKE_KUBECTL_FAILS", "1")
    with pytest.raises(ClusterUnaskedError, match=r"^kubectl failed: Unable to connect to the server"):
        kubectl_find(needs, wanted)


@pytest.mark.parametrize("action", ["preview", "up"])
def test_make_preview_and_up_of_a_stack_naming_a_missing_class_run_nothing(
    tmp_path: Path,
    action: str,
    fake_registry: str,  # noqa: F811 - the fixture
) -> None:
    _, env, log = ops_project(tmp_path, "prod", registry=fake_registry)

    result = subprocess.run(
        [sys.executable, "-m", "ops", action, "prod"],
        env={**env, "FAKE_KUBECTL_MISSING": "ingressclass/traefik", "FAKE_KUBECTL_CLASSES": "nginx"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "error: the Ingress of stack 'prod' names what its cluster does not have, so nothing ran:\n"
        "  - ingress.className must be an IngressClass of the stack's cluster (it has nginx), got 'traefik'\n"
    )
    ran = [json.loads(line)["args"][0] for line in log.read_text().splitlines()] if log.exists() else []
    assert action not in ran


def test_a_review_of_a_stack_naming_a_missing_class_previews_nothing_and_fails(
    tmp_path: Path,
    fake_registry: str,  # noqa: F811 - the fixture
) -> None:
    _, env, log = ops_project(tmp_path, "prod", registry=fake_registry)

    result = subprocess.run(
        [sys.executable, "-m", "ops", "review", "prod"],
        env={**env, "FAKE_KUBECTL_MISSING": "ingressclass/traefik", "FAKE_KUBECTL_CLASSES": "nginx"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert "### Stack `prod`\n\n⛔ preview failed; see the job log." in result.stdout
    assert (
        "ingress.className must be an IngressClass of the stack's cluster (it has nginx), got 'traefik'"
        in result.stderr
    )
    ran = [json.loads(line)["args"][0] for line in log.read_text().splitlines()] if log.exists() else []
    assert "preview" not in ran


def test_a_promotion_to_a_stack_naming_a_missing_secret_pins_and_previews_nothing(
    promotion: Promotion,  # noqa: F811 - the fixture
) -> None:
    qa = (promotion.project / "Pulumi.staging.yaml").read_text()
    (promotion.project / "Pulumi.qa.yaml").write_text(
        qa + "  hello-world:ingress:\n    enabled: true\n    host: qa.example.com\n"
        "    className: traefik\n    tlsSecretName: hello-example-com-tls\n"
    )
    before = promotion.stack_file("qa")
    promotion.env.update(FAKE_KUBECTL_MISSING="secret/hello-example-com-tls")

    result = promotion.run("--from", "dev", "--to", "qa", "--out-of-chain", "--yes")

    assert result.returncode == 1, result.stderr
    assert (
        "ingress.tlsSecretName must be a Secret in namespace 'hello-world-qa' of the stack's cluster, got "
        "'hello-example-com-tls', which is not there" in result.stderr
    )
    assert not [entry for entry in promotion.entries() if entry.get("args", [""])[0] in ("preview", "up")]
    assert promotion.stack_file("qa") == before
