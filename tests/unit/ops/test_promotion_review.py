"""A promotion reviewed before its approval: `--save-review` previews and saves, deploying nothing; `--reviewed`
deploys only when a fresh preview shows exactly the saved changes (promote.yml's prod review, then its approval).

The promotion runs as a process against the stand-in pulumi of tests/unit/ops/test_promotion.py; no engine.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from ops.review_gate import BINDING_VERSION
from tests.unit.ops.test_promotion import (  # noqa: F401 - fixtures
    PROCESS_TIMEOUT_SECONDS,
    Promotion,
    fake_registry,
    promotion,
)


@pytest.fixture
def promoting(promotion: Promotion) -> Promotion:  # noqa: F811 - the fixture of tests/unit/ops/test_promotion.py
    return promotion


def commands(run: Promotion) -> list[str]:
    return [entry["args"][0] for entry in run.entries() if entry.get("args", [""])[0] in ("preview", "up")]


def test_promotion_with_save_review_previews_saves_and_deploys_nothing(promoting: Promotion, tmp_path: Path) -> None:
    before = promoting.stack_file()
    saved = tmp_path / "review"
    saved.mkdir()

    result = promoting.run("--from", "dev", "--to", "staging", "--yes", "--save-review", str(saved))

    assert result.returncode == 0, result.stderr
    record = json.loads((saved / "staging.review.json").read_text())
    assert record["stack"] == "staging"
    assert "nothing was deployed" in result.stdout
    assert commands(promoting) == ["preview"]
    assert promoting.stack_file() == before


def test_promotion_held_to_its_review_deploys_when_the_preview_shows_the_reviewed_changes(
    promoting: Promotion, tmp_path: Path
) -> None:
    promoting.run("--from", "dev", "--to", "staging", "--save-review", str(tmp_path))

    process = promoting.start(
        "--from", "dev", "--to", "staging", "--yes", "--reviewed", str(tmp_path / "staging.review.json")
    )
    promoting.wait_for("up_started", process)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)

    assert "The changes are those reviewed in" in stdout
    assert commands(promoting) == ["preview", "preview", "up"]
    (held,) = [entry["plan"] for entry in promoting.entries() if "plan" in entry]
    assert held == (tmp_path / "staging.plan.json").read_text(), "the up is held to the reviewed update plan"


def test_promotion_held_to_a_review_of_other_changes_deploys_nothing(promoting: Promotion, tmp_path: Path) -> None:
    before = promoting.stack_file()
    promoting.run("--from", "dev", "--to", "staging", "--save-review", str(tmp_path))
    review = tmp_path / "staging.review.json"
    record = json.loads(review.read_text())
    record["changes"] = {
        "kubernetes:apps/v1:Deployment hello-world": {
            "op": "update",
            "fields": {"spec.template.spec.containers[0].image": ["old", "the reviewed image"]},
            "replaceReasons": [],
        }
    }
    review.write_text(json.dumps(record))

    result = promoting.run("--from", "dev", "--to", "staging", "--yes", "--reviewed", str(review))

    assert result.returncode == 1
    assert "the preview of staging must show the changes reviewed in" in result.stderr
    assert "nothing was deployed" in result.stderr
    assert commands(promoting) == ["preview", "preview"]
    assert promoting.stack_file() == before


def test_promotion_held_to_another_stacks_review_is_refused_before_anything_runs(
    promoting: Promotion, tmp_path: Path
) -> None:
    review = tmp_path / "prod.review.json"
    review.write_text(json.dumps({"version": BINDING_VERSION, "stack": "prod", "changes": {}, "buildContext": None}))

    result = promoting.run("--from", "dev", "--to", "staging", "--yes", "--reviewed", str(review))

    assert result.returncode == 2
    assert "REVIEWED must be a review of stack 'staging', got one of 'prod'" in result.stderr
    assert promoting.entries() == []
