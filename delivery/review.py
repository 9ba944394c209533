"""A Markdown summary of real `pulumi preview` runs, for a reviewer reading a pull request.

Usage: python -m delivery.review [--save DIR] [STACK ...]   (default: every Pulumi.<stack>.yaml)

With --save, each stack's review is also kept as DIR/<stack>.review.json, for a deploy to be held to
(delivery/binding.py; `make up REVIEWED=DIR/<stack>.review.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery.program import PROJECT_DIR
from settings.stack_files import (
    StackFileError,
    StackLockedError,
    kept_as_is,
    locked,
    machine_config,
    policy_run,
    stack_names,
)

# Pulumi marks a secret value on the wire and in state with this key.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
# What the engine writes in preview JSON for a value only known after the update.
UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
COMPUTED = "(known after up)"
# How the policy engine says a rule could not look at a value during a preview.
DEFERRED_MARK = "can't be known during preview"
# The engine's own last word on a preview that a mandatory policy (or anything else) failed.
PREVIEW_FAILED = "error: preview failed"
MAX_VALUE_CHARS = 100
REPLACE_OPS = ("replace", "create-replacement", "delete-replaced")

# What a forced replacement means for the running service, by the field that forces it.
REPLACEMENT_IMPACT = {
    "spec.selector": "a new Deployment is created and the old one deleted: all pods are replaced at once",
    "metadata.name": "the object is recreated under its new name; clients of the old name break",
    "metadata.namespace": "it moves to another namespace: a new object is created and the old one deleted",
    "spec.type": "the Service is recreated: its cluster IP and node port change",
    "spec.clusterIP": "the Service is recreated: its cluster IP changes",
}
DEFAULT_IMPACT = "the resource is deleted and created again"

# What a reviewer needs to see of a resource that is created (its every input would drown them), by type.
CREATE_FIELDS = {
    "kubernetes:core/v1:Namespace": ("metadata.name",),
    "kubernetes:core/v1:Service": ("metadata.namespace", "spec.type", "spec.ports[0].nodePort"),
    "kubernetes:apps/v1:Deployment": ("metadata.namespace", "spec.replicas", "spec.template.spec.containers[0].image"),
    "kubernetes:networking.k8s.io/v1:Ingress": ("spec.rules[0].host",),
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


@dataclass
class Violation:
    policy: str
    level: str
    resource: str
    message: str


def display(value: Any, limit: int | None = MAX_VALUE_CHARS) -> str:
    if isinstance(value, dict) and SECRET_SIG_KEY in value:
        return "[secret]"
    if value is None:
        return "(none)"
    if value == UNKNOWN_SENTINEL:
        return COMPUTED
    if not isinstance(value, dict | list):
        return str(value)  # scalars in full: an image reference must show its whole digest
    text = json.dumps(value, sort_keys=True)
    if "[secret]" in text or SECRET_SIG_KEY in text:
        return "[secret]"
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


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


def _state_value(state: Mapping[str, Any], path: str) -> Any:
    """A field from a step's state: its inputs, or its outputs for a field a provider computes."""
    value = _lookup(state.get("inputs", {}), path)
    return value if value is not None else _lookup(state.get("outputs", {}), path)


def _type_and_name(urn: str) -> tuple[str, str]:
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
        type_, name = _type_and_name(step["urn"])
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
            paths = [path for path in CREATE_FIELDS.get(type_, ()) if _state_value(new, path) is not None]
        for path in paths:
            shown = (display(_state_value(state, path), limit) for state in (old, new))
            change.fields.append((path, *shown))
        found.append(change)
    return found


def violations(events: Iterable[Mapping[str, Any]]) -> list[Violation]:
    """Policy violations from an engine event log."""
    found = []
    for event in events:
        policy = event.get("policyEvent")
        if policy:
            resource = _type_and_name(policy["resourceUrn"])[1] if policy.get("resourceUrn") else "(stack)"
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
    return f"`{reference.rsplit('@', 1)[-1]}`" if "@sha256:" in reference else f"{reference} (a new build)"


def summarize(
    stack: str,
    preview: Mapping[str, Any],
    events: Iterable[Mapping[str, Any]] = (),
    app_changes: Sequence[str] = (),
) -> str:
    """The Markdown section of one stack's preview; ``app_changes`` are the files git sees changed under app/."""
    counts = _counts(preview)
    lines = [
        f"### Stack `{stack}`",
        "",
        " · ".join(f"{count} to {op}" for op, count in counts.items()),
        "",
    ]
    found = changes(preview)
    if not found:
        lines += ["No changes.", ""]
    for change in found:
        lines.append(f"- **{change.op}** `{change.type}` `{change.name}`")
        for path, old, new in change.fields:
            if path == "contextHash":
                # A hash of the build context means nothing to a reviewer; what it stands for does.
                files = f" ({', '.join(f'`{name}`' for name in app_changes)})" if app_changes else ""
                lines.append(f"  - app/ changed{files}: a new image will be built")
                continue
            lines.append(f"  - `{path}`: {new}" if change.op == "create" else f"  - `{path}`: {old} → {new}")
            if path.endswith(".image") and "@sha256:" in old + new and change.op != "create":
                lines.append(f"  - image digest: {_digest(old)} → {_digest(new)}")
        if change.op in REPLACE_OPS or change.replace_reasons:
            for reason in change.replace_reasons or ["(not reported)"]:
                impact = _impact(reason)
                lines.append(f"  - ⚠️ **replacement** forced by `{reason}`: {impact}")
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
            lines += [f"- `{v.policy}` ({v.level}) on `{v.resource}`: {v.message}" for v in group]
    lines.append("")
    return "\n".join(lines)


