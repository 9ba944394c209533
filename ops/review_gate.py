"""The review gate: holds an up to what its reviewer saw (`make up REVIEWED=<file>`).

`make review SAVE=<dir>` saves a fingerprint of each stack's previewed changes; before an up held to it,
a fresh preview's fingerprint is compared with it, and nothing is applied when they differ.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops import PROJECT_DIR
from ops.engine import Engine
from ops.review_summary import SECRET_SIG_KEY, changes, display, preview_stack
from settings import DEFAULT_BUILD_CONTEXT

# Bumped when the record's meaning changes: an older review is refused, never half-compared.
BINDING_VERSION = 1
IMAGE_BUILD_TYPE = "docker-build:index:Image"
# Stands for the random suffix of an auto-named resource, which no two previews share.
AUTONAME_MARK = "(random suffix)"


class ReviewGateError(Exception):
    """A review file cannot be used: not one, of another stack, or of another version."""


@dataclass(frozen=True)
class Fingerprint:
    """What a reviewer approved for one stack: every change the preview showed, and what a build would build."""

    stack: str
    changes: dict[str, dict[str, Any]]
    """By ``"<type> <name>"``: its ``op``, its changed ``fields`` (path -> [old, new]) and ``replaceReasons``."""
    build_context: str | None
    """sha256 over the files of app/ when the stack builds its image, else None."""

    def digest(self) -> str:
        """One hash of the whole record, to name a review in a log."""
        canonical = json.dumps(self.as_record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def as_record(self) -> dict[str, Any]:
        return {
            "version": BINDING_VERSION,
            "stack": self.stack,
            "changes": self.changes,
            "buildContext": self.build_context,
        }


def build_context_hash(directory: Path) -> str:
    """sha256 over every file under ``directory`` (path and content, in path order): the image's source."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _autonamed(name: str, value: str) -> str:
    """A name Pulumi makes up (``<name>-<8 random hex>``), without its random part: every preview draws anew."""
    return f"{name}-{AUTONAME_MARK}" if re.fullmatch(re.escape(name) + r"-[0-9a-f]{8}", value) else value


def leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every leaf of a resource's inputs, by the path a detailed diff would give it (``spec.ports[0].port``).

    A secret is one leaf, so that its value is never walked into.
    """
    if isinstance(value, dict) and value and SECRET_SIG_KEY not in value:
        return [leaf for key, item in sorted(value.items()) for leaf in leaves(item, f"{path}.{key}" if path else key)]
    if isinstance(value, list) and value:
        return [leaf for index, item in enumerate(value) for leaf in leaves(item, f"{path}[{index}]")]
    return [(path, value)]


def fingerprint(stack: str, preview: Mapping[str, Any], work_dir: Path = PROJECT_DIR) -> Fingerprint:
    """The fingerprint of one stack's `pulumi preview --json` document.

    Field values are kept in full (an image reference with its whole digest), except secrets, which
    are recorded as ``[secret]``: a review file is an artifact that many can read.
    """
    found: dict[str, dict[str, Any]] = {}
    creates = {step["urn"]: step for step in preview.get("steps", []) if step["op"] == "create"}
    for change in changes(preview, full_values=True):
        fields = {path: [old, new] for path, old, new in change.fields}
        if change.urn in creates:
            # A create has no diff: what it will create is every input it was given.
            inputs = (creates[change.urn].get("newState") or {}).get("inputs", {})
            fields = {path: ["(none)", display(value, None)] for path, value in leaves(inputs)}
        found[f"{change.type} {change.name}"] = {
            "op": change.op,
            "fields": {path: [_autonamed(change.name, v) for v in pair] for path, pair in fields.items()},
            "replaceReasons": sorted(change.replace_reasons),
        }
    builds = any(step["urn"].split("::")[2].endswith(IMAGE_BUILD_TYPE) for step in preview.get("steps", []))
    context = build_context_hash(work_dir / DEFAULT_BUILD_CONTEXT) if builds else None
    return Fingerprint(stack=stack, changes=found, build_context=context)


def review_file(directory: Path, stack: str) -> Path:
    """Where a review of ``stack`` is saved in ``directory``."""
    return directory / f"{stack}.review.json"


def save(path: Path, reviewed: Fingerprint, summary: str) -> None:
    """Writes a review file: the fingerprint and the Markdown the reviewer read."""
    record = {**reviewed.as_record(), "fingerprint": reviewed.digest(), "summary": summary}
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def load(path: Path, stack: str) -> Fingerprint:
    """Reads a review file saved for ``stack``.

    Raises:
        ReviewGateError: When the file is missing, not a review file of this version, or of another stack.
    """
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReviewGateError(
            f"REVIEWED must be a review file saved by `make review SAVE=<dir>`, got {path}: {error}"
        ) from error
    if not isinstance(record, dict) or not isinstance(record.get("changes"), dict):
        raise ReviewGateError(f"REVIEWED must be a review file saved by `make review SAVE=<dir>`, got {path}")
    if record.get("version") != BINDING_VERSION:
        raise ReviewGateError(
            f"REVIEWED must be a review file of version {BINDING_VERSION}, got {record.get('version')!r}"
        )
    if record.get("stack") != stack:
        raise ReviewGateError(f"REVIEWED must be a review of stack {stack!r}, got one of {record.get('stack')!r}")
    return Fingerprint(stack=stack, changes=record["changes"], build_context=record.get("buildContext"))


def _describe(change: Mapping[str, Any] | None) -> str:
    return f"{change['op']}" if change else "no change"


def differences(reviewed: Fingerprint, now: Fingerprint) -> list[str]:
    """Every way ``now`` differs from ``reviewed``, one line each, for a person to read."""
    found = []
    for key in sorted(set(reviewed.changes) | set(now.changes)):
        before, after = reviewed.changes.get(key), now.changes.get(key)
        if before is None or after is None or before["op"] != after["op"]:
            found.append(f"`{key}`: reviewed {_describe(before)}, now {_describe(after)}")
            continue
        for path in sorted(set(before["fields"]) | set(after["fields"])):
            old, new = before["fields"].get(path), after["fields"].get(path)
            if old != new:
                shown = [" → ".join(pair) if pair else "unchanged" for pair in (old, new)]
                found.append(f"`{key}` `{path}`: reviewed {shown[0]}, now {shown[1]}")
        if before["replaceReasons"] != after["replaceReasons"]:
            found.append(
                f"`{key}` replacement forced by: reviewed {before['replaceReasons']}, now {after['replaceReasons']}"
            )
    if reviewed.build_context != now.build_context:
        found.append(f"{DEFAULT_BUILD_CONTEXT}/ differs from the reviewed source: another image would be built")
    return found


def check(stack: str, review_file: Path, work_dir: Path = PROJECT_DIR, engine: Engine | None = None) -> list[str]:
    """Previews ``stack`` again and returns how its changes differ from the review file's (none: it may deploy).

    Raises:
        ReviewGateError: As :func:`load`.
        ReviewError: When the fresh preview fails.
    """
    reviewed = load(review_file, stack)
    preview, _ = preview_stack(stack, work_dir, engine)
    return differences(reviewed, fingerprint(stack, preview, work_dir))
