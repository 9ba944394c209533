"""requirements.txt is exactly what the program and the policy pack import; the tools are in requirements-dev.txt."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = (ROOT / "__main__.py", ROOT / "image_ref.py", ROOT / "components", ROOT / "settings", ROOT / "policy")
"""What Pulumi runs: the program's modules and packages, and the policy pack."""
FIRST_PARTY = {path.stem if path.is_file() else path.name for path in PROGRAM} - {"__main__"}
IMPORTS_OF = {
    "pulumi": ("pulumi",),
    "pulumi-kubernetes": ("pulumi_kubernetes",),
    "pulumi-docker": ("pulumi_docker",),
    "pulumi-docker-build": ("pulumi_docker_build",),
    "pulumi-policy": ("pulumi_policy",),
    "pydantic": ("pydantic", "pydantic_core"),
    "PyYAML": ("yaml",),
    "ruamel.yaml": ("ruamel.yaml",),
}
"""The modules each distribution installs (pydantic brings pydantic_core; ruamel is a namespace)."""
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)$")


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def pins(path: Path) -> dict[str, str]:
    """``name -> version`` of the file's own pins; every line but an ``-r`` include must pin exactly."""
    found = {}
    for line in requirement_lines(path):
        if line.startswith("-r "):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} must pin one version exactly (name==X)"
        found[match["name"]] = match["version"]
    return found


def program_modules() -> Iterator[Path]:
    for path in PROGRAM:
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def imported(path: Path) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Each absolute import anywhere in the module (a lazy import counts too): line and the names it may load."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, (alias.name,)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from ruamel import yaml` loads ruamel.yaml: the imported name may be a submodule.
            yield node.lineno, (node.module, *(f"{node.module}.{alias.name}" for alias in node.names))


def provider(module: str) -> str | None:
    """The distribution in IMPORTS_OF whose modules include ``module``."""
    for distribution, modules in IMPORTS_OF.items():
        if any(module == name or module.startswith(f"{name}.") for name in modules):
            return distribution
    return None


def third_party_imports() -> dict[str, str | None]:
    """``file:line imports X -> distribution`` (None: no requirement provides it) for every third-party import."""
    found: dict[str, str | None] = {}
    for path in program_modules():
        for line, names in imported(path):
            top = names[0].split(".", 1)[0]
            if top in sys.stdlib_module_names or top in FIRST_PARTY:
                continue
            providers = {provider(name) for name in names} - {None}
            where = f"{path.relative_to(ROOT)}:{line} imports {names[0]}"
            found[where] = providers.pop() if providers else None
    return found


def test_requirements_pin_every_package_exactly() -> None:
    assert pins(ROOT / "requirements.txt")
    assert pins(ROOT / "requirements-dev.txt")


def test_requirements_dev_starts_with_the_programs_requirements_and_repeats_none() -> None:
    assert requirement_lines(ROOT / "requirements-dev.txt")[0] == "-r requirements.txt"
    program, dev = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    twice = sorted(program.keys() & dev.keys())
    assert not twice, f"pinned in both requirements.txt and requirements-dev.txt: {twice}"


def test_requirements_satisfy_every_import_of_the_program_and_policy_pack() -> None:
    listed = pins(ROOT / "requirements.txt").keys()
    missing = [where for where, distribution in third_party_imports().items() if distribution not in listed]
    assert not missing, f"requirements.txt must list what these import (and IMPORTS_OF map it): {missing}"


def test_requirements_list_only_what_the_program_and_policy_pack_import() -> None:
    used = set(third_party_imports().values())
    unused = sorted(pins(ROOT / "requirements.txt").keys() - used)
    assert not unused, f"requirements.txt lists {unused}; nothing Pulumi runs imports them: requirements-dev.txt"


def test_requirements_pin_the_toolchains_versions_where_env_sh_reads_them() -> None:
    program = pins(ROOT / "requirements.txt")
    assert {"pulumi", "pulumi-kubernetes", "pulumi-docker", "pulumi-docker-build"} <= program.keys()