def preview_stack(stack: str, work_dir: Path = PROJECT_DIR) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Runs a real `pulumi preview --json` with the policy pack and reads its event log.

    The pack runs with the stack's enforcement: its ``policy/config/<stack>.json``, else every rule
    mandatory. The stack is locked meanwhile, so that a promotion never interleaves with the review.

    Raises:
        ReviewError: When the preview fails or another promotion or review holds the stack.
    """
    try:
        # A review changes nothing, though selecting a new stack writes an encryption salt into its file.
        with locked(work_dir, stack, purpose="review"), kept_as_is(work_dir, stack):
            result, log = _preview_with_events(stack, work_dir)
    except (StackLockedError, StackFileError) as error:
        raise ReviewError(str(error)) from error
    # A mandatory policy violation fails the preview but still yields its JSON, to be summarized.
    if not result.stdout.strip().startswith("{"):
        raise ReviewError(f"pulumi preview of stack {stack!r} failed:\n{result.stderr.strip()}")
    preview: dict[str, Any] = json.loads(result.stdout)
    # The program itself failed (a wrong setting): its JSON lists no resources, which is no "No changes".
    # A mandatory policy violation adds only the engine's bare "preview failed", and is summarized.
    diagnostics = preview.get("diagnostics") or []
    errors = [d["message"].strip() for d in diagnostics if d.get("severity") == "error"]
    if errors and set(errors) != {PREVIEW_FAILED}:
        raise ReviewError(f"pulumi preview of stack {stack!r} failed:\n" + "\n".join(errors))
    events = [json.loads(line) for line in log.splitlines() if line.strip()]
    return preview, events


def _preview_with_events(stack: str, work_dir: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """The finished preview and its event log."""
    # --event-log, which carries the policy events, is only offered with debug commands on.
    env = {**os.environ, "PULUMI_DEBUG_COMMANDS": "true"}
    # A stack that was never deployed is reviewed too: everything in it is a create. It is created beside a
    # scratch copy of Pulumi.yaml, as stack.sh does, so that its salt never lands in the tracked stack file.
    select = ["pulumi", "stack", "select", "--non-interactive", stack]
    if subprocess.run(select, cwd=work_dir, env=env, capture_output=True, check=False).returncode != 0:
        with tempfile.TemporaryDirectory() as scratch:
            shutil.copy2(work_dir / "Pulumi.yaml", scratch)
            init = ["pulumi", "stack", "init", "--non-interactive", "--no-select", stack]
            subprocess.run(init, cwd=scratch, env=env, capture_output=True, check=False)
    with tempfile.TemporaryDirectory() as scratch, policy_run(PROJECT_DIR, stack) as policy:
        event_log = Path(scratch) / "events.jsonl"
        command = ["pulumi", "preview", "--json", "--non-interactive", "--stack", stack, *policy.flags]
        # This machine's copy of the stack file, as `make preview` and `make up` use it.
        command += ["--config-file", str(machine_config(work_dir, stack))]
        command += ["--event-log", str(event_log)]
        result = subprocess.run(command, cwd=work_dir, env=env, capture_output=True, text=True, check=False)
        return result, event_log.read_text() if event_log.exists() else ""


def app_changes(work_dir: Path) -> list[str]:
    """Files under app/ that differ from the last commit, as git tells; none when git cannot."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", "app"],
        cwd=work_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    return sorted(line[3:] for line in result.stdout.splitlines()) if result.returncode == 0 else []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m delivery.review", description=__doc__.splitlines()[0])
    parser.add_argument("stacks", nargs="*", help="stacks to preview (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--save", type=Path, metavar="DIR", help="also write DIR/<stack>.review.json for deploys")
    args = parser.parse_args(argv)
    if args.save is not None and not args.save.is_dir():
        print(f"error: SAVE must be an existing folder, got {str(args.save)!r}", file=sys.stderr)
        return 2
    known = stack_names(PROJECT_DIR)
    # A stack without a file would be created by the preview and left behind: refuse it up front.
    if unknown := [stack for stack in args.stacks if stack not in known]:
        print(
            f"error: stacks must have a Pulumi.<stack>.yaml ({', '.join(known)}), got {', '.join(unknown)}",
            file=sys.stderr,
        )
        return 2
    print("## Pulumi preview\n")
    failed = False
    for stack in args.stacks or known:
        try:
            preview, events = preview_stack(stack)
        except ReviewError as error:
            print(f"### Stack `{stack}`\n\n⛔ preview failed; see the job log.\n")
            print(f"error: {error}", file=sys.stderr)
            failed = True
            continue
        summary = summarize(stack, preview, events, app_changes(PROJECT_DIR))
        print(summary)
        if args.save is not None:
            # Imported here: binding imports this module for its preview.
            from delivery.binding import fingerprint, review_file, save

            reviewed = fingerprint(stack, preview)
            save(review_file(args.save, stack), reviewed, summary)
            print(f"Saved as `{review_file(args.save, stack).name}` (fingerprint `{reviewed.digest()[:12]}`).\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
