"""The files that make up the Pulumi program, and a way to run it from a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
PROGRAM_FILES = ("Pulumi.yaml", "__main__.py", "image_ref.py", "settings", "components", "app")


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
