"""The operations core: everything that drives Pulumi from outside the program (`python -m ops --help`)."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
"""The project: Pulumi.yaml, the program, its stack files and the policy pack."""
