"""Render a stack's Kubernetes manifests to a folder for GitOps review, through the real engine.

Usage: python -m delivery.render STACK OUT

The stack's settings are copied into a throwaway stack in a temporary backend whose
kubernetes provider writes YAML (renderYamlToDirectory) instead of applying anything, so
the stack's own state is never touched. Stacks that build still build and push their image:
the manifests name it by digest.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pulumi import automation as auto

from delivery.program import PROJECT_DIR, copy_program
from settings import PROJECT
from settings.stack_files import as_engine_values, plain_config


def render(stack: str, out: Path, work_dir: Path = PROJECT_DIR, registry_password: str | None = None) -> list[Path]:
    """Writes the stack's manifests under ``out`` and returns the files written."""
    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="render-") as scratch:
        program = copy_program(Path(scratch) / "program", work_dir)
        backend = Path(scratch) / "backend"
        backend.mkdir()
        # The passphrase variable wins over a passphrase file the caller may have set.
        env = {"PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": secrets.token_hex(16)}
        workspace = auto.create_stack(stack, work_dir=str(program), opts=auto.LocalWorkspaceOptions(env_vars=env))
        # Encrypted settings cannot be read under the throwaway passphrase.
        config = plain_config(work_dir, stack)
        cluster = config.get(f"{PROJECT}:cluster") or {}
        config[f"{PROJECT}:cluster"] = {**cluster, "renderTo": str(out)}
        workspace.set_all_config({key: auto.ConfigValue(value) for key, value in as_engine_values(config).items()})
        # Only a stack that builds pushes, and its settings refuse a password without a build.
        if registry_password and f"{PROJECT}:build" in config:
            workspace.set_config("registryPassword", auto.ConfigValue(registry_password, secret=True))
        workspace.up(on_output=print, color="never")
    return sorted(path for path in out.rglob("*.yaml") if path.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m delivery.render", description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="stack whose manifests are rendered")
    parser.add_argument("out", type=Path, help="folder to write them to (emptied first)")
    args = parser.parse_args(argv)
    written = render(args.stack, args.out, registry_password=os.environ.get("REGISTRY_PASSWORD"))
    print(f"{len(written)} manifests in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
