"""Render a stack's Kubernetes manifests to a folder for GitOps review, through the real engine.

The stack's settings are copied into a throwaway stack in a temporary backend whose
kubernetes provider writes YAML (renderYamlToDirectory) instead of applying anything, so
the stack's own state is never touched; the policy pack runs with the stack's enforcement.
Stacks that build still build and push their image: the manifests name it by digest.

OUT is written whole or not at all: the manifests go to a fresh folder beside it, which then
takes OUT's place. Render only ever replaces an empty folder or one that holds nothing but what
an earlier render wrote (its marker file lists those files), and deletes only those files; it
refuses the project, its ancestors, $HOME and /.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pulumi import automation as auto

from ops import PROJECT_DIR
from ops.engine import Engine, require_pulumi
from ops.policy_config import policy_run
from ops.program_copy import copy_program
from settings import PROJECT
from settings.stack_files import as_engine_values, plain_config, stack_names

MARKER = ".hello-world-render"
"""The file render leaves in OUT, naming the stack and listing every file it wrote there: the only files it deletes."""
MAX_MARKER_BYTES = 1 << 20
"""A larger marker is not render's: its folder is treated as one render did not write."""
MAX_NAMED = 5
"""How many of the files render did not write a refusal names."""


class RenderError(Exception):
    """Render refused to start; nothing was written or deleted."""


def marker_text(stack: str, files: Iterable[str], folders: Iterable[str] = ()) -> str:
    """The marker's JSON: the stack, and the files and folders (relative to OUT, ``/``-separated) render wrote."""
    record = {
        "writtenBy": "make render",
        "stack": stack,
        "note": "the next render deletes only these, and refuses this folder if it holds anything else",
        "files": sorted(files),
        "folders": sorted(folders),
    }
    return json.dumps(record, indent=2) + "\n"


def _listed(folder: Path) -> tuple[set[str], set[str]]:
    """The files and folders the marker in ``folder`` lists; none when there is no readable marker of render's."""
    marker = folder / MARKER
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > MAX_MARKER_BYTES:
            return set(), set()
        record = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return set(), set()

    def names(key: str) -> set[str]:
        found = record.get(key) if isinstance(record, dict) else None
        return {name for name in found if isinstance(name, str)} if isinstance(found, list) else set()

    return names("files"), names("folders")


def _walk(folder: Path, listed: set[str], folders: set[str]) -> tuple[list[str], list[str]]:
    """What ``folder`` holds, split into what render did not write and the listed files (with the marker).

    Symlinks are never followed; a folder neither listed nor holding a listed file is named whole, with a slash.
    """
    parents = {parent.as_posix() for name in listed | folders for parent in PurePosixPath(name).parents}
    parents |= folders
    unlisted: list[str] = []
    owned: list[str] = []
    pending = [PurePosixPath()]
    while pending:
        relative = pending.pop()
        with os.scandir(folder / relative) as entries:
            for entry in entries:
                name = (relative / entry.name).as_posix()
                if entry.is_dir(follow_symlinks=False):
                    if name in parents:
                        pending.append(relative / entry.name)
                    else:
                        unlisted.append(f"{name}/")
                elif name in listed or name == MARKER:
                    owned.append(name)
                else:
                    unlisted.append(name)
    return sorted(unlisted), sorted(owned)


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown if len(names) <= MAX_NAMED else f"{shown} and {len(names) - MAX_NAMED} more"


