"""The review gate: holds an up to what its reviewer saw (`make up REVIEWED=<file>`).

`make review SAVE=<dir>` saves a fingerprint of each stack's previewed changes; before an up held to it,
a fresh preview's fingerprint is compared with it, and nothing is applied when they differ.
"""

from __future__ import annotations

import hashlib
import json
import os
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
MAX_SHOWN_CHARS = 80
"""Longest piece of a review file that an error message quotes."""
MAX_REVIEW_BYTES = 16 << 20
"""The largest review file read: a review of this project's few resources takes kilobytes."""
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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
    not_one = f"REVIEWED must be a review file saved by `make review SAVE=<dir>`, got {path}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_REVIEW_BYTES + 1)
            size = os.fstat(handle.fileno()).st_size
        if len(data) > MAX_REVIEW_BYTES:
            raise ReviewGateError(f"REVIEWED must be at most {MAX_REVIEW_BYTES} bytes, got {max(size, len(data))}")
        record = json.loads(data)
    except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise ReviewGateError(f"{not_one}: {error}") from error
    except RecursionError:
        raise ReviewGateError(f"{not_one}: it nests deeper than JSON may here") from None
    if not isinstance(record, dict) or not isinstance(record.get("changes"), dict):
        raise ReviewGateError(not_one)
    version = record.get("version")
    # True == 1 in Python: a version is an int, never a bool or a float.
    if type(version) is not int or version != BINDING_VERSION:
        raise ReviewGateError(f"REVIEWED must be a review file of version {BINDING_VERSION}, got {version!r}")
    if record.get("stack") != stack:
        raise ReviewGateError(f"REVIEWED must be a review of stack {stack!r}, got one of {record.get('stack')!r}")
    problems = [problem for key, change in record["changes"].items() for problem in _change_problems(key, change)]
    context = record.get("buildContext")
    if context is not None and not (isinstance(context, str) and SHA256_HEX.fullmatch(context)):
        problems.append(f"buildContext must be a sha256 in hex or null, got {_shown(context)}")
    if problems:
        raise ReviewGateError(f"{not_one}: {'; '.join(problems)}")
    return Fingerprint(stack=stack, changes=record["changes"], build_context=context)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _change_problems(key: str, change: Any) -> list[str]:
    """What is wrong with one change of a review file, in the shape :func:`fingerprint` writes it."""
    where = f"changes[{_shown(key)}]"
    if not isinstance(change, dict) or not {"op", "fields", "replaceReasons"} <= change.keys():
        return [f"{where} must be a mapping of op, fields and replaceReasons, got {_shown(change)}"]
    problems = []
    if not isinstance(change["op"], str):
        problems.append(f"{where}.op must be text, got {_shown(change['op'])}")
    fields = change["fields"]
    if not isinstance(fields, dict):
        problems.append(f"{where}.fields must be a mapping of path to [old, new], got {_shown(fields)}")
    else:
        problems += [
            f"{where}.fields[{_shown(path)}] must be [old, new] of text, got {_shown(pair)}"
            for path, pair in fields.items()
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(value, str) for value in pair))
        ]
    reasons = change["replaceReasons"]
    if not (isinstance(reasons, list) and all(isinstance(reason, str) for reason in reasons)):
        problems.append(f"{where}.replaceReasons must be a list of text, got {_shown(reasons)}")
    return problems


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
