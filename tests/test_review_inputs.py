"""`make review STACKS=...` takes only stacks that have a stack file, before anything runs."""

from __future__ import annotations

import subprocess

import pytest

from delivery import review


def test_review_refuses_a_stack_without_a_file_and_runs_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine(*args: object, **kwargs: object) -> None:
        raise AssertionError("pulumi must not run for a stack without a file")

    monkeypatch.setattr(subprocess, "run", no_engine)

    assert review.main(["dev", "typo"]) == 2
    assert capsys.readouterr().err == ("error: stacks must have a Pulumi.<stack>.yaml (dev, prod, staging), got typo\n")
