"""A Markdown summary of a real preview of a stack, for a reviewer reading a pull request (`make review`).

The preview runs through the engine (ops/engine.py); its typed engine events are gathered into the
shape of ``pulumi preview --json`` (steps with their old and new state and detailed diff, the change
summary, the diagnostics), which :func:`summarize` reads and ops/review_gate.py fingerprints.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from ops import PROJECT_DIR
from ops.engine import CommandError, Engine, EventLog, require_pulumi
from ops.ingress_objects import check_stack_ingress
from ops.locking import StackLockedError, locked
from ops.policy_config import policy_run
from ops.stack_copy import write_stack_copy
from settings import DEFAULT_BUILD_CONTEXT
from settings.stack_files import StackFileError, restoring

# Pulumi marks a secret value on the wire and in state with this key.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
# What the engine writes in preview JSON for a value only known after the update.
UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
COMPUTED = "(known after up)"
# How the policy engine says a rule could not look at a value during a preview.
DEFERRED_MARK = "can't be known during preview"
# The engine's own last word on a preview that a mandatory policy (or anything else) failed.
PREVIEW_FAILED = "preview failed"
MAX_VALUE_CHARS = 100
SECRET_SHOWN = "[secret]"
NONE_SHOWN = "(none)"
MARKERS = frozenset({SECRET_SHOWN, NONE_SHOWN, COMPUTED})
"""What the summary writes in a value's place; shown as they are, they are no value's text."""
LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
"""Everything that ends a line for Markdown or for Python: a value never gets a line of its own."""
SHOWN_LINE_BREAK = "⏎"
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<&~])")
"""Characters that start Markdown or HTML inside a line (emphasis, code, links, tags, comments, entities)."""
BACKTICKS = re.compile(r"`+")
REPLACE_OPS = ("replace", "create-replacement", "delete-replaced")
REPLACEMENT_HALVES = ("create-replacement", "delete-replaced")
"""The steps around a ``replace`` step, which carries what the replacement changes and why."""

# What a forced replacement means for the running service, by the field that forces it.
REPLACEMENT_IMPACT = {
    "spec.selector": "a new Deployment is created and the old one deleted: all pods are replaced at once",
    "metadata.name": "the object is recreated under its new name; clients of the old name break",
    "metadata.namespace": "it moves to another namespace: a new object is created and the old one deleted",
    "spec.type": "the Service is recreated: its cluster IP and node port change",
    "spec.clusterIP": "the Service is recreated: its cluster IP changes",
}
DEFAULT_IMPACT = "the resource is deleted and created again"

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
# What a reviewer needs to see of a resource that is created (its every input would drown them), by type.
CREATE_FIELDS = {
    "kubernetes:core/v1:Namespace": ("metadata.name",),
    "kubernetes:core/v1:Service": ("metadata.namespace", "spec.type", "spec.ports[0].nodePort"),
    "kubernetes:apps/v1:Deployment": ("metadata.namespace", "spec.replicas", "spec.template.spec.containers[0].image"),
    INGRESS: ("spec.rules[0].host",),
}


class ReviewError(Exception):
    """A stack could not be previewed."""


@dataclass
class Change:
    """One resource that the preview would change."""

    op: str
    type: str
    name: str
    urn: str
    fields: list[tuple[str, str, str]] = field(default_factory=list)
    """(path, old, new) of every changed field."""
    replace_reasons: list[str] = field(default_factory=list)
    routes: tuple[list[str], list[str]] = ([], [])
    """An Ingress's routes before and after (``host/path → service``): where each service is reached."""


@dataclass
class Violation:
    policy: str
    level: str
    resource: str
    message: str


