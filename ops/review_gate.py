"""The review gate: holds an up to what its reviewer saw (`make up REVIEWED=<file>`).

`make review SAVE=<dir>` saves, for each stack, the preview's update plan (``<stack>.plan.json``) and a
fingerprint of its changes (``<stack>.review.json``). An up held to them previews again and applies nothing
when the fingerprints differ; then it runs with the plan, so that the engine itself refuses any operation the
review did not show. The fingerprint is what a person reads, and what the plan cannot know: the files of the
build context and the base image's digest (a plan knows the context only as a path, the base image as a tag).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops import PROJECT_DIR
from ops.engine import Engine
from ops.review_summary import SECRET_SIG_KEY, changes, display, preview_stack
from settings import DEFAULT_BUILD_CONTEXT, decoded_object
from settings.stack_files import read_known_settings

# Bumped when the record's meaning changes: an older review is refused, never half-compared.
BINDING_VERSION = 2
IMAGE_BUILD_TYPE = "docker-build:index:Image"
# Stands for the random suffix of an auto-named resource, which no two previews share.
AUTONAME_MARK = "(random suffix)"
MAX_SHOWN_CHARS = 80
"""Longest piece of a review file that an error message quotes."""
MAX_REVIEW_BYTES = 16 << 20
"""The largest review file read: a review of this project's few resources takes kilobytes."""
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
PINNED_IMAGE = re.compile(r"\S+@sha256:[0-9a-f]{64}")
DOCKERFILE_BASE = re.compile(r"^ARG BASE_IMAGE=(\S+)\s*$", re.MULTILINE)
"""The Dockerfile's own base image: what the build takes when a stack sets no ``build.baseImage``."""


class ReviewGateError(Exception):
    """A review file cannot be used: not one, of another stack, or of another version."""


@dataclass(frozen=True)
class Fingerprint:
    """What a reviewer approved for one stack: every change the preview showed, and what a build would build."""

    stack: str
    changes: dict[str, dict[str, Any]]
    """By ``"<type chain> <name>"`` (the URN's types, parents first, so that resources of one type and name
    under two parents stay apart): its ``op``, its changed ``fields`` (path -> [old, new]) and
    ``replaceReasons``."""
    build_context: str | None
    """sha256 over the files of the stack's build context when the stack builds its image, else None."""
    base_image: str | None = None
    """The base image the build would start from, pinned by the digest its registry served, else None."""
    plan: str | None = None
    """sha256 of the update plan saved with the review, else None."""

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
            "baseImage": self.base_image,
            "plan": self.plan,
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


