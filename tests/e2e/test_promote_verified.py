"""Promotion takes only what passed: a dev build whose in-cluster verification fails never reaches staging, and a
digest written into dev's state by hand, without signed evidence that it passed, does not either."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from image_ref import ImageRef, parse_image_ref
from ops import evidence
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


MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"
)


def push_unverified_copy(registry: LocalRegistry, image: ImageRef) -> ImageRef:
    """The same image under a new digest (its manifest with an annotation of its own): pushed, runnable, and
    never verified anywhere, as a branch author with dev's registry password could push it."""
    base = f"https://{registry.client.address}/v2/{image.repository}/manifests"
    auth = (registry.username, registry.password)
    ca_cert = os.environ["HELLO_CA_CERT"]  # the platform's registry speaks TLS from its CA
    found = requests.get(
        f"{base}/{image.digest}", headers={"Accept": MANIFEST_TYPES}, auth=auth, verify=ca_cert, timeout=10
    )
    found.raise_for_status()
    manifest = found.json()
    manifest["annotations"] = {**manifest.get("annotations", {}), "forged": uuid.uuid4().hex}
    body = json.dumps(manifest).encode()
    kind = found.headers["Content-Type"]
    pushed = requests.put(
        f"{base}/forged", data=body, headers={"Content-Type": kind}, auth=auth, verify=ca_cert, timeout=10
    )
    pushed.raise_for_status()
    return image.with_digest(pushed.headers["Docker-Content-Digest"])


def forged_state(export: dict[str, Any], image: str) -> dict[str, Any]:
    """dev's exported state with both outputs promotion once trusted (imageRef, verifiedImageRef) set to ``image``."""
    forged: dict[str, Any] = json.loads(json.dumps(export))
    (stack,) = [r for r in forged["deployment"]["resources"] if r["type"] == "pulumi:pulumi:Stack"]
    stack["outputs"].update(imageRef=image, verifiedImageRef=image)
    return forged


def test_forged_state_cannot_promote_a_never_verified_digest_and_a_genuine_promotion_passes(
    chain: Chain, registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    set_message(chain.dev, "Hello Third World")
    chain.up(chain.dev)
    genuine = parse_image_ref(chain.dev.outputs()["imageRef"])
    assert isinstance(genuine, ImageRef)
    forged = push_unverified_copy(registry, genuine)
    assert registry.client.served_digest(forged.repository, forged.digest) == forged.digest
    original = tmp_path_factory.mktemp("state") / "dev.json"
    original.write_text(chain.dev.pulumi("stack", "export").stdout)
    written = original.with_name("forged.json")
    written.write_text(json.dumps(forged_state(json.loads(original.read_text()), str(forged))))
    chain.dev.pulumi("stack", "import", "--file", str(written))
    assert chain.dev.outputs()["verifiedImageRef"] == str(forged)
    before = (chain.staging_file(), kube_image("verified-staging"))

    refused = chain.promote("--from", "dev", "--to", "staging", "--yes")

    assert refused.returncode == 1, refused.stdout + refused.stderr
    missing = f"{forged.digest} must have passed verification in stack 'dev', got no signed evidence of it"
    assert missing in refused.stderr, refused.stderr
    assert f"{forged.repository}:{forged.digest.replace(':', '-')}.verified-dev" in refused.stderr
    assert (chain.staging_file(), kube_image("verified-staging")) == before

    chain.dev.pulumi("stack", "import", "--file", str(original))
    promoted = chain.promote("--from", "dev", "--to", "staging", "--yes")

    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert f"Evidence: {genuine.digest} passed verification in stack 'dev'" in promoted.stdout
    assert kube_image("verified-staging") == str(genuine)
    # The promotion's own deploy verified the image in staging, and signed that: staging -> prod may follow.
    assert evidence.require(registry.client, genuine, "staging").stack == "staging"
