"""tooling/platform/ingress.sh, the ingress controller's script, on its own (no root, no cluster)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT

INGRESS_SH = ROOT / "tooling" / "platform" / "ingress.sh"


@pytest.mark.parametrize("argv", [[], ["start"], ["up-all"]], ids=["nothing", "unknown", "near-miss"])
def test_ingress_script_names_its_commands_when_given_another(argv: list[str]) -> None:
    result = subprocess.run([str(INGRESS_SH), *argv], capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 1
    assert result.stderr.strip() == f"error: usage: {INGRESS_SH} build | up | down | refresh-sums"
