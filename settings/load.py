"""Reads a stack's settings through Pulumi's config API and reports every problem at once, before any resource."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from settings import PROJECT
from settings.clashes import cluster_clashes
from settings.model import StackSettings, _object, aliases, expectation, section_of
from settings.stack_files import read_stack_files

PASSWORD = "registryPassword"


class SettingsError(pulumi.RunError):
    """Raised with every problem of a stack's settings at once."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"stack '{stack}' has {len(problems)} {noun} in its settings:\n{lines}")


def parse_settings(raw: Mapping[str, Any], *, stack: str, secret_keys: frozenset[str] = frozenset()) -> StackSettings:
    """Parses the project's config values (keys without the ``hello-world:`` prefix).

    Args:
        raw: Config values as the engine passes them: strings, objects as JSON strings; the password
            as a secret Output (or any value: it is passed through, never read or shown).
        stack: Name of the stack, for defaults and messages.
        secret_keys: Keys that were stored encrypted.

    Raises:
        SettingsError: Listing every invalid, missing or unknown setting.
    """
    problems = _presence_problems(raw, secret_keys)
    try:
        settings = StackSettings.model_validate(raw, context={"stack": stack})
    except ValidationError as error:
        raise SettingsError(stack, _problems(error, raw) + problems) from None
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
    if "build" in given and PASSWORD not in given:
        problems.append(
            f"{PASSWORD} must be set with `pulumi config set --secret {PASSWORD} <password>` when building, got nothing"
        )
    if "build" not in given and PASSWORD in given:
        problems.append(f"{PASSWORD} is only used with build: expected no {PASSWORD}, got one without a build section")
    elif PASSWORD in given and PASSWORD not in secret_keys:
        # Never echo the value: it is a password that was stored in plaintext by mistake.
        problems.append(
            f"{PASSWORD} must be a secret (pulumi config set --secret {PASSWORD} ...), got a plaintext value"
        )
    return problems


def _problems(error: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    """Pydantic's errors as "<key> must be <expected>, got <value>", unknown keys first."""
    unknown, invalid = [], []
    for detail in error.errors():
        *parents, last = [str(part) for part in detail["loc"]]
        model = _model_at(parents)
        if detail["type"] == "extra_forbidden":
            unknown.append(_unknown_key(parents, last, sorted(aliases(model))))
            continue
        key = ".".join([*parents, last])
        sub_key = detail["msg"] if detail["type"] == "setting" else ""
        given = "nothing" if detail["type"] == "missing" or sub_key else repr(_given(raw, detail))
        invalid.append(f"{key}{'.' + sub_key if sub_key else ''} must be {_expected(detail, model, last)}, got {given}")
    return unknown + invalid


def _given(raw: Mapping[str, Any], detail: ErrorDetails) -> Any:
    """The value as the stack gave it (``'0'``), not as the model converted it (``0``)."""
    value: Any = raw
    for part in detail["loc"]:
        try:
            value = _object(value)[part]
        except (ValueError, KeyError, TypeError):
            return detail["input"]
    return value


def _unknown_key(parents: list[str], key: str, known: list[str]) -> str:
    where = "".join(f"{parent}." for parent in parents)
    hint = difflib.get_close_matches(key, known, n=1)
    suggestion = f" (did you mean '{where}{hint[0]}'?)" if hint else ""
    return f"{where}{key} is not a known setting: expected one of {', '.join(known)}, got {key!r}{suggestion}"


def _model_at(path: list[str]) -> type[BaseModel]:
    model: type[BaseModel] = StackSettings
    for part in path:
        model = section_of(aliases(model)[part]) or model
    return model


def _expected(detail: ErrorDetails, model: type[BaseModel], key: str) -> str:
    if detail["type"] == "setting":
        return str(detail["ctx"]["expected"])
    info = aliases(model).get(key)
    return expectation(info) if info else "valid"


def load_settings() -> StackSettings:
    """Reads the current stack's config through Pulumi's config API and parses it.

    Raises:
        SettingsError: Listing every invalid, missing or unknown setting.
    """
    prefix = f"{PROJECT}:"
    config = pulumi.Config(PROJECT)
    keys = [key.removeprefix(prefix) for key in pulumi.runtime.get_config_env() if key.startswith(prefix)]
    raw: dict[str, Any] = {key: config.get(key) for key in keys if key != PASSWORD}
    if PASSWORD in keys:
        raw[PASSWORD] = config.get_secret(PASSWORD)
    secret_keys = frozenset(key for key in keys if pulumi.runtime.is_config_secret(prefix + key))
    settings = parse_settings(raw, stack=pulumi.get_stack(), secret_keys=secret_keys)
    # The engine runs the program in the project folder, beside the stack files. A sibling file that
    # cannot be read is that stack's problem: say so, and check against the others.
    siblings = read_stack_files(Path.cwd(), on_error=lambda problem: pulumi.log.warn(f"{problem}; not checked"))
    clashes = cluster_clashes(settings, siblings)
    if clashes:
        raise SettingsError(settings.stack, clashes)
    return settings
