"""The stack files, ``Pulumi.<stack>.yaml``: the one module that finds, reads and writes them.

Read by the program (the cross-stack checks) and by the operations core (ops/); light on purpose.
Reading uses PyYAML's safe loader without aliases, on at most MAX_STACK_FILE_BYTES; writing goes through
ruamel.yaml's round trip, so that a rewritten file keeps its comments, order and quoting, and differs only
where a value changed.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from settings import PROJECT

_PREFIX = f"{PROJECT}:"
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
"""A stack's own name, as Pulumi allows it (the last part of ``org/project/stack``)."""
SECRETS_KEYS = ("encryptionsalt", "encryptedkey", "secretsprovider")
"""A stack file's top-level keys that say how its secrets are encrypted."""
MAX_STACK_FILE_BYTES = 1 << 20
"""The largest stack file read: a stack's settings take a few kilobytes."""


class StackFileError(Exception):
    """A stack file is missing, is not YAML, or does not hold a ``config`` mapping."""


class _AliasFound(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("alias")
        self.problem_mark = mark


class _PlainLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: ``*name`` repeats a node, and a few nest to billions of them."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise _AliasFound(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        return super().compose_node(parent, index)  # type: ignore[no-untyped-call]


class _PlainDumper(yaml.SafeDumper):
    """PyYAML's safe dumper that never writes an alias, so that :func:`load_yaml` reads what it writes."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def load_yaml(path: Path) -> Any:
    """A stack file's (or its machine copy's) YAML document: at most MAX_STACK_FILE_BYTES, without aliases.

    Raises:
        StackFileError: Naming the file and what is wrong with it.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_STACK_FILE_BYTES + 1)
            size = os.fstat(handle.fileno()).st_size
    except OSError as error:
        raise StackFileError(f"{path.name} cannot be read: {error.strerror}") from None
    if len(data) > MAX_STACK_FILE_BYTES:
        raise StackFileError(f"{path.name} must be at most {MAX_STACK_FILE_BYTES} bytes, got {max(size, len(data))}")
    try:
        return yaml.load(data.decode(), Loader=_PlainLoader)
    except UnicodeDecodeError as error:
        raise StackFileError(
            f"{path.name} must be UTF-8 text, got a byte that is not UTF-8 at offset {error.start}"
        ) from None
    except _AliasFound as error:
        raise StackFileError(f"{path.name} must be YAML without aliases (*name), got one {_where(error)}") from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{path.name} must be YAML, got an error {_where(error)}") from None
    except RecursionError:
        raise StackFileError(f"{path.name} must be YAML nested a few levels deep, got one nested too deep") from None


def dump_yaml(document: Any) -> str:
    """YAML that :func:`load_yaml` reads back: no aliases, keys in their order, lines unbroken."""
    return yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, width=2**16, allow_unicode=True)


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
    document = load_yaml(path) or {}
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
    return project_settings(read_engine_config(directory, stack))


def project_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The project's settings of an engine config (:func:`read_engine_config`), keys without the prefix."""
    return {key.removeprefix(_PREFIX): value for key, value in config.items() if key.startswith(_PREFIX)}


def read_known_settings(directory: Path, stack: str) -> dict[str, Any]:
    """The settings of a stack that has a file, as :func:`read_settings`.

    Raises:
        StackFileError: When the stack has no file (naming those there are), or its file is broken.
    """
    known = stack_names(directory)
    if stack not in known:
        raise StackFileError(f"STACK must be one of {', '.join(known)}, got {stack!r}")
    return read_settings(directory, stack)


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
    return {key: value for key, value in read_engine_config(directory, stack).items() if not is_encrypted(value)}


def is_encrypted(value: Any) -> bool:
    """Whether a config value is a secret (``{secure: <ciphertext>}``)."""
    return isinstance(value, dict) and "secure" in value


def replace_plain_config(directory: Path, stack: str, config: Mapping[str, Any]) -> None:
    """Replaces the stack's plain config, keeping its encrypted values and its other keys (the salt)."""
    path = stack_file(directory, stack)
    document = _round_trip().load(path.read_text()) if path.exists() else None
    document = document if isinstance(document, dict) else {}
    encrypted = {key: value for key, value in (document.get("config") or {}).items() if is_encrypted(value)}
    document["config"] = {**{key: _quoted(value) for key, value in config.items()}, **encrypted}
    write_atomically(path, _dump(document))


@contextmanager
def restoring(directory: Path, stack: str, *, unless_success: bool = False) -> Iterator[None]:
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
    elif not path.exists() or path.read_bytes() != before:
        write_atomically(path, before)


def write_atomically(path: Path, content: bytes, *, private: bool = False) -> None:
    """Writes ``path`` so that a reader sees the old file or the new one, never half of one.

    With ``private``, the file is readable by its owner only (0600) from its first byte.
    """
    # A scratch name of its own (mkstemp makes it 0600, O_EXCL): two writers at once never share one.
    descriptor, scratch_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    scratch = Path(scratch_name)
    try:
        if not private:
            os.fchmod(descriptor, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        scratch.replace(path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


def set_settings(directory: Path, stack: str, settings: Mapping[str, Any]) -> None:
    """Sets project settings (keys without the ``hello-world:`` prefix) in a stack file, in one step.

    Everything else stays: the other settings, encrypted values, the salt, comments and quoting.
    Values are written as Pulumi writes them (text, objects as mappings).

    Raises:
        StackFileError: When the file is missing or broken.
    """
    read_engine_config(directory, stack)  # names the file and its problem when it cannot be used
    path = stack_file(directory, stack)
    document = _round_trip().load(path.read_text())
    if document is None:
        # Comments alone (or nothing) hold no mapping to set a key in, and a new one would drop the comments.
        raise StackFileError(f"{path.name} must be a mapping with a config key to set settings in, got no document")
    if document.get("config") is None:
        document["config"] = {}
    for key, value in settings.items():
        document["config"][_PREFIX + key] = _quoted(value)
    write_atomically(path, _dump(document))


def _round_trip() -> Any:
    from ruamel.yaml import YAML  # only writers pay for it: the program reads with PyYAML

    round_trip = YAML(typ="rt")
    round_trip.preserve_quotes = True
    round_trip.width = 2**16
    round_trip.indent(mapping=2, sequence=4, offset=2)
    return round_trip


def _quoted(value: Any) -> Any:
    """Text that YAML would read as something else (``"2"``, ``"true"``) double-quoted, as Pulumi writes it."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if isinstance(value, str):
        return DoubleQuotedScalarString(value) if _reads_otherwise(value) else value
    if isinstance(value, Mapping):
        return {key: _quoted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_quoted(item) for item in value]
    return value


def _reads_otherwise(text: str) -> bool:
    try:
        return bool(yaml.load(text, Loader=_PlainLoader) != text)
    except (yaml.YAMLError, RecursionError):
        return True


def _dump(document: Any) -> bytes:
    out = io.StringIO()
    _round_trip().dump(document, out)
    return out.getvalue().encode()
