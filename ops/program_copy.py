"""A copy of the Pulumi program (not its stacks), for throwaway stacks: render, tests, the bench."""

from __future__ import annotations

import shutil
from pathlib import Path

from ops import PROJECT_DIR
from settings import DEFAULT_BUILD_CONTEXT

PROGRAM_FILES = ("Pulumi.yaml", "__main__.py", "image_ref.py", "settings", "components", DEFAULT_BUILD_CONTEXT)
"""What the program is made of, relative to the project."""


def copy_program(destination: Path, source: Path = PROJECT_DIR) -> Path:
    """Copies the program (not its stacks) to ``destination``, sharing the project's virtualenv.

    A copy lets a throwaway stack run, or its app source change, without touching the project.
    """
    destination.mkdir(parents=True)
    for name in PROGRAM_FILES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, destination / name)
    (destination / ".venv").symlink_to((source / ".venv").resolve())
    return destination
