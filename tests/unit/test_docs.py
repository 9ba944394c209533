"""The README is a front door, and what it and docs/ name is there: files, modules, make targets, anchors."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 200
EXPANDED_IN_LAYOUT = {"settings", "ops", "tooling"}
"""Folders whose every entry the README's layout lists, one line each."""
OPS_JOBS = ("preview", "promotion", "rollback", "review")
"""What the layout must say the home of, among the ops/ modules."""
FENCE = re.compile(r"^```.*?^```[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAKE_TARGET = re.compile(r"^([a-z0-9-]+):.*## ", re.MULTILINE)
"""A target with a `## ` description, as `make help` reads them."""
MAKE_VARIABLE = re.compile(r"^(?:override )?([A-Z_]+) *[:?]?=", re.MULTILINE)
MAKE_COMMAND = re.compile(r"(?<![\w-])make ([a-z][a-z0-9-]*)([^#;&|`]*)")
PYTHON_MODULE = re.compile(r"\bpython3? -m ([\w.]+)")
PATH_LIKE = re.compile(r"^[\w.-]+/[\w./*-]*$")
API_VERSION = re.compile(r"^[a-z.]+/v[0-9]+((alpha|beta)[0-9]+)?$")
"""A Kubernetes API version such as `policy/v1`, which looks like a path and is none."""


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


@cache
def tree() -> frozenset[str]:
    """Every file of the project as it stands: tracked or new, and not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return frozenset(path for path in listed if (ROOT / path).exists())


def code_of(text: str) -> list[str]:
    """The lines of fenced blocks and the inline code spans of a Markdown text: where commands and paths are named."""
    blocks = [line for block in FENCE.findall(text) for line in block.splitlines()[1:-1]]
    return blocks + CODE_SPAN.findall(FENCE.sub("", text))


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose package is missing
        return False


def anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text (headings inside code blocks are not headings)."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def layout_block() -> list[str]:
    return README.read_text().split("## Layout", 1)[1].split("```")[1].strip("\n").splitlines()


def opened_folders() -> dict[str, list[str]]:
    """The layout's indented lines, by the top-level folder they sit under."""
    opened: dict[str, list[str]] = {}
    folder = ""
    for line in layout_block():
        if not line.startswith(" "):
            folder = line.split()[0].rstrip("/")
        else:
            opened.setdefault(folder, []).append(line.strip())
    return opened


def test_readme_is_at_most_200_lines() -> None:
    lines = len(README.read_text().splitlines())

    assert lines <= MAX_README_LINES, f"README.md must be at most {MAX_README_LINES} lines, got {lines}"


def test_readme_links_every_page_of_docs() -> None:
    readme = README.read_text()
    pages = sorted(DOCS.glob("*.md"))

    assert pages, "docs/ holds no page"
    assert [page.name for page in pages if f"](docs/{page.name})" not in readme] == []


@pytest.mark.parametrize("document", documents(), ids=ids(documents()))
def test_every_relative_link_and_anchor_resolves(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists() or (anchor and anchor not in anchors(linked.read_text())):
            broken.append(target)

    assert broken == []


def test_readme_layout_lists_every_top_level_entry_of_the_program() -> None:
    listed = {line.split()[0].rstrip("/") for line in layout_block() if not line.startswith(" ")}
    top = {path.split("/")[0] for path in tree() if not path.startswith(".")}
    program = {name for name in top if "." not in name or name.endswith(".py") or name.startswith("Pulumi.")}
    stacks = {name for name in program if name.startswith("Pulumi.") and name != "Pulumi.yaml"}

    assert program - stacks | {"Pulumi.<stack>.yaml"} == listed


def test_readme_layout_lists_every_entry_of_the_folders_it_opens() -> None:
    opened = opened_folders()

    assert set(opened) >= EXPANDED_IN_LAYOUT
    for folder, lines in opened.items():
        listed = [line.split()[0].rstrip("/") for line in lines]
        entries = {path.split("/")[1] for path in tree() if path.startswith(f"{folder}/")}
        assert sorted(listed) == sorted(entries), folder


def test_readme_layout_says_where_preview_promotion_rollback_and_the_review_live() -> None:
    ops = opened_folders().get("ops", [])

    assert [job for job in OPS_JOBS if not any(job in line for line in ops)] == []


def test_readme_commands_table_has_one_row_for_each_make_target() -> None:
    targets = MAKE_TARGET.findall((ROOT / "Makefile").read_text())
    commands = README.read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = [match.group(1) for line in commands.splitlines() if (match := re.match(r"\| `make ([a-z0-9-]+)", line))]

    assert sorted(rows) == sorted(targets)


@pytest.mark.parametrize("document", documents(), ids=ids(documents()))
def test_make_commands_named_in_the_docs_are_targets_with_their_variables(document: Path) -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets, variables = set(MAKE_TARGET.findall(makefile)), set(MAKE_VARIABLE.findall(makefile))
    unknown = []
    for code in code_of(document.read_text()):
        for target, rest in MAKE_COMMAND.findall(code):
            if target not in targets:
                unknown.append(f"make {target}")
            named = re.findall(r"\b([A-Z][A-Z_]*)=", rest)
            unknown += [f"make {target} {name}=" for name in named if name not in variables]

    assert unknown == []


@pytest.mark.parametrize("document", documents(), ids=ids(documents()))
def test_paths_and_modules_named_in_the_docs_exist(document: Path) -> None:
    top = {path.split("/")[0] for path in tree()}
    missing = []
    for code in code_of(document.read_text()):
        for word in re.split(r"[\s,()]+", code):
            if API_VERSION.match(word) or not (PATH_LIKE.match(word) and word.split("/")[0] in top):
                continue
            if not list(ROOT.glob(word.rstrip("/"))):
                missing.append(word)
        for module in PYTHON_MODULE.findall(code):
            path = ROOT.joinpath(*module.split("."))
            if module.split(".")[0] in top:
                runnable = path.with_suffix(".py").exists() or (path / "__main__.py").exists()
            else:  # not the project's: the standard library's or an installed one (venv, pytest)
                runnable = installed(module)
            if not runnable:
                missing.append(f"python -m {module}")

    assert missing == []
