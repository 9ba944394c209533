"""The mock tests see no local platform's per-machine values, whatever shell runs them."""

from __future__ import annotations

import pytest

from settings.local_platform import PINNED_BASE_IMAGE_VARIABLE


@pytest.fixture(autouse=True)
def _no_recorded_base_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without this, a shell that sourced tooling/platform/env.sh would fill this machine's base image into every
    stack copy a test writes (ops/stack_copy.py), and the tests would differ from machine to machine."""
    monkeypatch.delenv(PINNED_BASE_IMAGE_VARIABLE, raising=False)