def fingerprint(
    stack: str,
    preview: Mapping[str, Any],
    work_dir: Path = PROJECT_DIR,
    *,
    plan: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Fingerprint:
    """The fingerprint of one stack's `pulumi preview --json` document, and of the plan saved beside it.

    Field values are kept in full (an image reference with its whole digest), except secrets, which
    are recorded as ``[secret]``: a review file is an artifact that many can read.

    Raises:
        ReviewGateError: When the stack builds from a base image that its registry does not serve or cannot say.
    """
    found: dict[str, dict[str, Any]] = {}
    creates = {step["urn"]: step for step in preview.get("steps", []) if step["op"] == "create"}
    for change in changes(preview, full_values=True):
        fields = {path: [old, new] for path, old, new in change.fields}
        if change.urn in creates:
            # A create has no diff: what it will create is every input it was given.
            inputs = (creates[change.urn].get("newState") or {}).get("inputs", {})
            fields = {path: ["(none)", display(value, None)] for path, value in leaves(inputs)}
        found[f"{change.urn.split('::')[2]} {change.name}"] = {
            "op": change.op,
            "fields": {path: [_autonamed(change.name, v) for v in pair] for path, pair in fields.items()},
            "replaceReasons": sorted(change.replace_reasons),
        }
    builds = any(step["urn"].split("::")[2].endswith(IMAGE_BUILD_TYPE) for step in preview.get("steps", []))
    context = base = None
    if builds:
        found_build = decoded_object(read_known_settings(work_dir, stack).get("build"))
        build = found_build if isinstance(found_build, dict) else {}
        context_dir = work_dir / str(build.get("context") or DEFAULT_BUILD_CONTEXT)
        context = build_context_hash(context_dir)
        base = pinned_base_image(str(build.get("baseImage") or _dockerfile_base(context_dir)), environ)
    planned = None if plan is None else hashlib.sha256(plan.read_bytes()).hexdigest()
    return Fingerprint(stack=stack, changes=found, build_context=context, base_image=base, plan=planned)


def _dockerfile_base(context_dir: Path) -> str:
    dockerfile = context_dir / "Dockerfile"
    found = DOCKERFILE_BASE.search(dockerfile.read_text()) if dockerfile.is_file() else None
    if found is None:
        raise ReviewGateError(f"{dockerfile} must declare `ARG BASE_IMAGE=<image>` when build.baseImage is unset")
    return found.group(1)


def pinned_base_image(written: str, environ: Mapping[str, str]) -> str:
    """The base image as ``<name>@<digest>``: as written when pinned, else the digest its registry serves now.

    Raises:
        ReviewGateError: When the name is malformed or its registry does not serve it or cannot say.
    """
    from ops.image_names import parse_image_name
    from ops.registry import RegistryError, from_environment

    name = parse_image_name(written)
    if isinstance(name, str):
        raise ReviewGateError(f"the base image must be an image name, got {written!r}: {name}")
    if name.digest is not None:
        return str(name)
    try:
        served = from_environment(name.registry, environ).served_digest(name.repository, name.reference)
    except RegistryError as error:
        raise ReviewGateError(f"cannot tell which base image {written} is: {error}") from error
    if served is None:
        raise ReviewGateError(f"the base image {written} must be served by its registry, got no such image")
    return f"{name}@{served}"


def plan_file(directory: Path, stack: str) -> Path:
    """Where the update plan of a review of ``stack`` is saved in ``directory``, beside its review file."""
    return directory / f"{stack}.plan.json"


def take_plan(reviewed: Path, fingerprinted: Fingerprint, into: Path) -> Path:
    """Copies the plan saved beside the review file ``reviewed`` into ``into`` and returns the copy: the plan
    an up is held to, checked against the review's record of it.

    Raises:
        ReviewGateError: When the review has no plan, the plan is missing, or it is not the one reviewed.
    """
    saved = plan_file(reviewed.parent, fingerprinted.stack)
    if fingerprinted.plan is None:
        raise ReviewGateError(f"REVIEWED must record the update plan saved with it, got none in {reviewed}")
    copy = into / saved.name
    try:
        shutil.copyfile(saved, copy)  # checked and used as one copy: the saved file may change meanwhile
    except OSError as error:
        raise ReviewGateError(f"REVIEWED needs its update plan {saved}, got: {error}") from error
    found = hashlib.sha256(copy.read_bytes()).hexdigest()
    if found != fingerprinted.plan:
        raise ReviewGateError(f"{saved} must be the update plan reviewed (sha256 {fingerprinted.plan}), got {found}")
    return copy


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
    context, base, plan = record.get("buildContext"), record.get("baseImage"), record.get("plan")
    for key, value, pattern in (("buildContext", context, SHA256_HEX), ("plan", plan, SHA256_HEX)):
        if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
            problems.append(f"{key} must be a sha256 in hex or null, got {_shown(value)}")
    if base is not None and not (isinstance(base, str) and PINNED_IMAGE.fullmatch(base)):
        problems.append(f"baseImage must be an image pinned by digest or null, got {_shown(base)}")
    if problems:
        raise ReviewGateError(f"{not_one}: {'; '.join(problems)}")
    return Fingerprint(stack=stack, changes=record["changes"], build_context=context, base_image=base, plan=plan)


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
        found.append("the build context differs from the reviewed source: another image would be built")
    if reviewed.base_image != now.base_image:
        found.append(f"the base image is now {now.base_image}, reviewed {reviewed.base_image}: another would be built")
    return found


def check(reviewed: Fingerprint, work_dir: Path = PROJECT_DIR, engine: Engine | None = None) -> list[str]:
    """Previews the reviewed stack again and returns how its changes differ from the review's (none: it may deploy).

    Raises:
        ReviewError: When the fresh preview fails.
    """
    preview, _ = preview_stack(reviewed.stack, work_dir, engine)
    return differences(reviewed, fingerprint(reviewed.stack, preview, work_dir))
