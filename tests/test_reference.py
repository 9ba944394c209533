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


def test_readme_layout_matches_the_tree() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```")[1]
    listed = {line.split()[0].rstrip("/") for line in block.splitlines() if line.strip() and not line.startswith(" ")}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    top = {path.split("/")[0] for path in tracked if not path.startswith(".")}
    program = {name for name in top if "." not in name or name.endswith(".py") or name.startswith("Pulumi.")}
    stacks = {name for name in program if name.startswith("Pulumi.") and name != "Pulumi.yaml"}

    assert program - stacks | {"Pulumi.<stack>.yaml"} == listed
    nested = {line.split()[0].rstrip("/") for line in block.splitlines() if line.startswith("  ")}
    assert nested == {path.split("/")[1] for path in tracked if path.startswith("tooling/")}
