"""The stack files, ``Pulumi.<stack>.yaml``: the one module that finds, reads and guards them.

Light on purpose (PyYAML only), so that `delivery/` and shell scripts can use it without the program.
Usage: python -m settings.stack_files build-registry STACK   (prints the registry a stack pushes to, if any)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from settings import PROJECT

_PREFIX = f"{PROJECT}:"


class StackFileError(Exception):
    """A stack file is missing, is not YAML, or does not hold a ``config`` mapping."""


def stack_file(directory: Path, stack: str) -> Path:
    return directory / f"Pulumi.{stack}.yaml"


def stack_names(directory: Path) -> list[str]:
    """Every stack with a file, its name read whole (``Pulumi.eu.prod.yaml`` is stack ``eu.prod``)."""
    return sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in directory.glob("Pulumi.?*.yaml"))


def read_engine_config(directory: Path, stack: str) -> dict[str, Any]:
    """A stack file's ``config`` as written: namespaced keys, objects as mappings, secrets as ``{secure: ...}``.

    Raises:
        StackFileError: Naming the file and what is wrong with it.
    """
    path = stack_file(directory, stack)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise StackFileError(f"{path.name} cannot be read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{path.name} must be YAML, got an error {_where(error)}") from None
    if not isinstance(document, dict):
        raise StackFileError(f"{path.name} must be a mapping with a config key, got a {type(document).__name__}")
    config = document.get("config", {})
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: config must be a mapping of settings, got a {type(config).__name__}")
    return config


def _where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    return f"at line {mark.line + 1}, column {mark.column + 1}" if mark else "while parsing"


def read_settings(directory: Path, stack: str) -> dict[str, Any]:
    """The project's settings of one stack file, keys without the ``hello-world:`` prefix."""
    config = read_engine_config(directory, stack)
    return {key.removeprefix(_PREFIX): value for key, value in config.items() if key.startswith(_PREFIX)}


def read_stack_files(
    directory: Path, on_error: Callable[[str], None] = lambda problem: None
) -> dict[str, dict[str, Any]]:
    """The settings of every stack file that can be read; what is wrong with the others goes to ``on_error``."""
    stacks = {}
    for name in stack_names(directory):
        try:
            stacks[name] = read_settings(directory, name)
        except StackFileError as error:
            on_error(str(error))
    return stacks


def as_engine_values(config: Mapping[str, Any]) -> dict[str, str]:
    """Config values as the engine passes them to a program: text, objects as JSON."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def plain_config(directory: Path, stack: str) -> dict[str, Any]:
    """The stack file's config without its encrypted values, which only this machine's passphrase opens."""
    return {key: value for key, value in read_engine_config(directory, stack).items() if not _encrypted(value)}


def _encrypted(value: Any) -> bool:
    return isinstance(value, dict) and "secure" in value


def replace_plain_config(directory: Path, stack: str, config: Mapping[str, Any]) -> None:
    """Replaces the stack's plain config, keeping its encrypted values and its other keys (the salt)."""
    path = stack_file(directory, stack)
    document = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    encrypted = {key: value for key, value in (document.get("config") or {}).items() if _encrypted(value)}
    document["config"] = {**dict(config), **encrypted}
    _write_atomically(path, yaml.safe_dump(document, sort_keys=False).encode())


@contextmanager
def kept_as_is(directory: Path, stack: str, *, unless_success: bool = False) -> Iterator[None]:
    """Puts the stack file's bytes back afterwards (or only on failure, with ``unless_success``).

    Restoring the bytes is what "nothing changed" means: secrets' ciphertext and salt included.
    """
    path = stack_file(directory, stack)
    before = path.read_bytes() if path.exists() else None
    try:
        yield
    except BaseException:
        _restore(path, before)
        raise
    if not unless_success:
        _restore(path, before)


def _restore(path: Path, before: bytes | None) -> None:
    if before is None:
        path.unlink(missing_ok=True)
    else:
        _write_atomically(path, before)


def _write_atomically(path: Path, content: bytes) -> None:
    """A reader sees the old file or the new one, never half of one."""
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_bytes(content)
    scratch.replace(path)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "build-registry":
        print("usage: python -m settings.stack_files build-registry STACK", file=sys.stderr)
        return 2
    stack = argv[1]
    if stack not in stack_names(Path.cwd()):
        print(f"error: STACK must be one of {', '.join(stack_names(Path.cwd()))}, got {stack!r}", file=sys.stderr)
        return 2
    try:
        build = read_settings(Path.cwd(), stack).get("build")
    except StackFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if isinstance(build, dict) and isinstance(build.get("registry"), str):
        print(build["registry"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
