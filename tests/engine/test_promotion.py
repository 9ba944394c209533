"""Promotion staging -> prod through the real engine, with no cluster: both stacks render their manifests
(cluster.renderTo), and a stand-in registry on loopback serves the promoted digest.

What it shows: the policy pack runs on the promotion path at prod's enforcement, a fully qualified
stack name reaches the right stack file, and a signal during the real `pulumi up` is waited for.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import stack_config
from tests.engine.fixtures import MakeWorkspace
from tests.engine.workspace import ROOT, Workspace
from tests.unit.ops.test_promotion import evidence_env, registry_serving_any_digest

pytestmark = pytest.mark.engine

DIGEST = "sha256:" + "5" * 64
RULE = "kubernetes-apps-v1-deployment-min-replicas"
TIMEOUT_SECONDS = 600


@dataclass
class Chain:
    """staging, deployed in render mode and running ``image``; prod, never deployed, in the same project copy."""

    staging: Workspace
    prod: Workspace
    image: str
    prod_manifests: Path

    def start(self, *args: str) -> subprocess.Popen[str]:
        # Render mode runs no in-cluster verification: the digest is named, as for a rollback.
        return subprocess.Popen(
            [sys.executable, "-m", "ops", "promote", *args, "--digest", DIGEST],
            cwd=ROOT,
            env={
                **self.prod.env,
                "HELLO_PROJECT_DIR": str(self.prod.directory),
                # The stand-in registry serves signed evidence for every digest: trust its key.
                **evidence_env(self.prod.directory.parent),
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def promote(self, *args: str) -> subprocess.CompletedProcess[str]:
        process = self.start(*args)
        stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def prod_file(self) -> bytes:
        return (self.prod.directory / "Pulumi.prod.yaml").read_bytes()

    def set_prod(self, **settings: str) -> None:
        self.prod.write_config({**self.prod_config(), **{f"hello-world:{k}": v for k, v in settings.items()}})

    def prod_config(self) -> dict[str, str]:
        cluster = json.dumps({"renderTo": str(self.prod_manifests)})
        return {**stack_config("prod"), "hello-world:cluster": cluster}


@pytest.fixture
def chain(make_workspace: MakeWorkspace, tmp_path: Path) -> Iterator[Chain]:
    with registry_serving_any_digest() as registry:
        image = f"{registry}/hello-world@{DIGEST}"
        staging_cluster = json.dumps({"renderTo": str(tmp_path / "staging-manifests")})
        staging = make_workspace(
            "staging", {**stack_config("staging"), "hello-world:image": image, "hello-world:cluster": staging_cluster}
        )
        staging.up()
        prod = staging.sibling("prod")
        found = Chain(staging=staging, prod=prod, image=image, prod_manifests=tmp_path / "prod-manifests")
        found.set_prod()
        yield found


def test_promotion_to_prod_that_breaks_a_mandatory_rule_fails_before_anything_changes(chain: Chain) -> None:
    chain.set_prod(replicas="2")
    before = chain.prod_file()

    result = chain.promote("--from", "staging", "--to", "prod", "--yes")

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "error: pulumi failed; the target's settings were restored" in result.stderr
    assert f"[mandatory] [severity: medium]  {RULE}" in output
    assert "spec.replicas is 2, expected at least 3" in output
    assert chain.prod_file() == before
    assert chain.prod.outputs() == {}
    assert not chain.prod_manifests.exists() or not any(chain.prod_manifests.rglob("*.yaml"))


def test_promotion_to_a_fully_qualified_prod_deploys_and_records_it_in_prods_file(chain: Chain) -> None:
    before = chain.prod_file().decode()

    result = chain.promote("--from", "staging", "--to", "organization/hello-world/prod", "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"hello-world-kubernetes@v0.1.0 (local: {ROOT / 'policy'})" in result.stdout, "the up ran the pack"
    assert chain.prod.outputs()["imageRef"] == chain.image
    after = chain.prod_file().decode()
    settings = yaml.safe_load(after)["config"]
    assert settings["hello-world:image"] == chain.image
    assert settings["hello-world:promotion"]["from"] == "staging"
    assert settings["hello-world:promotion"]["digest"] == DIGEST
    assert after.splitlines()[0] == before.splitlines()[0], "the stack file's leading comment is kept"
    deployments = [
        yaml.safe_load(path.read_text())
        for path in chain.prod_manifests.rglob("*.yaml")
        if "kind: Deployment" in path.read_text()
    ]
    assert [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments] == [chain.image]
    assert not list(chain.prod.directory.glob("Pulumi.organization*"))


def child_with_argument(parent: int, argument: str) -> int | None:
    """The pid of a child process of ``parent`` that has ``argument`` on its command line."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and argument.encode() in arguments:
            return int(entry.name)
    return None


def test_promotion_terminated_during_the_real_pulumi_up_waits_for_it_then_restores_prods_file(chain: Chain) -> None:
    before = chain.prod_file()
    process = chain.start("--from", "staging", "--to", "prod", "--yes")
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while (up := child_with_argument(process.pid, "up")) is None:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "pulumi up never started"
        time.sleep(0.02)

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)

    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert re.search(
        r"error: interrupted by SIGTERM: pulumi up was cancelled and has exited; the target's settings were put back",
        stderr,
    ), stderr
    with pytest.raises(ProcessLookupError):
        os.kill(up, 0)  # pulumi up had exited (and was reaped) before the promotion ended
    assert chain.prod_file() == before
