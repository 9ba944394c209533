"""Claims across the stacks of one cluster, and stack files that cannot be read."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from settings.clashes import namespace_clashes
from settings.load import SettingsError, parse_settings
from settings.stack_files import StackFileError, read_engine_config, read_stack_files
from tests.conftest import ROOT, Deploy

DIGEST = "sha256:" + "0123456789abcdef" * 4
PINNED = f"registry.example.com/team/hello-world@{DIGEST}"


def staging(**raw: Any) -> Any:
    return parse_settings({"image": PINNED, **raw}, stack="staging")


def test_namespace_another_stack_uses_on_the_same_cluster_is_refused() -> None:
    clashes = namespace_clashes(staging(namespace="hello-world-dev"), {"dev": {}, "prod": {"namespace": "shop"}})

    assert clashes == [
        "namespace must be unique among the stacks of one cluster, got 'hello-world-dev', which stack 'dev' also "
        "claims on the same cluster (kubeconfig /var/lib/hello-pulumi/kube/admin.kubeconfig, context current)"
    ]


def test_namespace_declared_by_another_stack_is_refused_too() -> None:
    assert namespace_clashes(staging(namespace="shop"), {"prod": {"namespace": "shop"}}) != []


def test_namespace_of_another_cluster_is_free() -> None:
    others = {"dev": {"cluster": {"kubeconfig": "/etc/other.kubeconfig"}}}

    assert namespace_clashes(staging(namespace="hello-world-dev"), others) == []


def test_stack_taking_devs_namespace_stops_before_any_resource(deploy: Deploy) -> None:
    with pytest.raises(SettingsError, match="got 'hello-world-dev', which stack 'dev' also claims"):
        deploy("staging", {"hello-world:image": PINNED, "hello-world:namespace": "hello-world-dev"})

    assert deploy.registered == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"resources": "{bad"}, "resources must be an object, got '{bad'"),
        ({"ingress": '["a", "b"]'}, 'ingress must be an object, got \'["a", "b"]\''),
        ({"cluster": "{}"}, None),
    ],
    ids=["broken-json", "list-for-an-object", "empty-object"],
)
def test_malformed_object_settings_are_settings_errors(raw: dict[str, str], message: str | None) -> None:
    if message is None:
        staging(**raw)
        return
    with pytest.raises(SettingsError) as raised:
        staging(**raw)

    assert raised.value.problems == [message]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("config: [a, b\n", "Pulumi.broken.yaml must be YAML, got an error at line 2, column 1"),
        ("config:\n  - a\n", "Pulumi.broken.yaml: config must be a mapping of settings, got a list"),
        ("- a\n", "Pulumi.broken.yaml must be a mapping with a config key, got a list"),
    ],
    ids=["invalid-yaml", "list-for-config", "list-for-document"],
)
def test_broken_stack_file_is_named_with_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "Pulumi.broken.yaml").write_text(content)

    with pytest.raises(StackFileError, match=f"^{message}"):
        read_engine_config(tmp_path, "broken")


def test_broken_sibling_is_reported_and_the_others_are_still_read(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path)
    (tmp_path / "Pulumi.broken.yaml").write_text("config: [a, b\n")
    reported: list[str] = []

    stacks = read_stack_files(tmp_path, on_error=reported.append)

    assert set(stacks) == {"dev"}
    assert reported == ["Pulumi.broken.yaml must be YAML, got an error at line 2, column 1"]


def test_stack_runs_beside_a_broken_sibling_stack_file(
    deploy: Deploy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The program reads its siblings from its working directory: a copy of the project's, never the checkout itself,
    # which other tests read meanwhile.
    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        shutil.copy(stack_file, tmp_path)
    (tmp_path / "Pulumi.zz-broken.yaml").write_text("config: [a, b\n")
    monkeypatch.chdir(tmp_path)

    deployed = deploy("staging", {"hello-world:image": PINNED})

    assert deployed.resources != []
