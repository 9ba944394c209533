"""Render a stack's Kubernetes manifests to a folder for GitOps review, through the real engine.

The stack's settings are copied into a throwaway stack in a temporary backend whose
kubernetes provider writes YAML (renderYamlToDirectory) instead of applying anything, so
the stack's own state is never touched; the policy pack runs with the stack's enforcement.
Stacks that build still build and push their image: the manifests name it by digest.

OUT is written whole or not at all: the manifests go to a fresh folder beside it, which then
takes OUT's place. Render only ever replaces a folder it made itself (it leaves a marker file
naming the stack) or an empty one; it refuses the project, its ancestors, $HOME and /.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pulumi import automation as auto

from ops import PROJECT_DIR
from ops.engine import Engine
from ops.policy_config import policy_run
from ops.program_copy import copy_program
from settings import PROJECT
from settings.stack_files import as_engine_values, plain_config, stack_names

MARKER = ".hello-world-render"
"""The file render leaves in OUT, naming the stack; only a folder holding it is ever replaced."""


class RenderError(Exception):
    """Render refused to start; nothing was written or deleted."""


def marker_text(stack: str) -> str:
    return f"Manifests of stack {stack!r}, written by `make render`; the next render replaces this folder.\n"


def check_stack(stack: str, work_dir: Path) -> None:
    """The stack must have a stack file: a mistyped name stops here, before anything else.

    Raises:
        RenderError: Naming the stacks there are.
    """
    known = stack_names(work_dir)
    if stack not in known:
        raise RenderError(
            f"STACK must be one of {', '.join(known)} (a Pulumi.<stack>.yaml in {work_dir}), got {stack!r}"
        )


def check_out(out: Path, protected: Iterable[Path] = (PROJECT_DIR,), home: Path | None = None) -> Path:
    """The folder render may write to, resolved; it refuses any folder it could wrongly delete.

    Args:
        out: The folder asked for.
        protected: Project folders: neither they nor any of their ancestors is ever replaced.
        home: The home folder, likewise protected with its ancestors. Default: ``Path.home()``.

    Raises:
        RenderError: When ``out`` is /, $HOME, a project folder or an ancestor of one, a file,
            or a non-empty folder without render's marker file.
    """
    resolved = out.expanduser().resolve()
    home = (home or Path.home()).resolve()
    given = f"{str(out)!r}" if str(out) == str(resolved) else f"{str(out)!r} ({resolved})"
    problem = None
    if resolved == Path(resolved.anchor):
        problem = "must not be the root folder"
    elif any(project.resolve().is_relative_to(resolved) for project in protected):
        problem = "must not be the project folder or one of its ancestors (name a new folder such as rendered/<stack>)"
    elif home.is_relative_to(resolved):
        problem = "must not be your home folder or one of its ancestors"
    elif resolved.exists() and not resolved.is_dir():
        problem = "must be a folder, not a file"
    elif resolved.is_dir() and any(resolved.iterdir()) and not (resolved / MARKER).is_file():
        problem = (
            f"must be a new or empty folder, or one that render wrote (it holds {MARKER}), not a folder it did not make"
        )
    if problem:
        raise RenderError(f"OUT {problem}, got {given}; nothing was deleted")
    return resolved


def render(stack: str, out: Path, work_dir: Path = PROJECT_DIR, registry_password: str | None = None) -> list[Path]:
    """Writes the stack's manifests to ``out``, replacing only a folder render made, and returns the files written.

    Raises:
        RenderError: Before anything runs, when the stack has no stack file or ``out`` is not a folder
            render may replace (see :func:`check_out`).
        auto.errors.CommandError: When the engine fails, a mandatory policy included; ``out`` is left as it was.
    """
    check_stack(stack, work_dir)
    protected = {PROJECT_DIR, work_dir}
    out = check_out(out, protected)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Beside OUT, on its file system, so that it takes OUT's place in one rename.
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.render-", dir=out.parent))
    try:
        _render_into(stack, fresh, work_dir, registry_password)
        (fresh / MARKER).write_text(marker_text(stack))
        check_out(out, protected)  # again: the folder may have changed during the render
        _replace(out, fresh)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return sorted(path for path in out.rglob("*.yaml") if path.is_file())


def _render_into(stack_name: str, folder: Path, work_dir: Path, registry_password: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="render-") as scratch, policy_run(PROJECT_DIR, stack_name) as policy:
        program = copy_program(Path(scratch) / "program", work_dir)
        backend = Path(scratch) / "backend"
        backend.mkdir()
        # The passphrase variable wins over a passphrase file the caller may have set.
        env = {"PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": secrets.token_hex(16)}
        engine = Engine(program, env=env)
        stack = engine.throwaway_stack(stack_name, program)
        # Encrypted settings cannot be read under the throwaway passphrase.
        config = plain_config(work_dir, stack_name)
        cluster = config.get(f"{PROJECT}:cluster") or {}
        config[f"{PROJECT}:cluster"] = {**cluster, "renderTo": str(folder)}
        stack.set_all_config({key: auto.ConfigValue(value) for key, value in as_engine_values(config).items()})
        # Only a stack that builds pushes, and its settings refuse a password without a build.
        if registry_password and f"{PROJECT}:build" in config:
            engine.set_secret(stack, "registryPassword", registry_password)
        stack.up(
            on_output=print,
            color="never",
            policy_packs=[str(policy.pack)],
            policy_pack_configs=[str(policy.config)],
        )


def _replace(out: Path, fresh: Path) -> None:
    """Puts ``fresh`` in ``out``'s place; the folder it replaces (checked by the caller) is deleted last."""
    if not out.exists():
        fresh.rename(out)
        return
    old = out.with_name(f".{out.name}.replaced-{secrets.token_hex(4)}")
    out.rename(old)
    fresh.rename(out)
    shutil.rmtree(old)
