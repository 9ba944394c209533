"""What the settings model declares is what the README documents and Pulumi.yaml declares."""

from __future__ import annotations

import subprocess
import sys

import pytest

from settings import reference
from tests.conftest import ROOT


def test_readme_settings_reference_and_pulumi_yaml_are_made_from_the_model() -> None:
    assert reference.main(["--check"]) == 0, "run: python -m settings.reference"


def test_reference_check_fails_when_the_readme_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference, "markdown", lambda: reference.BEGIN + "\nstale\n" + reference.END)

    assert reference.main(["--check"]) == 1


def test_every_setting_has_a_documented_default_or_requirement() -> None:
    for line in reference.markdown().splitlines():
        if line.startswith("| `") and not line.startswith("| `promotion."):
            assert "Default" in line or "Required" in line, line


@pytest.mark.parametrize("module", ["delivery.promote", "delivery.review", "delivery.render", "settings.stack_files"])
def test_delivery_and_stack_files_do_not_load_the_program_or_the_kubernetes_sdk(module: str) -> None:
    probe = f"import sys, {module}; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)

    loaded = set(result.stdout.split())
    assert {"pulumi_kubernetes", "components", "settings.model"}.isdisjoint(loaded)
    assert "settings.stack_files" in loaded