def display(value: Any, limit: int | None = MAX_VALUE_CHARS) -> str:
    if isinstance(value, dict) and SECRET_SIG_KEY in value:
        return SECRET_SHOWN
    if value is None:
        return NONE_SHOWN
    if value == UNKNOWN_SENTINEL:
        return COMPUTED
    if not isinstance(value, dict | list):
        return str(value)  # scalars in full: an image reference must show its whole digest
    text = json.dumps(value, sort_keys=True)
    if SECRET_SHOWN in text or SECRET_SIG_KEY in text:
        return SECRET_SHOWN
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def code(value: object) -> str:
    """A value as a Markdown code span that nothing in it can end: the fence is longer than its longest backtick run.

    Line breaks are shown as ⏎; inside a code span, ``<!--`` and every other character are literal.
    """
    text = LINE_BREAK.sub(SHOWN_LINE_BREAK, str(value)) or " "
    fence = "`" * (max(map(len, BACKTICKS.findall(text)), default=0) + 1)
    # Markdown strips one space from each end of a code span that has them: padding keeps the value's own.
    if text.startswith("`") or text.endswith("`") or (text[0] == text[-1] == " " and text.strip(" ")):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def plain(value: object) -> str:
    """A value as Markdown text that shows it as it is: on one line, every character that starts markup escaped."""
    text = str(value)
    if text in MARKERS:
        return text
    return MARKDOWN_SPECIAL.sub(r"\\\1", LINE_BREAK.sub(SHOWN_LINE_BREAK, text))


def _lookup(document: Any, path: str) -> Any:
    """The value at a detailed-diff path such as ``spec.template.spec.containers[0].image``."""
    current = document
    for part in path.replace("]", "").replace("[", ".").split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def state_value(state: Mapping[str, Any], path: str) -> Any:
    """A field from a step's state: its inputs, or its outputs for a field a provider computes."""
    value = _lookup(state.get("inputs", {}), path)
    return value if value is not None else _lookup(state.get("outputs", {}), path)


def type_and_name(urn: str) -> tuple[str, str]:
    parts = urn.split("::")
    return parts[2].split("$")[-1], parts[3]


def _impact(reason: str) -> str:
    for field_path, impact in REPLACEMENT_IMPACT.items():
        if reason == field_path or reason.startswith((field_path + ".", field_path + "[")):
            return impact
    return DEFAULT_IMPACT


def changes(preview: Mapping[str, Any], *, full_values: bool = False) -> list[Change]:
    """Every step of a `pulumi preview --json` document that changes something.

    Args:
        full_values: Keep long values whole (secrets are still hidden), as a fingerprint must; a summary shortens them.
    """
    limit = None if full_values else MAX_VALUE_CHARS
    found = []
    for step in preview.get("steps", []):
        if step["op"] in ("same", "read", "delete-replaced"):
            continue
        type_, name = type_and_name(step["urn"])
        if type_ == "pulumi:pulumi:Stack":
            continue
        change = Change(
            op=step["op"],
            type=type_,
            name=name,
            urn=step["urn"],
            replace_reasons=list(step.get("replaceReasons") or []),
        )
        old, new = step.get("oldState") or {}, step.get("newState") or {}
        paths = sorted(step.get("detailedDiff") or {}) or step.get("diffReasons") or []
        if step["op"] == "create":
            paths = [path for path in CREATE_FIELDS.get(type_, ()) if state_value(new, path) is not None]
        for path in paths:
            shown = (display(state_value(state, path), limit) for state in (old, new))
            change.fields.append((path, *shown))
        if type_ == INGRESS:
            change.routes = (ingress_routes(old), ingress_routes(new))
        found.append(change)
    return found


def ingress_routes(state: Mapping[str, Any]) -> list[str]:
    """An Ingress state's routes, in its order, as ``host/path → service`` (``*`` for a rule without a host)."""
    routes = []
    for rule in _listed(state_value(state, "spec.rules")):
        host = (rule.get("host") or "*") if isinstance(rule, dict) else "*"
        for path in _listed(_lookup(rule, "http.paths")):
            service = display(_lookup(path, "backend.service.name"))
            routes.append(f"{display(host)}{display(_lookup(path, 'path'))} → {service}")
    return routes


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def violations(events: Iterable[Mapping[str, Any]]) -> list[Violation]:
    """Policy violations from an engine event log."""
    found = []
    for event in events:
        policy = event.get("policyEvent")
        if policy:
            resource = type_and_name(policy["resourceUrn"])[1] if policy.get("resourceUrn") else "(stack)"
            found.append(
                Violation(
                    policy["policyName"], policy["enforcementLevel"], resource, " ".join(policy["message"].split())
                )
            )
    return found


