"""An Output whose value is not known yet, as the engine shows a value computed during the update."""

from __future__ import annotations

from typing import Any

import pulumi


def unknown() -> pulumi.Output[Any]:
    """A preview then shows "known after update" instead of a value built from an empty one."""
    return pulumi.Output(set(), _resolved(None), _resolved(False))


async def _resolved(value: Any) -> Any:
    return value
