"""What the settings model declares is what docs/settings.md documents and Pulumi.yaml declares."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from settings import reference
from tests.conftest import ROOT


def test_settings_doc_reference_and_pulumi_yaml_are_made_from_the_model() -> None:
    assert reference.main(["--check"]) == 0, "run: python -m settings.reference"


def test_reference_is_generated_into_docs_settings_md() -> None:
    assert reference.SETTINGS_DOC == ROOT / "docs" / "settings.md"
    assert reference.markdown() in reference.SETTINGS_DOC.read_text()


def test_reference_check_fails_when_the_settings_doc_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference, "markdown", lambda: reference.BEGIN + "\nstale\n" + reference.END)

    assert reference.main(["--check"]) == 1


def test_reference_refuses_a_settings_doc_without_its_markers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "settings.md"
    doc.parent.mkdir()
    doc.write_text("# Stack settings\n\nno markers\n")
    monkeypatch.setattr(reference, "PROJECT_DIR", tmp_path)
    monkeypatch.setattr(reference, "SETTINGS_DOC", doc)

    with pytest.raises(SystemExit, match=re.escape(f"docs/settings.md must hold the lines {reference.BEGIN}")):
        reference.main(["--check"])
    assert doc.read_text() == "# Stack settings\n\nno markers\n"


def test_every_setting_has_a_documented_default_or_requirement() -> None:
    for line in reference.markdown().splitlines():
        if line.startswith("| `") and not line.startswith("| `promotion."):
            assert "Default" in line or "Required" in line, line


@pytest.mark.parametrize(
    "module", ["ops.__main__", "ops.deploy", "ops.promotion", "ops.review_gate", "ops.render", "settings.stack_files"]
)
def test_ops_and_stack_files_do_not_load_the_program_or_the_kubernetes_sdk(module: str) -> None:
    probe = f"import sys, {module}; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)

    loaded = set(result.stdout.split())
    assert {"pulumi_kubernetes", "components", "settings.model"}.isdisjoint(loaded)
    assert "settings.stack_files" in loaded
