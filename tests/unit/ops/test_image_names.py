"""Image names as users write them, normalised as Docker does: pure logic, no registry."""

from __future__ import annotations

import pytest

from ops.image_names import ImageName, api_host, normalised, parse_image_name

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("written", "registry", "repository", "tag", "digest"),
    [
        ("hello-world", "docker.io", "library/hello-world", "latest", None),
        ("hello-world:1.2", "docker.io", "library/hello-world", "1.2", None),
        (f"hello-world@{DIGEST}", "docker.io", "library/hello-world", None, DIGEST),
        ("user/hello-world", "docker.io", "user/hello-world", "latest", None),
        ("docker.io/user/hello-world:v1", "docker.io", "user/hello-world", "v1", None),
        ("docker.io/hello-world", "docker.io", "library/hello-world", "latest", None),
        ("index.docker.io/library/hello-world", "docker.io", "library/hello-world", "latest", None),
        ("registry-1.docker.io/user/app", "docker.io", "user/app", "latest", None),
        ("ghcr.io/org/app:sha-1a2b", "ghcr.io", "org/app", "sha-1a2b", None),
        (f"ghcr.io/org/team/app@{DIGEST}", "ghcr.io", "org/team/app", None, DIGEST),
        ("registry:5000/app", "registry:5000", "app", "latest", None),
        (f"registry:5000/app:v2@{DIGEST}", "registry:5000", "app", "v2", DIGEST),
        ("localhost/app", "localhost", "app", "latest", None),
        ("127.0.0.1:5000/hello-world:dev", "127.0.0.1:5000", "hello-world", "dev", None),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "app",
            "1",
            None,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and ("/" in value or ":" in value or "-" in value) else None,
)
def test_parse_image_name_normalises_as_docker_does(
    written: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    assert parse_image_name(written) == ImageName(registry=registry, repository=repository, tag=tag, digest=digest)


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("Hello-World", "an invalid repository name"),
        ("hello-world:", "a tag that is not"),
        ("hello-world:.x", "a tag that is not"),
        ("hello-world@sha256:abc", "a digest that is not sha256:<64 hex digits>"),
        ("ghcr.io/", "an invalid repository name"),
        ("a" * 300, "a name longer than 255 characters"),
    ],
    ids=["uppercase", "empty-tag", "tag-starting-with-dot", "short-digest", "no-repository", "too-long"],
)
def test_parse_image_name_says_why_a_name_is_not_one(written: str, reason: str) -> None:
    parsed = parse_image_name(written)

    assert isinstance(parsed, str)
    assert parsed.startswith(reason)


def test_image_name_reference_is_the_digest_when_there_is_one_and_prints_as_written_normalised() -> None:
    name = parse_image_name(f"user/app:v1@{DIGEST}")

    assert isinstance(name, ImageName)
    assert name.reference == DIGEST
    assert str(name) == f"docker.io/user/app:v1@{DIGEST}"


@pytest.mark.parametrize(
    ("registry", "repository", "expected", "host"),
    [
        ("docker.io", "hello-world", ("docker.io", "library/hello-world"), "registry-1.docker.io"),
        ("index.docker.io", "user/app", ("docker.io", "user/app"), "registry-1.docker.io"),
        ("ghcr.io", "app", ("ghcr.io", "app"), "ghcr.io"),
        ("127.0.0.1:5000", "hello-world", ("127.0.0.1:5000", "hello-world"), "127.0.0.1:5000"),
    ],
    ids=["docker-hub-official", "docker-hub-alias", "ghcr", "local"],
)
def test_normalised_and_api_host_map_docker_hub_only(
    registry: str, repository: str, expected: tuple[str, str], host: str
) -> None:
    assert normalised(registry, repository) == expected
    assert api_host(registry) == host
