"""Promotion into a stack with an image pull secret: the digest is checked in the registry the target pulls from,
with the target's own credentials, and an image in another registry is refused with the copy to run first.

The promotion runs as a process against the stand-in pulumi of tests/unit/ops/test_promotion.py, taught to answer
`pulumi config get`, and stand-in registries on loopback; no engine, no platform.
"""

from __future__ import annotations

import base64
import http.server
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from image_ref import ImageRef
from ops.promotion import PromotionError, check_served, pinned_for
from ops.registry import Registry
from settings.stack_files import set_settings
from tests.conftest import serving
from tests.unit.ops.test_promotion import FAKE_PULUMI, Promotion, fake_registry, promotion  # noqa: F401 - fixtures

DIGEST = "sha256:" + "1" * 64
SOURCE = ImageRef(registry="127.0.0.1:5000", repository="hello-world", digest=DIGEST)
TARGET_USER = "puller"
TARGET_PASSWORD = "target-pull-password"
# The stand-in pulumi answers `pulumi config get <key> --json` with the target's pull password.
FAKE_PULUMI_WITH_CONFIG = FAKE_PULUMI.replace(
    'if args[:2] == ["stack", "output"]:',
    'if args[:2] == ["config", "get"]:\n'
    '    print(json.dumps({"value": os.environ["FAKE_PULL_PASSWORD"], "secret": True}))\n'
    'elif args[:2] == ["stack", "output"]:',
)


@dataclass
class PrivateRegistry:
    """A stand-in registry that serves ``served`` only to the target's user, and notes who asked."""

    address: str = ""
    served: set[str] = field(default_factory=set)
    authorizations: list[str | None] = field(default_factory=list)


