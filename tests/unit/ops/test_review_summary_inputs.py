"""`make review STACKS=...` takes only stacks that have a stack file, before anything runs."""

from __future__ import annotations

import pytest

from ops import review_summary
from ops.__main__ import main


def test_review_refuses_a_stack_without_a_file_and_runs_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine(*args: object, **kwargs: object) -> None:
        raise AssertionError("pulumi must not run for a stack without a file")

    monkeypatch.setattr(review_summary, "preview_stack", no_engine)

    assert main(["review", "dev", "typo"]) == 2
    assert capsys.readouterr().err == ("error: stacks must have a Pulumi.<stack>.yaml (dev, prod, staging), got typo\n")
