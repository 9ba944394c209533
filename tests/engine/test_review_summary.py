"""`make review` against the real engine: a real preview, with the policy pack, summarized."""

from __future__ import annotations

import json

import pytest

from ops.review_summary import preview_stack, summarize
from tests.conftest import stack_config
from tests.engine.fixtures import MakeWorkspace

pytestmark = pytest.mark.engine


def test_review_of_a_real_preview_summarizes_it_and_changes_no_stack_file(
    make_workspace: MakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = make_workspace("prod", {**stack_config("prod"), "hello-world:replicas": "2"})
    for key, value in workspace.env.items():
        monkeypatch.setenv(key, value)
    stack_file = workspace.directory / "Pulumi.prod.yaml"
    before = stack_file.read_bytes()

    preview, events = preview_stack("prod", workspace.directory)

    summary = summarize("prod", preview, events)
    creates = len([step for step in preview["steps"] if step["op"] == "create"])
    assert creates > 5
    assert f"{creates} to create · 0 to update · 0 to replace · 0 to delete" in summary
    assert "**create** `kubernetes:networking.k8s.io/v1:Ingress` `hello-world-ingress`" in summary
    assert "`kubernetes-apps-v1-deployment-min-replicas` (mandatory) on `hello-world-deployment`" in summary
    assert stack_file.read_bytes() == before


def test_review_holds_a_stack_without_its_own_policy_config_to_every_rule_as_mandatory(
    make_workspace: MakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = make_workspace("qa", {**stack_config("staging"), "hello-world:replicas": "1"})
    for key, value in workspace.env.items():
        monkeypatch.setenv(key, value)
    stack_file = workspace.directory / "Pulumi.qa.yaml"
    before = stack_file.read_bytes()

    preview, events = preview_stack("qa", workspace.directory)

    summary = summarize("qa", preview, events)
    assert "`kubernetes-apps-v1-deployment-min-replicas` (mandatory) on `hello-world-deployment`" in summary
    assert "spec.replicas is 1, expected at least 2" in summary
    assert stack_file.read_bytes() == before


def test_review_of_a_stack_with_a_second_service_shows_its_objects_and_the_routes(
    make_workspace: MakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = {"name": "hello-v2", "message": "Hello World v2", "path": "/v2"}
    workspace = make_workspace("prod", {**stack_config("prod"), "hello-world:services": json.dumps([second])})
    for key, value in workspace.env.items():
        monkeypatch.setenv(key, value)

    preview, events = preview_stack("prod", workspace.directory)

    summary = summarize("prod", preview, events)
    for created in ("deployment", "service", "network-policy", "deny-egress", "verify-target", "verify"):
        assert f"`hello-world-hello-v2-{created}`" in summary, created
    assert "  - routes: `hello.hello-pulumi.test/ → hello-world`, `hello.hello-pulumi.test/v2 → hello-v2`\n" in summary
    assert "Policy violations:" not in summary
