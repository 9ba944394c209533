"""A stack's settings: declared in `model`, read and checked in `load`, turned into component Args in `args`.

This package imports nothing heavy itself, so `ops/` can use `settings.stack_files` and
`settings.local_platform` alone.
"""

import json
from contextlib import suppress
from typing import Any

PROJECT = "hello-world"
"""The Pulumi project: the prefix of every setting (``hello-world:<key>``)."""
DEFAULT_BUILD_CONTEXT = "app"
"""The image's build context, relative to the project: the sample server and its Dockerfile."""


def default_namespace(stack: str) -> str:
    """The namespace a stack deploys into unless its ``namespace`` setting names another."""
    return f"{PROJECT}-{stack}"


def decoded_object(value: Any) -> Any:
    """An object setting as the engine keeps one set with `pulumi config set`: JSON text, decoded. Anything else
    (a mapping, other text, text that is not JSON) comes back as it is."""
    return _decoded(value, "{")


def decoded_list(value: Any) -> Any:
    """A list setting as the engine keeps one: JSON text, decoded, as :func:`decoded_object` decodes an object."""
    return _decoded(value, "[")


def _decoded(value: Any, opening: str) -> Any:
    if isinstance(value, str) and value.lstrip().startswith(opening):
        with suppress(ValueError):
            return json.loads(value)
    return value
