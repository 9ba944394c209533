"""Promotion takes only what passed: a dev build whose in-cluster verification fails never reaches staging."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from settings.stack_files import plain_config
from tests.e2e.test_exercise import kube_image, set_message
from tests.e2e.test_promotion import Chain, deployed, make_chain
from tests.engine.fixtures import LocalRegistry, Teardowns

pytestmark = [pytest.mark.engine, pytest.mark.platform]

# Good versions say "Hello ..."; "Goodbye World" is the build that must fail its check.
CHECK = json.dumps({"body": "Hello"})


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Chain]:
    """dev and staging deployed with the same good image, in namespaces of their own."""
    chain = make_chain(tmp_path_factory.mktemp("verified"), registry, "verified", 31651, verification=CHECK)
    with deployed(chain, teardowns, promoted=True) as made:
        yield made


def test_build_that_fails_verification_is_not_promoted_and_staging_keeps_running(chain: Chain) -> None:
    running = kube_image("verified-staging")
    set_message(chain.dev, "Hello Again World")
    chain.dev.up()
    set_message(chain.dev, "Goodbye World")
    failed = chain.dev.up(check=False)
    before = chain.staging_file()

    result = chain.promote("--from", "dev", "--to", "staging", "--yes")

    assert failed.returncode != 0, "dev's verification must fail for this test"
    assert result.returncode == 1
    assert "stack 'dev''s last update must have succeeded, got failed" in result.stderr, result.stderr
    assert chain.staging_file() == before
    assert kube_image("verified-staging") == running


def test_skip_verification_promotes_and_records_the_reason(chain: Chain) -> None:
    result = chain.promote("--from", "dev", "--to", "staging", "--yes", "--skip-verification", "demo of the override")

    assert result.returncode == 0, result.stdout + result.stderr
    promotion = plain_config(chain.staging.directory, "staging")["hello-world:promotion"]
    assert promotion["skippedVerification"] == "demo of the override"
    assert kube_image("verified-staging") == chain.dev.outputs()["imageRef"]
