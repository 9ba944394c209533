"""Drift: what a stack's cluster holds that its state does not, found by a refresh preview that changes nothing.

`make drift` runs ``pulumi refresh --preview-only`` (the Automation API's ``Stack.preview_refresh``): the
provider reads every resource from the cluster and the engine says what a refresh would change in the
state, field by field; neither the state nor the cluster is written. The program does not run, so a
change to the code or the stack file that is not deployed yet is no drift. ``make up`` repairs drift:
it deploys what the program says again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

from ops import PROJECT_DIR
from ops.engine import STACK_TYPE, CommandError, Engine, EventLog, require_pulumi
from ops.locking import backend_lock_error, locked
from ops.review_summary import code, display, plain, state_value, step_document, type_and_name
from ops.stack_copy import write_stack_copy
from settings.stack_files import restoring

DRIFT_OPS = ("update", "delete")
"""What a refresh does to a resource whose cluster object differs (update) or is gone (delete)."""
OF_THIS_CHECKOUT = {"docker-build:index:Image": frozenset({"contextHash"})}
"""Fields a read computes from this checkout, not from what runs: the docker-build provider hashes the local build
context on every read, so a checkout whose ``app/`` differs from the deployed one (another machine's, or code not
deployed yet) shows it changed. That is a code change, which ``make preview`` shows, not drift."""


class DriftCheckError(Exception):
    """The stack could not be checked for drift (no such stack, the cluster unreachable); nothing was changed."""


@dataclass(frozen=True)
class Drifted:
    """One resource whose cluster object differs from the stack's state."""

    op: str
    """What a refresh would do: ``update`` (fields differ) or ``delete`` (the object is gone)."""
    type: str
    name: str
    fields: tuple[tuple[str, str, str], ...] = ()
    """(path, in the state, in the cluster) of every field that differs."""


def find_drift(stack: str, work_dir: Path = PROJECT_DIR, engine: Engine | None = None) -> list[Drifted]:
    """Every resource of the stack whose cluster object differs from the state; the state is not written.

    The stack is locked meanwhile, as a preview's is, and its tracked file put back byte for byte.

    Raises:
        DriftCheckError: When the stack does not exist, or pulumi cannot read the cluster.
        StackLockedError: When a promotion or review holds the stack past the lock's wait, or another update
            holds the backend's lock (BackendLockedError).
        Interrupted: On a stop signal, once pulumi has exited.
    """
    if engine is None:
        engine = Engine(work_dir)
        require_pulumi(engine.runner.command)  # before the lock or the backend is made
    log = EventLog()
    with engine.runner.stopping_on_signals(), locked(work_dir, stack, purpose="drift"), restoring(work_dir, stack):
        config_file = write_stack_copy(work_dir, stack)
        try:
            opened = engine.stack(stack)
        except CommandError as error:
            raise DriftCheckError(f"pulumi could not open stack {stack!r}, so it was not checked:\n{error}") from error
        engine.runner.stop_detail = "pulumi refresh --preview-only was cancelled and has exited; nothing changed"
        try:
            opened.preview_refresh(on_event=log, color="never", config_file=str(config_file))
        except CommandError as error:
            if (held := backend_lock_error(str(error), stack)) is not None:
                raise held from error
            raise DriftCheckError(
                f"the refresh preview of stack {stack!r} failed, so it was not checked: {log.first_error()}"
            ) from error
    return drifted(log.events)


def drifted(events: Iterable[auto.EngineEvent]) -> list[Drifted]:
    """The resources a refresh preview's engine events say differ, with the fields that do.

    A refresh step's result (its outputs event) carries what the refresh would do, with the provider's
    detailed diff of the state's inputs against the object read from the cluster.
    """
    found = []
    for event in events:
        if event.res_outputs_event is None:
            continue
        step = step_document(event.res_outputs_event.metadata)
        type_, name = type_and_name(step["urn"])
        if step["op"] not in DRIFT_OPS or type_ == STACK_TYPE:
            continue
        old, new = step["oldState"] or {}, step["newState"] or {}
        paths = sorted(step.get("detailedDiff") or {}) or step.get("diffReasons") or []
        if step["op"] == "update" and paths:
            paths = [path for path in paths if path not in OF_THIS_CHECKOUT.get(type_, frozenset())]
            if not paths:
                continue
        fields = tuple((path, display(state_value(old, path)), display(state_value(new, path))) for path in paths)
        found.append(Drifted(op=step["op"], type=type_, name=name, fields=fields))
    return found


def summarize(stack: str, found: Iterable[Drifted]) -> str:
    """The Markdown section of one stack's drift, in the review's style (ops/review_summary.py's escaping)."""
    found = list(found)
    lines = [f"### Drift of stack {code(stack)}", ""]
    if not found:
        return "\n".join([*lines, "No drift: the cluster matches the state.", ""])
    repair = code(f"make up STACK={stack}")
    lines += [f"{len(found)} resource(s) differ from the state; {repair} puts them back as the program says.", ""]
    for item in found:
        what = "changed in the cluster" if item.op == "update" else "gone from the cluster"
        lines.append(f"- **{what}** {code(item.type)} {code(item.name)}")
        lines += [f"  - {code(path)}: {plain(old)} → {plain(new)}" for path, old, new in item.fields]
    lines.append("")
    return "\n".join(lines)
