"""One module runs Pulumi: ops/engine.py. The rest of the project drives it through the operations core."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Below the product: the toolchain builds and checks the CLI itself, and the bench times the bare CLI
# beside the empty program as the floor every ratio is measured against.
MACHINERY = (ROOT / "tooling" / "toolchain", ROOT / "tooling" / "bench")
RUNNER = ROOT / "ops" / "engine.py"


def pulumi_command_lines(path: Path) -> list[int]:
    """Lines where a command line starting with ``pulumi`` is written out (``["pulumi", ...]``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value == "pulumi":
                found.append(node.lineno)
    return found


def test_no_module_but_the_engine_spawns_the_pulumi_cli() -> None:
    sources = [
        path
        for path in ROOT.rglob("*.py")
        if not path.is_relative_to(ROOT / ".venv")
        and not path.is_relative_to(ROOT / "tests")
        and not any(path.is_relative_to(folder) for folder in MACHINERY)
    ]

    spawning = {str(path.relative_to(ROOT)): lines for path in sources if (lines := pulumi_command_lines(path))}

    assert len(sources) > 30
    assert spawning == {}, "run pulumi through ops/engine.py (Engine, PulumiRunner)"


def test_the_check_finds_a_command_line_written_out() -> None:
    assert pulumi_command_lines(RUNNER) == [], "the engine runs `self.command`, whichever CLI that is"
    assert pulumi_command_lines(Path(__file__)) == [], "this file names the CLI only in strings, not lists"
    assert pulumi_command_lines(ROOT / "tests" / "engine" / "workspace.py"), "the test harness runs the CLI itself"
