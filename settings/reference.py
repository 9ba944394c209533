"""The settings reference in docs/settings.md and the declarations in Pulumi.yaml, both made from the model.

Usage: python -m settings.reference           rewrite both from settings/model.py
       python -m settings.reference --check   exit 1 if either differs from the model
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, get_origin

import yaml
from pydantic import BaseModel

from settings.model import StackSettings, aliases, expectation, section_of

PROJECT_DIR = Path(__file__).resolve().parents[1]
SETTINGS_DOC = PROJECT_DIR / "docs" / "settings.md"
PULUMI_YAML = PROJECT_DIR / "Pulumi.yaml"
BEGIN = "<!-- settings reference: made from settings/model.py by `python -m settings.reference` -->"
END = "<!-- end of the settings reference -->"


@cache
def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """The docstring under each field of ``model``, by field name.

    Read here from the source rather than by pydantic's ``use_attribute_docstrings``, which would parse
    the model's source on every run of the program (27 ms) for text only this reference needs.
    """
    docs = {}
    body = ast.parse(inspect.getsource(model)).body[0]
    assert isinstance(body, ast.ClassDef)
    for field, after in zip(body.body, body.body[1:], strict=False):
        if not (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)):
            continue
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[field.target.id] = inspect.cleandoc(str(after.value.value))
    return docs


def _description(model: type[BaseModel], key: str) -> str:
    return field_docs(model)[next(name for name, info in model.model_fields.items() if (info.alias or name) == key)]


def _markdown_text(text: str | None) -> str:
    return (text or "").replace("``", "`").replace("|", "\\|")


def _table(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = ["| key | takes | what it does |", "| --- | --- | --- |"]
    for key, info in aliases(model).items():
        takes = expectation(info)
        takes = f"`{takes}`" if "<" in takes else _markdown_text(takes)
        rows.append(f"| `{prefix}{key}` | {takes} | {_markdown_text(_description(model, key))} |")
    return rows


def markdown() -> str:
    """One table for the top-level keys, then one for each group of keys."""
    lines = [BEGIN, "", *_table(StackSettings)]
    for key, info in aliases(StackSettings).items():
        if (section := section_of(info)) is not None:
            # A list of sections (``services``): each item's keys, as ``services[].name``.
            prefix = f"{key}[]." if get_origin(info.annotation) is tuple else f"{key}."
            lines += ["", f"`{key}`: {_markdown_text(section.__doc__)}", "", *_table(section, prefix)]
    return "\n".join([*lines, "", END])


def project_config() -> dict[str, Any]:
    """What Pulumi's project config can declare: typed keys with a default (a key without one is required)."""
    declared = {}
    for key, info in aliases(StackSettings).items():
        if isinstance(info.default, int) and not isinstance(info.default, bool):
            description = _description(StackSettings, key)
            declared[key] = {"type": "integer", "default": info.default, "description": description}
    return declared


def _doc_with(reference: str) -> str:
    """docs/settings.md with ``reference`` between its markers, which must be there (and in this order)."""
    text = SETTINGS_DOC.read_text()
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not (begin and end):
        raise SystemExit(f"{SETTINGS_DOC.relative_to(PROJECT_DIR)} must hold the lines {BEGIN} and {END}")
    return head + reference + tail


def _pulumi_yaml_with(config: dict[str, Any]) -> str:
    document = yaml.safe_load(PULUMI_YAML.read_text())
    document["config"] = config
    return yaml.safe_dump(document, sort_keys=False, width=120)


def main(argv: Sequence[str]) -> int:
    wanted = {SETTINGS_DOC: _doc_with(markdown()), PULUMI_YAML: _pulumi_yaml_with(project_config())}
    stale = [str(path.relative_to(PROJECT_DIR)) for path, text in wanted.items() if path.read_text() != text]
    if "--check" in argv:
        if stale:
            print(f"out of date with settings/model.py: {', '.join(stale)}; run python -m settings.reference")
        return 1 if stale else 0
    for path, text in wanted.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
