"""Reads a stack's settings through Pulumi's config API and reports every problem at once, before any resource."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pydantic import BaseModel, ValidationError

from components.web_service import routing_problems
from settings import PROJECT, decoded_object
from settings.args import ingress_args, service_args
from settings.clashes import namespace_clashes, node_port_clashes
from settings.model import StackSettings, aliases, expectation, rendered_without, secret_of, section_of
from settings.stack_files import read_stack_files

SECRETS = {key: secret for key, info in aliases(StackSettings).items() if (secret := secret_of(info)) is not None}
"""The secret settings by key, with the group each goes with and when it is required."""
RENDERED_WITHOUT = frozenset(key for key, info in aliases(StackSettings).items() if rendered_without(info))
"""Secret settings a render (``cluster.renderTo``, which gets no secrets) goes without."""


class SettingsError(pulumi.RunError):
    """Raised with every problem of a stack's settings at once."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"stack '{stack}' has {len(problems)} {noun} in its settings:\n{lines}")


def parse_settings(raw: Mapping[str, Any], *, stack: str, secret_keys: frozenset[str] = frozenset()) -> StackSettings:
    """Parses config values as the engine passes them: keys without the ``hello-world:`` prefix, objects as JSON.

    Raises:
        SettingsError: Listing every invalid, missing or unknown setting.
    """
    problems = _presence_problems(raw, secret_keys)
    try:
        settings = StackSettings.model_validate(raw, context={"stack": stack})
    except ValidationError as error:
        problems = _problems(error) + problems
    else:
        # The services' routes and names tie them to each other and to the Ingress: checked once each is valid.
        problems += routing_problems(PROJECT, ingress_args(settings), service_args(settings))
    if problems:
        raise SettingsError(stack, problems)
    return settings


def _presence_problems(raw: Mapping[str, Any], secret_keys: frozenset[str]) -> list[str]:
    """The rules that tie keys together; checked beside the model so that they are reported with its errors."""
    given = {key for key, value in raw.items() if value is not None}
    problems = []
    if {"image", "build"} <= given:
        problems.append(
            "image and build are exclusive: expected image (deploy a pinned image) or build (build app/), got both"
        )
    if not {"image", "build"} & given:
        problems.append("image or build must be set: expected a pinned image reference or a build section, got neither")
    rendering = _renders(raw)
    for key, (section, when) in SECRETS.items():
        if section in given and key not in given:
            if not (rendering and key in RENDERED_WITHOUT):
                problems.append(
                    f"{key} must be set with `pulumi config set --secret {key} <password>` {when}, got nothing"
                )
        elif key in given and section not in given:
            problems.append(
                f"{key} is only used with {section}: expected no {key}, got one without a {section} section"
            )
        elif key in given and key not in secret_keys:
            # Never echo the value: it is a password that was stored in plaintext by mistake.
            problems.append(f"{key} must be a secret (pulumi config set --secret {key} ...), got a plaintext value")
    return problems


def _renders(raw: Mapping[str, Any]) -> bool:
    """Whether the stack writes manifests (``cluster.renderTo``) instead of applying them."""
    cluster = decoded_object(raw.get("cluster"))
    return isinstance(cluster, dict) and cluster.get("renderTo") is not None


def _problems(error: ValidationError) -> list[str]:
    """Pydantic's errors as "<key> must be <expected>, got <value>", unknown keys first."""
    unknown, invalid = [], []
    for detail in error.errors():
        *parents, last = detail["loc"]
        model: type[BaseModel] = StackSettings
        for part in parents:
            # An index into a list of sections stays in that section.
            if isinstance(part, str):
                model = section_of(aliases(model)[part]) or model
        key = _key(detail["loc"])
        given = "nothing" if detail["type"] == "missing" or detail["input"] is None else repr(detail["input"])
        if isinstance(last, int):
            invalid.append(f"{key} must be an object, got {given}")
            continue
        if detail["type"] == "extra_forbidden":
            known = sorted(aliases(model))
            close = difflib.get_close_matches(last, known, n=1)
            hint = f" (did you mean '{key.removesuffix(last)}{close[0]}'?)" if close else ""
            unknown.append(f"{key} is not a known setting: expected one of {', '.join(known)}, got {last!r}{hint}")
            continue
        # A validator's own error says what it expects; the input is the value as the stack gave it.
        expected = str(detail["ctx"]["error"]) if detail["type"] == "value_error" else expectation(aliases(model)[last])
        invalid.append(f"{key} must be {expected}, got {given}")
    return unknown + invalid


def _key(location: tuple[int | str, ...]) -> str:
    """A setting's key as a stack file spells it: ``ingress.host``, ``services[1].path``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).removeprefix(".")


def load_settings() -> StackSettings:
    """Reads the current stack's config through Pulumi's config API and parses it.

    Raises:
        SettingsError: Listing every invalid, missing or unknown setting.
    """
    prefix = f"{PROJECT}:"
    config = pulumi.Config(PROJECT)
    keys = [key.removeprefix(prefix) for key in pulumi.runtime.get_config_env() if key.startswith(prefix)]
    raw = {key: config.get_secret(key) if key in SECRETS else config.get(key) for key in keys}
    secret_keys = frozenset(key for key in keys if pulumi.runtime.is_config_secret(prefix + key))
    settings = parse_settings(raw, stack=pulumi.get_stack(), secret_keys=secret_keys)
    # The engine runs the program in the project folder, beside the stack files. A sibling file that
    # cannot be read is that stack's problem: say so, and check against the others.
    siblings = read_stack_files(Path.cwd(), on_error=lambda problem: pulumi.log.warn(f"{problem}; not checked"))
    clashes = node_port_clashes(settings, siblings) + namespace_clashes(settings, siblings)
    if clashes:
        raise SettingsError(settings.stack, clashes)
    return settings