def _handler(registry: PrivateRegistry) -> type[http.server.BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{TARGET_USER}:{TARGET_PASSWORD}".encode()).decode()

    class Manifests(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            given = self.headers.get("Authorization")
            registry.authorizations.append(given)
            digest = self.path.rsplit("/", 1)[-1]
            if given != expected:
                self.send_response(401)
            elif self.path.startswith("/v2/team/hello-world/manifests/") and digest in registry.served:
                self.send_response(200)
                self.send_header("Docker-Content-Digest", digest)
            else:
                self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Manifests


@pytest.fixture
def private_registry() -> Iterator[PrivateRegistry]:
    registry = PrivateRegistry()
    with serving(_handler(registry)) as port:
        registry.address = f"127.0.0.1:{port}"
        yield registry


@pytest.fixture
def pull_promotion(promotion: Promotion, private_registry: PrivateRegistry) -> Promotion:  # noqa: F811
    """The dev -> staging promotion, where staging pulls from the private registry with its own secret."""
    fake = Path(promotion.env["PATH"].split(":", 1)[0]) / "pulumi"
    taught = fake.read_text().replace(FAKE_PULUMI, FAKE_PULUMI_WITH_CONFIG)
    assert taught != fake.read_text(), (
        "the stand-in pulumi of tests/unit/ops/test_promotion.py changed: teach it config get again"
    )
    fake.write_text(taught)
    promotion.env["FAKE_PULL_PASSWORD"] = TARGET_PASSWORD
    running = f"{private_registry.address}/team/hello-world@sha256:{'0' * 64}"
    set_settings(promotion.project, "staging", {"image": running, "imagePull": {"username": TARGET_USER}})
    return promotion


def test_pinned_for_keeps_the_source_reference_for_a_target_without_pull_secret_or_in_the_same_registry() -> None:
    same = ImageRef(registry="127.0.0.1:5000", repository="other", digest="sha256:" + "0" * 64)

    assert pinned_for(SOURCE, None) == SOURCE
    assert pinned_for(SOURCE, same) == SOURCE


def test_pinned_for_moves_the_digest_to_the_registry_and_repository_the_target_pulls_from() -> None:
    running = ImageRef(registry="ghcr.io", repository="team/hello-world", digest="sha256:" + "0" * 64)

    assert str(pinned_for(SOURCE, running)) == f"ghcr.io/team/hello-world@{DIGEST}"


def test_check_served_between_registries_says_to_copy_first(private_registry: PrivateRegistry) -> None:
    target = ImageRef(registry=private_registry.address, repository="team/hello-world", digest=DIGEST)
    destination = f"{private_registry.address}/team/hello-world"

    with pytest.raises(PromotionError) as refused:
        check_served(target, Registry(private_registry.address, TARGET_USER, TARGET_PASSWORD), copied_from=SOURCE)

    assert str(refused.value).splitlines() == [
        f"the target pulls from {destination}, which must serve {DIGEST}, got nothing: the image is in "
        "127.0.0.1:5000/hello-world, and promotion does not copy between registries. "
        "Copy it first (the digest stays the same), then promote again:",
        f"  crane copy {SOURCE} {destination}:promoted",
        f"  or: skopeo copy --all --preserve-digests docker://{SOURCE} docker://{destination}:promoted",
        "nothing was promoted",
    ]


def test_promotion_pins_the_digest_the_targets_registry_serves_to_the_targets_credentials(
    pull_promotion: Promotion, private_registry: PrivateRegistry
) -> None:
    private_registry.served.add(DIGEST)
    staging_before = pull_promotion.stack_file()

    result = pull_promotion.run("--from", "dev", "--to", "staging")

    pinned = f"{private_registry.address}/team/hello-world@{DIGEST}"
    assert f"Promoting {pinned} from dev to staging" in result.stdout
    # Without a terminal to confirm on, it stops after the preview and puts the stack file back.
    assert "not deploying without a terminal" in result.stderr
    assert pull_promotion.stack_file() == staging_before
    expected = "Basic " + base64.b64encode(f"{TARGET_USER}:{TARGET_PASSWORD}".encode()).decode()
    assert private_registry.authorizations == [expected]


def test_promotion_from_another_registry_than_the_targets_is_refused_with_the_copy_to_run(
    pull_promotion: Promotion, private_registry: PrivateRegistry
) -> None:
    result = pull_promotion.run("--from", "dev", "--to", "staging")

    assert result.returncode == 1
    assert "promotion does not copy between registries" in result.stderr
    assert f"crane copy {pull_promotion.image} {private_registry.address}/team/hello-world:promoted" in result.stderr
    assert not [entry for entry in pull_promotion.entries() if entry.get("args", [""])[0] in ("preview", "up")]


def test_promotion_with_a_wrong_pull_password_is_refused_by_the_targets_registry(
    pull_promotion: Promotion, private_registry: PrivateRegistry
) -> None:
    private_registry.served.add(DIGEST)
    pull_promotion.env["FAKE_PULL_PASSWORD"] = "not-the-password"

    result = pull_promotion.run("--from", "dev", "--to", "staging")

    assert result.returncode == 1
    assert f"registry {private_registry.address} answered 401" in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr


# The source registry below serves digests, not evidence: these tests are about where credentials go.
NO_EVIDENCE = ("--skip-verification", "the test's source registry holds no evidence")


@pytest.fixture
def source_registry(pull_promotion: Promotion) -> Iterator[PrivateRegistry]:
    """dev's image in a registry of its own that serves any digest and notes every Authorization it gets."""
    registry = PrivateRegistry()

    class AnyDigest(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            registry.authorizations.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Docker-Content-Digest", self.path.rsplit("/", 1)[-1])
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(AnyDigest) as port:
        registry.address = f"127.0.0.1:{port}"
        image = f"{registry.address}/hello-world@{DIGEST}"
        pull_promotion.env["FAKE_PULUMI_OUTPUTS"] = json.dumps({"dev": {"imageRef": image, "verifiedImageRef": image}})
        yield registry


def test_promotion_to_a_target_whose_image_is_not_pinned_asks_only_the_registry_its_credentials_are_for(
    pull_promotion: Promotion, private_registry: PrivateRegistry, source_registry: PrivateRegistry
) -> None:
    private_registry.served.add(DIGEST)
    set_settings(pull_promotion.project, "staging", {"image": f"{private_registry.address}/team/hello-world:v1"})

    result = pull_promotion.run("--from", "dev", "--to", "staging", *NO_EVIDENCE)

    assert f"Promoting {private_registry.address}/team/hello-world@{DIGEST} from dev to staging" in result.stdout
    expected = "Basic " + base64.b64encode(f"{TARGET_USER}:{TARGET_PASSWORD}".encode()).decode()
    assert private_registry.authorizations == [expected]
    assert source_registry.authorizations == [], "the target's pull password went to the source's registry"


@pytest.mark.parametrize("image", [None, "not an image"], ids=["first-promotion", "hand-edited"])
def test_promotion_to_a_target_with_a_pull_secret_but_no_registry_of_its_own_is_refused_sending_nothing(
    pull_promotion: Promotion, source_registry: PrivateRegistry, image: str | None
) -> None:
    staging = pull_promotion.project / "Pulumi.staging.yaml"
    kept = [line for line in staging.read_text().splitlines() if "hello-world:image:" not in line]
    if image is not None:
        kept.append(f"  hello-world:image: {image}")
    staging.write_text("\n".join(kept) + "\n")

    result = pull_promotion.run("--from", "dev", "--to", "staging", *NO_EVIDENCE)

    assert result.returncode == 1
    assert "stack 'staging' sets imagePull, so its image must name the registry those credentials are for" in (
        result.stderr
    )
    assert source_registry.authorizations == []
    assert not [entry for entry in pull_promotion.entries() if entry.get("args", [""])[0] in ("preview", "up")]
