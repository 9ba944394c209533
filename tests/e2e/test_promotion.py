"""Promotion dev -> staging by digest with the real engine, registry and cluster.

Needs the full local platform, which `make test` starts. The tests run in file order.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import stack_config
from tests.e2e.test_exercise import kube_image
from tests.engine.fixtures import LocalRegistry, Teardowns, building_workspace, local_cluster
from tests.engine.workspace import ROOT, Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]

MISSING_DIGEST = "sha256:" + "0" * 64


@dataclass
class Chain:
    dev: Workspace
    staging: Workspace
    registry: LocalRegistry

    def promote(self, *args: str, credentials: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``python -m ops promote ARGS`` on the chain's stacks; the registry's credentials are in the environment
        (``REGISTRY_USERNAME``/``REGISTRY_PASSWORD``) unless ``credentials`` gives other variables instead."""
        if credentials is None:
            credentials = {"REGISTRY_USERNAME": self.registry.username, "REGISTRY_PASSWORD": self.registry.password}
        env = {**self.dev.env, "HELLO_PROJECT_DIR": str(self.dev.directory), **credentials}
        return subprocess.run(
            [sys.executable, "-m", "ops", "promote", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=900,
            check=False,
        )

    def up(self, workspace: Workspace, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``python -m ops up`` (what `make up` runs) of one of the chain's stacks: a passed verification is signed
        as evidence beside the image, which promotion from that stack needs (ops/evidence.py)."""
        env = {**workspace.env, "HELLO_PROJECT_DIR": str(workspace.directory)}
        result = subprocess.run(
            [sys.executable, "-m", "ops", "up", workspace.stack],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=900,
            check=False,
        )
        assert not check or result.returncode == 0, result.stdout + result.stderr
        return result

    def staging_file(self) -> bytes:
        return (self.staging.directory / "Pulumi.staging.yaml").read_bytes()


def make_chain(base: Path, registry: LocalRegistry, name: str, first_port: int, **settings: str) -> Chain:
    """dev (building into repository hello-world-<name> of ``registry``) and staging, in namespaces <name>-dev and
    <name>-staging on node ports first_port and first_port + 1; ``settings`` go to both."""
    dev = building_workspace(
        base,
        "dev",
        registry,
        f"hello-world-{name}",
        namespace=f"{name}-dev",
        nodePort=str(first_port),
        cluster=local_cluster(),
        **settings,
    )
    staging_config = {
        **stack_config("staging"),
        "hello-world:namespace": f"{name}-staging",
        "hello-world:nodePort": str(first_port + 1),
        "hello-world:cluster": local_cluster(),
        **{f"hello-world:{key}": value for key, value in settings.items()},
    }
    return Chain(dev, dev.sibling("staging", staging_config), registry)


@contextmanager
def deployed(chain: Chain, teardowns: Teardowns, *, promoted: bool) -> Iterator[Chain]:
    """Deploys dev (as `make up` does, which records its verification evidence), and promotes it to staging when
    ``promoted``; destroys both afterwards, also after a failure."""
    try:
        chain.up(chain.dev)
        if promoted:
            result = chain.promote("--from", "dev", "--to", "staging", "--yes")
            assert result.returncode == 0, result.stdout + result.stderr
        yield chain
    finally:
        teardowns.destroy(chain.staging, chain.dev)


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Chain]:
    """dev (built and deployed) and staging (never deployed) in namespaces of their own."""
    # The rollback test builds "Hello Newer World": every version here must pass a check for "Hello".
    check = json.dumps({"body": "Hello"})
    chain = make_chain(tmp_path_factory.mktemp("promotion"), registry, "promo", 31631, verification=check)
    with deployed(chain, teardowns, promoted=False) as made:
        yield made


def test_promote_dev_to_staging_deploys_exactly_devs_digest(chain: Chain) -> None:
    result = chain.promote("--from", "dev", "--to", "staging", "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"hello-world-kubernetes@v0.1.0 (local: {ROOT / 'policy'})" in result.stdout, "the up ran the pack"
    dev_ref = chain.dev.outputs()["imageRef"]
    assert chain.staging.outputs()["imageRef"] == dev_ref
    assert kube_image("promo-staging") == dev_ref
    settings = yaml.safe_load(chain.staging_file())["config"]
    assert settings["hello-world:image"] == dev_ref
    provenance = settings["hello-world:promotion"]
    assert provenance["from"] == "dev"
    assert provenance["digest"] == dev_ref.split("@")[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", provenance["at"])
    assert provenance["commit"]


def test_promoting_the_deployed_digest_again_changes_nothing(chain: Chain) -> None:
    before = chain.staging_file()

    result = chain.promote("--from", "dev", "--to", "staging", "--yes")

    assert result.returncode == 0, result.stderr
    assert "already runs" in result.stdout
    assert chain.staging_file() == before


def test_promoting_a_digest_the_registry_lacks_aborts_and_changes_nothing(chain: Chain) -> None:
    before = (chain.staging_file(), kube_image("promo-staging"))

    reason = "the registry check comes after the evidence"
    result = chain.promote(
        "--from", "dev", "--to", "staging", "--yes", "--digest", MISSING_DIGEST, "--skip-verification", reason
    )

    assert result.returncode == 1
    assert f"the registry must still serve {MISSING_DIGEST}" in result.stderr
    assert "nothing was promoted" in result.stderr
    assert (chain.staging_file(), kube_image("promo-staging")) == before


def test_promotion_out_of_the_chain_needs_the_flag(chain: Chain) -> None:
    result = chain.promote("--from", "dev", "--to", "prod", "--yes")

    assert result.returncode == 1
    assert "--to after 'dev' must be 'staging'" in result.stderr


def test_rollback_by_digest_returns_staging_to_the_older_image(chain: Chain) -> None:
    older = chain.dev.outputs()["imageRef"]
    server = chain.dev.directory / "app" / "server.js"
    server.write_text(server.read_text().replace("'Hello World'", "'Hello Newer World'"))
    chain.up(chain.dev)
    newer = chain.dev.outputs()["imageRef"]
    assert newer != older
    assert chain.promote("--from", "dev", "--to", "staging", "--yes").returncode == 0
    assert kube_image("promo-staging") == newer

    result = chain.promote("--from", "dev", "--to", "staging", "--yes", "--digest", older.split("@")[1])

    assert result.returncode == 0, result.stdout + result.stderr
    assert kube_image("promo-staging") == older
    assert chain.staging.outputs()["imageRef"] == older
