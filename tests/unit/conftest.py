"""The mock tests see no local platform's per-machine values, whatever shell runs them."""

from __future__ import annotations

import pytest

from settings.local_platform import PINNED_BASE_IMAGE_VARIABLE


@pytest.fixture(autouse=True)
def _no_recorded_base_image(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without this, a shell that sourced tooling/platform/env.sh would fill this machine's base image into every
    stack copy a test writes (ops/stack_copy.py), and the tests would differ from machine to machine. A test here
    that deploys on the platform (the bench's) keeps it: its stacks' checks run from that image."""
    if request.node.get_closest_marker("platform") is None:
        monkeypatch.delenv(PINNED_BASE_IMAGE_VARIABLE, raising=False)
