"""`make render` of a stack with an image pull secret, through the real engine: the manifests name the
Secret and hold none, so no credential is ever written to a rendered file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ops.program_copy import copy_program
from ops.render import render
from settings.stack_files import set_settings
from tests.conftest import ROOT

pytestmark = pytest.mark.engine


def test_render_of_a_stack_with_image_pull_names_the_secret_and_writes_none(pulumi_cli: str, tmp_path: Path) -> None:
    project = copy_program(tmp_path / "project", ROOT)
    shutil.copy2(ROOT / "Pulumi.staging.yaml", project / "Pulumi.staging.yaml")
    set_settings(project, "staging", {"imagePull": {"username": "puller"}})

    written = render("staging", tmp_path / "rendered", work_dir=project, registry_password="unused-password")

    documents = [yaml.safe_load(path.read_text()) for path in written]
    kinds = {document["kind"] for document in documents}
    (deployment,) = [document for document in documents if document["kind"] == "Deployment"]
    (job,) = [document for document in documents if document["kind"] == "Job"]
    assert "Secret" not in kinds
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "hello-world-pull"}]
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "hello-world-pull"}]
    assert all("dockerconfigjson" not in path.read_text() for path in written)