def _counts(preview: Mapping[str, Any]) -> dict[str, int]:
    summary = preview.get("changeSummary") or {}
    return {
        "create": summary.get("create", 0),
        "update": summary.get("update", 0),
        "replace": sum(summary.get(op, 0) for op in ("replace", "create-replacement")),
        "delete": summary.get("delete", 0),
    }


def _digest(reference: str) -> str:
    return code(reference.rsplit("@", 1)[-1]) if "@sha256:" in reference else f"{plain(reference)} (a new build)"


def summarize(
    stack: str,
    preview: Mapping[str, Any],
    events: Iterable[Mapping[str, Any]] = (),
    app_changes: Sequence[str] = (),
) -> str:
    """The Markdown section of one stack's preview; ``app_changes`` are the files git sees changed under app/."""
    counts = _counts(preview)
    lines = [
        f"### Stack {code(stack)}",
        "",
        " · ".join(f"{count} to {op}" for op, count in counts.items()),
        "",
    ]
    found = changes(preview)
    if not found:
        lines += ["No changes.", ""]
    for change in found:
        lines.append(f"- **{plain(change.op)}** {code(change.type)} {code(change.name)}")
        for path, old, new in change.fields:
            if path == "contextHash":
                # A hash of the build context means nothing to a reviewer; what it stands for does.
                files = f" ({', '.join(code(name) for name in app_changes)})" if app_changes else ""
                lines.append(f"  - app/ changed{files}: a new image will be built")
                continue
            shown = plain(new) if change.op == "create" else f"{plain(old)} → {plain(new)}"
            lines.append(f"  - {code(path)}: {shown}")
            if path.endswith(".image") and "@sha256:" in old + new and change.op != "create":
                lines.append(f"  - image digest: {_digest(old)} → {_digest(new)}")
        before, after = change.routes
        if after and after != before:
            # Which service answers where: read from the rules whole, as the field diffs show them piecemeal.
            label = "routes" if change.op == "create" or not before else "routes, after the change"
            lines.append(f"  - {label}: {', '.join(code(route) for route in after)}")
        if change.op in REPLACE_OPS or change.replace_reasons:
            for reason in change.replace_reasons or ["(not reported)"]:
                impact = _impact(reason)
                lines.append(f"  - ⚠️ **replacement** forced by {code(reason)}: {impact}")
    found_violations = violations(events)
    # A rule about a value that only the update computes (a new image's digest) cannot run in a
    # preview: that is not a violation, the rule runs again when the stack is deployed.
    deferred = [v for v in found_violations if DEFERRED_MARK in v.message]
    for title, group in (
        ("Policy violations:", [v for v in found_violations if v not in deferred]),
        ("Checked at deploy (the value is only known then):", deferred),
    ):
        if group:
            lines += ["", title, ""]
            lines += [f"- {code(v.policy)} ({plain(v.level)}) on {code(v.resource)}: {plain(v.message)}" for v in group]
    lines.append("")
    return "\n".join(lines)


