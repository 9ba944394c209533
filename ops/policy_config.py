"""Which policy config a stack's previews and updates run the policy pack with."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings.stack_files import STACK_NAME, StackFileError

POLICY_PACK_DIR = "policy"
"""The policy pack's folder, relative to the project."""
MANDATORY_POLICY_CONFIG: dict[str, Any] = {"all": "mandatory"}
"""The policy config of a stack without its own ``policy/config/<stack>.json``: every rule mandatory."""


def policy_config(project: Path, stack: str) -> dict[str, Any]:
    """The policy pack's config for a stack: its ``policy/config/<stack>.json``, else every rule mandatory.

    A stack nobody wrote enforcement levels for is held to every rule, never to none.

    Raises:
        StackFileError: When ``stack`` is not a stack name, or its policy config is not a JSON object.
    """
    if not STACK_NAME.fullmatch(stack) or stack.startswith("."):
        raise StackFileError(f"a stack name must be letters, digits, '_', '.' or '-', got {stack!r}")
    path = project / POLICY_PACK_DIR / "config" / f"{stack}.json"
    if not path.exists():
        return dict(MANDATORY_POLICY_CONFIG)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StackFileError(f"{path} must be a JSON policy config, got an error: {error}") from None
    if not isinstance(config, dict):
        raise StackFileError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


@dataclass(frozen=True)
class PolicyRun:
    """The policy pack and the config file one stack's preview or update runs it with."""

    pack: Path
    config: Path


@contextmanager
def policy_run(project: Path, stack: str) -> Iterator[PolicyRun]:
    """The pack and the stack's config (:func:`policy_config`) as files, for the length of the block.

    Raises:
        StackFileError: As :func:`policy_config`.
    """
    pack = project / POLICY_PACK_DIR
    own = pack / "config" / f"{stack}.json"
    config = policy_config(project, stack)
    if own.exists():
        yield PolicyRun(pack=pack, config=own)
        return
    with tempfile.TemporaryDirectory(prefix="policy-config-") as scratch:
        written = Path(scratch) / f"{stack}.json"
        written.write_text(json.dumps(config))
        yield PolicyRun(pack=pack, config=written)
