"""A deploy held to its review, with the real engine: the reviewed changes pass, later ones are refused.

Previews only (no cluster is touched): the check runs, and refuses, before anything is applied.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ops.__main__ import EXIT_REVIEW_DIFFERS
from ops.review_gate import check, fingerprint, load, plan_file, review_file, save
from ops.review_summary import preview_stack, summarize
from tests.conftest import stack_config
from tests.engine.fixtures import MakeWorkspace
from tests.engine.workspace import ROOT

pytestmark = pytest.mark.engine

OTHER_DIGEST = "sha256:" + "1" * 64


def test_binding_allows_the_reviewed_changes_and_refuses_a_stack_file_changed_after_the_review(
    make_workspace: MakeWorkspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = stack_config("staging")
    workspace = make_workspace("qa", config)
    for key, value in workspace.env.items():
        monkeypatch.setenv(key, value)
    plan = plan_file(tmp_path, "qa")
    preview, events = preview_stack("qa", workspace.directory, plan=plan)
    reviewed = fingerprint("qa", preview, workspace.directory, plan=plan)
    saved = review_file(tmp_path, "qa")
    save(saved, reviewed, summarize("qa", preview, events))

    unchanged = check(load(saved, "qa"), workspace.directory)

    image = config["hello-world:image"]
    pushed_image = image.rsplit("@", 1)[0] + "@" + OTHER_DIGEST
    workspace.write_config({**config, "hello-world:replicas": "3", "hello-world:image": pushed_image})
    # The gate refuses before anything is applied: an up held to the review never reaches the cluster.
    command = [sys.executable, "-m", "ops", "up", "qa", f"--reviewed={saved}"]
    env = {**workspace.env, "HELLO_PROJECT_DIR": str(workspace.directory)}
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)

    assert unchanged == []
    assert refused.returncode == EXIT_REVIEW_DIFFERS, refused.stderr
    deployment = "`hello-world:index:WebService$kubernetes:apps/v1:Deployment hello-world-deployment`"
    assert f"error: deploy of stack 'qa' refused: its changes differ from the review in {saved}:" in refused.stderr
    assert f"  - {deployment} `spec.replicas`: reviewed (none) → 2, now (none) → 3\n" in refused.stderr
    image_path = "spec.template.spec.containers[0].image"
    assert (
        f"  - {deployment} `{image_path}`: reviewed (none) → {image}, now (none) → {pushed_image}\n" in refused.stderr
    )
    assert json.loads(saved.read_text())["fingerprint"] == reviewed.digest()
    assert json.loads(plan.read_text())["resourcePlans"], "the engine saved the reviewed operations"


@pytest.mark.platform  # the fingerprint asks the local registry which image the base image's tag is
def test_binding_refuses_a_build_whose_app_source_changed_after_the_review(
    make_workspace: MakeWorkspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The case Pulumi's update plans let through: the plan knows the build context only as the path `app`.
    workspace = make_workspace("qa", stack_config("dev"))
    workspace.set_secret("registryPassword", "never-used-by-a-preview")
    for key, value in workspace.env.items():
        monkeypatch.setenv(key, value)
    preview, events = preview_stack("qa", workspace.directory)
    saved = review_file(tmp_path, "qa")
    save(saved, fingerprint("qa", preview, workspace.directory), summarize("qa", preview, events))
    unchanged = check(load(saved, "qa"), workspace.directory)
    server = workspace.directory / "app" / "server.js"

    server.write_text(server.read_text().replace("'Hello World'", "'Hello Unreviewed World'"))

    assert unchanged == []
    assert check(load(saved, "qa"), workspace.directory) == [
        "the build context differs from the reviewed source: another image would be built"
    ]
    assert "never-used-by-a-preview" not in saved.read_text()
