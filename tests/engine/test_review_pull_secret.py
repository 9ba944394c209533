"""`make review` of a stack with an image pull secret, through the real engine: the summary and the preview
it is made from show the Secret's creation but never its password, in any encoding."""

from __future__ import annotations

import base64
import json

import pytest

from components.pull_secret import docker_config_json
from ops.review_summary import preview_stack, summarize
from tests.conftest import stack_config
from tests.engine.fixtures import MakeWorkspace

pytestmark = pytest.mark.engine

PULL_PASSWORD = "pull-password-that-must-not-show"


def test_review_of_a_stack_with_a_pull_secret_never_shows_the_password(
    make_workspace: MakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {**stack_config("staging"), "hello-world:imagePull": json.dumps({"username": "puller"})}
    workspace = make_workspace("staging", config)
    workspace.set_secret("imagePullPassword", PULL_PASSWORD)
    for key, value in workspace.env.items():
        monkeypatch.setenv(key, value)

    preview, events = preview_stack("staging", workspace.directory)

    summary = summarize("staging", preview, events)
    assert "**create** `kubernetes:core/v1:Secret` `hello-world-pull-secret`" in summary
    registry = config["hello-world:image"].split("/", 1)[0]
    document = docker_config_json(registry, "puller", PULL_PASSWORD)
    shown = [summary, json.dumps(preview), json.dumps(events)]
    for form in (PULL_PASSWORD, base64.b64encode(f"puller:{PULL_PASSWORD}".encode()).decode()):
        assert all(form not in text for text in shown)
    assert all(base64.b64encode(document.encode()).decode() not in text for text in shown)
