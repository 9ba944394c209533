"""The services setting and the Ingress's bad input: parsed, defaulted, and refused with named errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from settings.args import web_service_args
from settings.load import SettingsError, parse_settings

DIGEST = "sha256:" + "0123456789abcdef" * 4
PINNED = f"registry.example.com/team/hello-world@{DIGEST}"
INGRESS = {"enabled": True, "host": "hello.example.com"}
V2 = {"name": "hello-v2", "message": "Hello World v2", "path": "/v2"}


def stack(services: Any = None, **ingress: Any) -> dict[str, Any]:
    """A promoted stack's raw config with an Ingress (``ingress`` overrides its keys) and ``services`` as JSON."""
    raw = {"image": PINNED, "ingress": json.dumps({**INGRESS, **ingress})}
    if services is not None:
        raw["services"] = json.dumps(services)
    return raw


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        parse_settings(raw, stack="prod")
    return raised.value.problems


def test_services_are_read_from_the_engines_json_with_their_defaults() -> None:
    settings = parse_settings(stack([V2, {"name": "beta", "host": "beta.example.com", "replicas": "1"}]), stack="prod")

    args = web_service_args(settings, PINNED)
    assert [(s.name, s.host, s.path, s.message, s.replicas) for s in args.services] == [
        ("hello-v2", None, "/v2", "Hello World v2", None),
        ("beta", "beta.example.com", "/", None, 1),
    ]
    assert [(r.host, r.path, r.service) for r in args.routes] == [
        ("hello.example.com", "/", "hello-world"),
        ("hello.example.com", "/v2", "hello-v2"),
        ("beta.example.com", "/", "beta"),
    ]


def test_a_service_name_of_the_longest_length_is_taken() -> None:
    settings = parse_settings(stack([{**V2, "name": "v" * 49}]), stack="prod")

    assert settings.services[0].name == "v" * 49


def test_a_stack_without_services_has_none() -> None:
    settings = parse_settings(stack(), stack="prod")

    assert settings.services == ()
    assert web_service_args(settings, PINNED).services == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            stack(host="hello_world.example.com"),
            "ingress.host must be a DNS host name such as hello.example.com, got 'hello_world.example.com'",
        ),
        (
            stack(host="Hello.Example.com"),
            "ingress.host must be a DNS host name such as hello.example.com, got 'Hello.Example.com'",
        ),
        (stack(path="v1"), "ingress.path must be a path starting with '/', got 'v1'"),
        (
            stack([{**V2, "path": "v2"}]),
            "services[0].path must be a path starting with '/', got 'v2'",
        ),
        (
            stack([{**V2, "host": "v2..example.com"}]),
            "services[0].host must be a DNS host name such as v2.example.com, got 'v2..example.com'",
        ),
        (
            stack([{**V2, "name": "Hello_V2"}]),
            "services[0].name must be a DNS label starting with a letter (lowercase letters, digits, '-', at most 49), "
            "got 'Hello_V2'",
        ),
        (
            stack([{**V2, "name": "v" * 50}]),
            "services[0].name must be a DNS label starting with a letter (lowercase letters, digits, '-', at most 49), "
            f"got {'v' * 50!r}",
        ),
        (
            stack([{"path": "/v2"}]),
            "services[0].name must be a DNS label starting with a letter (lowercase letters, digits, '-', at most 49), "
            "got nothing",
        ),
        (
            stack([{**V2, "name": "hello-world"}]),
            "services[0].name must be a name no other service has, got 'hello-world', which the main service has",
        ),
        (
            stack([V2, {**V2, "path": "/v3"}]),
            "services[1].name must be a name no other service has, got 'hello-v2', which services[0] has",
        ),
        (
            stack([{**V2, "name": "verify"}]),
            "services[0].name must be a name that names none of its resources like one of the main service's, got "
            "'verify': its network-policy would be named as the main service's verify-network-policy",
        ),
        (
            stack([{**V2, "path": "/"}]),
            "services[0].path must be a path no other service routes on host 'hello.example.com', got '/', "
            "which the main service (ingress.host and ingress.path) routes",
        ),
        (
            stack([V2, {"name": "v2-again", "host": "hello.example.com", "path": "/v2/"}]),
            "services[1].path must be a path no other service routes on host 'hello.example.com', got '/v2/', "
            "which services[0] ('hello-v2') routes",
        ),
        (
            stack([{**V2, "hots": "v2.example.com"}]),
            "services[0].hots is not a known setting: expected one of host, message, name, path, replicas, "
            "got 'hots' (did you mean 'services[0].host'?)",
        ),
        (stack(["hello-v2"]), "services[0] must be an object, got 'hello-v2'"),
        (
            {"image": PINNED, "services": json.dumps([V2])},
            "services must come with ingress.enabled: true (they are reached only through it), got 'hello-v2'",
        ),
        (
            {"image": PINNED, "ingress": json.dumps({**INGRESS, "enabled": False}), "services": json.dumps([V2])},
            "services must come with ingress.enabled: true (they are reached only through it), got 'hello-v2'",
        ),
        (
            {"image": PINNED, "services": "hello-v2"},
            "services must be a list of services, each an object with a name, got 'hello-v2'",
        ),
    ],
    ids=[
        "ingress-host-not-a-dns-name",
        "ingress-host-in-capitals",
        "ingress-path-without-slash",
        "service-path-without-slash",
        "service-host-not-a-dns-name",
        "service-name-not-a-dns-label",
        "service-name-too-long",
        "service-without-name",
        "service-named-as-the-main-one",
        "two-services-of-one-name",
        "service-named-like-a-main-resource",
        "service-on-the-main-services-route",
        "two-services-on-one-route",
        "unknown-service-key",
        "service-not-an-object",
        "services-without-ingress",
        "services-with-ingress-disabled",
        "services-not-a-list",
    ],
)
def test_bad_services_or_ingress_input_is_a_named_error(raw: dict[str, Any], message: str) -> None:
    assert problems_of(raw) == [message]


def test_every_clash_of_the_services_is_listed_at_once() -> None:
    problems = problems_of(stack([{**V2, "name": "hello-world"}, {**V2, "path": "/"}]))

    assert [problem.split(" ")[0] for problem in problems] == ["services[0].name", "services[1].path"]
