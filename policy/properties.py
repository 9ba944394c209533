"""Reading resource properties as the policy engine sends them.

Properties arrive with camelCase keys, every number as a float, and, under the policy SDK,
mappings and lists wrapped in read-only proxies. These helpers therefore only rely on the
``Mapping`` and ``Sequence`` interfaces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def get(value: Any, *path: str) -> Any:
    """The value at ``path`` inside nested mappings, or ``None`` where any step is missing."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def mapping(value: Any) -> Mapping[str, Any]:
    """A mapping property; an absent or malformed one is empty."""
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> list[Any]:
    """The elements of a list property; an absent or malformed one has none."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


def integer(value: Any) -> int | None:
    """An integral number as an int: the engine sends every number as a float."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def shown(value: Any) -> str:
    """A scalar as a manifest would spell it (``true``, ``0``, ``"text"``), for messages."""
    if (number := integer(value)) is not None:
        return str(number)
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)
    return repr(value)
