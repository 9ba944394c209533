"""The operations core: everything that drives Pulumi from outside the program (`python -m ops --help`)."""

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
"""The project: Pulumi.yaml, the program, its stack files and the policy pack."""


def to_stderr(line: str) -> None:
    """Says a line to the person running the command, apart from the output a caller may read."""
    print(line, file=sys.stderr)