def _contents_problem(folder: Path) -> tuple[str, str] | None:
    """Why render may not replace the existing folder ``folder`` and what it found there, or None when it may."""
    if not any(folder.iterdir()):
        return None
    if not (folder / MARKER).is_file():
        problem = "must be a new or empty folder, or one that render wrote (it holds {}), not a folder it did not make"
        return problem.format(MARKER), ""
    unlisted, _ = _walk(folder, *_listed(folder))
    if unlisted:
        return f"must hold only the files render wrote (listed in its {MARKER})", f" holding {_named(unlisted)}"
    return None


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
        RenderError: When ``out`` is /, $HOME, a project folder or an ancestor of one, a file, or a
            non-empty folder holding anything but render's marker and the files it lists (naming them).
    """
    resolved = out.expanduser().resolve()
    home = (home or Path.home()).resolve()
    given = f"{str(out)!r}" if str(out) == str(resolved) else f"{str(out)!r} ({resolved})"
    problem: str | None = None
    holding = ""
    if resolved == Path(resolved.anchor):
        problem = "must not be the root folder"
    elif any(project.resolve().is_relative_to(resolved) for project in protected):
        problem = "must not be the project folder or one of its ancestors (name a new folder such as rendered/<stack>)"
    elif home.is_relative_to(resolved):
        problem = "must not be your home folder or one of its ancestors"
    elif resolved.exists() and not resolved.is_dir():
        problem = "must be a folder, not a file"
    elif resolved.is_dir() and (found := _contents_problem(resolved)):
        problem, holding = found
    if problem:
        raise RenderError(f"OUT {problem}, got {given}{holding}; nothing was deleted")
    return resolved


def render(stack: str, out: Path, work_dir: Path = PROJECT_DIR, registry_password: str | None = None) -> list[Path]:
    """Writes the stack's manifests to ``out``, replacing only a render's own files, and returns the manifests.

    Raises:
        RenderError: Before anything runs, when the stack has no stack file or ``out`` is not a folder
            render may replace (see :func:`check_out`).
        auto.errors.CommandError: When the engine fails, a mandatory policy included; ``out`` is left as it was.
    """
    check_stack(stack, work_dir)
    protected = {PROJECT_DIR, work_dir}
    out = check_out(out, protected)
    require_pulumi()  # before anything is written beside OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    # Beside OUT, on its file system, so that it takes OUT's place in one rename.
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.render-", dir=out.parent))
    try:
        _render_into(stack, fresh, work_dir, registry_password)
        files, folders = _contents(fresh)
        (fresh / MARKER).write_text(marker_text(stack, files, folders))
        check_out(out, protected)  # again: the folder may have changed during the render
        replace_render(out, fresh)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return sorted(out / name for name in files if name.endswith(".yaml"))


def _contents(folder: Path) -> tuple[set[str], set[str]]:
    """Every file and every folder under ``folder``, symlinks not followed, relative and ``/``-separated."""
    files: set[str] = set()
    folders: set[str] = set()
    for root, dirs, names in os.walk(folder):
        relative = PurePosixPath(Path(root).relative_to(folder).as_posix())
        links = {name for name in dirs if (Path(root) / name).is_symlink()}
        files |= {(relative / name).as_posix() for name in [*names, *links]}
        folders |= {(relative / name).as_posix() for name in dirs if name not in links}
    return files, folders


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


def replace_render(out: Path, fresh: Path) -> None:
    """Puts ``fresh`` in ``out``'s place; of the render it replaces, only the files its marker lists are deleted.

    Raises:
        RenderError: When ``out`` holds anything render did not write (it may have changed since it was
            checked); ``out`` is put back as it was and ``fresh`` is left to the caller.
    """
    if not out.exists():
        fresh.rename(out)
        return
    old = out.with_name(f".{out.name}.replaced-{secrets.token_hex(4)}")
    out.rename(old)
    # Checked once more where nobody else writes: a file added to OUT during the render is never deleted.
    found = _contents_problem(old)
    if found:
        old.rename(out)
        problem, holding = found
        raise RenderError(f"OUT {problem}, got {str(out)!r}{holding}; nothing was deleted")
    _, owned = _walk(old, *_listed(old))
    fresh.rename(out)
    for name in owned:
        (old / name).unlink()
    try:
        for root, _dirs, _files in os.walk(old, topdown=False):
            Path(root).rmdir()
    except OSError:
        print(f"render left {old}: it holds files render did not write", file=sys.stderr)