def preview_stack(
    stack: str, work_dir: Path = PROJECT_DIR, engine: Engine | None = None, *, plan: Path | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Runs a real preview with the policy pack and returns it as a preview document, with its policy events.

    The pack runs with the stack's enforcement: its ``policy/config/<stack>.json``, else every rule
    mandatory. The stack is locked meanwhile, so that a promotion never interleaves with the review.
    A stack that was never deployed is reviewed too: everything in it is a create. With ``plan``, the
    preview also saves its update plan there (``pulumi preview --save-plan``), for an up held to it.

    Raises:
        ReviewError: When the preview fails or another promotion or review holds the stack.
    """
    if engine is None:
        engine = Engine(work_dir)
        require_pulumi(engine.runner.command)  # before the lock or the backend is made
    log = EventLog()
    failed: CommandError | None = None
    try:
        # A review changes nothing: the tracked stack file is put back byte for byte whatever happens.
        with locked(work_dir, stack, purpose="review"), restoring(work_dir, stack):
            opened = engine.stack(stack, create=True)
            config_file = write_stack_copy(work_dir, stack)
            # As `make preview` does: a class or Secret the cluster lacks is named before anything is previewed.
            check_stack_ingress(stack, work_dir)
            with policy_run(PROJECT_DIR, stack) as policy:
                try:
                    opened.preview(
                        on_event=log,
                        color="never",
                        policy_packs=[str(policy.pack)],
                        policy_pack_configs=[str(policy.config)],
                        config_file=str(config_file),
                        plan=None if plan is None else str(plan),
                    )
                except CommandError as error:
                    failed = error
    except (StackLockedError, StackFileError) as error:
        raise ReviewError(str(error)) from error
    except CommandError as error:
        raise ReviewError(f"pulumi preview of stack {stack!r} failed:\n{str(error).strip()}") from error
    preview = preview_document(log.events)
    events = policy_events(log.events)
    check_preview(stack, preview, events, failed)
    return preview, events


def check_preview(
    stack: str, preview: Mapping[str, Any], events: Sequence[Mapping[str, Any]], failed: CommandError | None
) -> None:
    """A failed preview is summarized only when a mandatory policy failed it; any other failure is an error.

    The program itself failing (a wrong setting) lists no resources, which is no "No changes".

    Raises:
        ReviewError: Naming the engine's errors.
    """
    diagnostics = preview.get("diagnostics") or []
    errors = [d["message"].strip() for d in diagnostics if d.get("severity") == "error"]
    mandatory = any(event["policyEvent"].get("enforcementLevel") == "mandatory" for event in events)
    own = [error for error in errors if error.removeprefix("error: ") != PREVIEW_FAILED]
    if own or (failed is not None and not mandatory):
        shown = "\n".join(own) or (str(failed).strip() if failed is not None else "")
        raise ReviewError(f"pulumi preview of stack {stack!r} failed:\n{shown}")


def preview_document(log: Iterable[auto.EngineEvent]) -> dict[str, Any]:
    """The engine events of a preview in the shape of ``pulumi preview --json``."""
    steps: list[dict[str, Any]] = []
    summary: dict[str, int] = {}
    diagnostics: list[dict[str, Any]] = []
    for event in log:
        if event.resource_pre_event is not None:
            metadata = event.resource_pre_event.metadata
            # The engine sends a replacement as three steps; `pulumi preview --json` shows its `replace` step only.
            if _op(metadata.op) not in REPLACEMENT_HALVES:
                steps.append(step_document(metadata))
        elif event.summary_event is not None:
            summary = {_op(op): count for op, count in event.summary_event.resource_changes.items()}
        elif event.diagnostic_event is not None:
            found = event.diagnostic_event
            diagnostics.append({"urn": found.urn, "message": found.message, "severity": found.severity})
    return {"steps": steps, "changeSummary": summary, "diagnostics": diagnostics}


def _op(op: Any) -> str:
    return str(getattr(op, "value", op))


def step_document(metadata: auto.StepEventMetadata) -> dict[str, Any]:
    """One step of the engine in the shape of a ``pulumi preview --json`` step: op, URN, old and new state, diffs."""

    def state(found: auto.StepEventStateMetadata | None) -> dict[str, Any] | None:
        return None if found is None else {"inputs": dict(found.inputs or {}), "outputs": dict(found.outputs or {})}

    step: dict[str, Any] = {"op": _op(metadata.op), "urn": metadata.urn}
    step["oldState"], step["newState"] = state(metadata.old), state(metadata.new)
    if metadata.detailed_diff:
        step["detailedDiff"] = {path: {"kind": _op(diff.diff_kind)} for path, diff in metadata.detailed_diff.items()}
    if metadata.diffs:
        step["diffReasons"] = list(metadata.diffs)
    if metadata.keys:
        step["replaceReasons"] = list(metadata.keys)
    return step


def policy_events(log: Iterable[auto.EngineEvent]) -> list[dict[str, Any]]:
    """The policy events of an operation, as the engine's event log writes them."""
    return [
        {
            "policyEvent": {
                "resourceUrn": found.resource_urn,
                "policyName": found.policy_name,
                "enforcementLevel": found.enforcement_level,
                "message": found.message,
            }
        }
        for event in log
        if (found := event.policy_event) is not None
    ]


def app_changes(work_dir: Path) -> list[str]:
    """Files of the build context (app/) that differ from the last commit, as git tells; none when git cannot."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", DEFAULT_BUILD_CONTEXT],
        cwd=work_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    return sorted(line[3:] for line in result.stdout.splitlines()) if result.returncode == 0 else []
