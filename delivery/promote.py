"""Promote the image a stack runs, pinned by digest, to the next stack: what was tested is what ships.

Usage: python -m delivery.promote --from dev --to staging [--yes] [--digest sha256:...]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

from delivery.program import PROJECT_DIR
from delivery.registry import Registry, RegistryError
from delivery.registry import from_environment as registry_from_environment
from image_ref import DIGEST, ImageRef, parse_image_ref
from settings.stack_files import kept_as_is

CHAIN = ("dev", "staging", "prod")


class PromotionError(Exception):
    """The promotion cannot go ahead; nothing was changed."""


@dataclass(frozen=True, kw_only=True)
class Request:
    """One promotion, as asked for on the command line."""

    source: str
    target: str
    digest: str | None = None
    """Roll the target to this earlier digest of the source's repository instead."""
    out_of_chain: bool = False
    yes: bool = False


def check_chain(source: str, target: str, out_of_chain: bool) -> None:
    """Only the next stack of dev -> staging -> prod may be promoted to, unless asked explicitly.

    Raises:
        PromotionError: When ``target`` is not the stack after ``source``.
    """
    if source == target:
        raise PromotionError(f"--to must be another stack than --from, got {target!r} for both")
    next_stack = CHAIN[CHAIN.index(source) + 1] if source in CHAIN[:-1] else None
    if target != next_stack and not out_of_chain:
        expected = f"'{next_stack}'" if next_stack else "nothing (it is the last stack)"
        raise PromotionError(
            f"--to after {source!r} must be {expected} in the chain {' -> '.join(CHAIN)}, got {target!r}; "
            "pass --out-of-chain to promote there anyway"
        )


def candidate(source_ref: str, digest: str | None) -> ImageRef:
    """The reference to pin: the source's own, or the same repository at an older digest.

    Raises:
        PromotionError: When a reference or digest is malformed.
    """
    parsed = parse_image_ref(source_ref)
    if isinstance(parsed, str):
        raise PromotionError(f"the source's imageRef output must be pinned by digest, got {source_ref!r} ({parsed})")
    if digest is None:
        return parsed
    if not DIGEST.fullmatch(digest):
        raise PromotionError(f"--digest must be sha256:<64 hex digits>, got {digest!r}")
    return parsed.with_digest(digest)


def check_served(image: ImageRef, registry: Registry) -> None:
    """The registry must still serve the exact digest, or nothing is promoted.

    Raises:
        PromotionError: When the digest is gone or the registry cannot tell.
    """
    try:
        served = registry.served_digest(image.repository, image.digest)
    except RegistryError as error:
        raise PromotionError(f"cannot check {image}: {error}") from error
    if served != image.digest:
        raise PromotionError(
            f"the registry must still serve {image.digest} for {image.registry}/{image.repository}, got "
            f"{'nothing' if served is None else served}; nothing was promoted"
        )


def git_commit(directory: Path) -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=directory, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def registry_for(image: ImageRef) -> Registry:
    """The image's registry, with the environment's credentials only if they were configured for it.

    Raises:
        PromotionError: When ``REGISTRY_ADDRESS`` is not a registry host[:port].
    """
    try:
        return registry_from_environment(image.registry, os.environ)
    except RegistryError as error:
        raise PromotionError(str(error)) from error


def promote(
    request: Request,
    *,
    work_dir: Path = PROJECT_DIR,
    confirm: Callable[[str], bool],
    say: Callable[[str], None] = print,
) -> bool:
    """Pins the source's image into the target stack, previews, and deploys when confirmed.

    Returns:
        True when the target was deployed, False when there was nothing to do or it was declined.

    Raises:
        PromotionError: When a check fails; the target's settings are left as they were.
    """
    if request.source not in CHAIN and not request.out_of_chain:
        raise PromotionError(f"--from must be one of {', '.join(CHAIN)}, got {request.source!r}")
    check_chain(request.source, request.target, request.out_of_chain)
    source = auto.select_stack(request.source, work_dir=str(work_dir))
    outputs = source.outputs()
    if "imageRef" not in outputs:
        raise PromotionError(f"stack {request.source!r} must have been deployed (an imageRef output), got none")
    image = candidate(str(outputs["imageRef"].value), request.digest)
    check_served(image, registry_for(image))

    target = auto.select_stack(request.target, work_dir=str(work_dir))
    deployed = target.outputs().get("imageRef")
    if deployed is not None and deployed.value == str(image):
        say(f"{request.target} already runs {image}; nothing to promote")
        return False

    with kept_as_is(work_dir, request.target, unless_success=True):
        target.set_config("image", auto.ConfigValue(str(image)))
        for key, value in provenance(request.source, image, git_commit(work_dir)).items():
            target.set_config(f"promotion.{key}", auto.ConfigValue(value), path=True)
        say(f"Promoting {image} from {request.source} to {request.target}; preview:")
        target.preview(diff=True, on_output=say, color="never")
        if not (request.yes or confirm(f"Deploy {image} to {request.target}?")):
            raise PromotionError("declined; nothing was deployed")
        target.up(on_output=say, color="never")
    return True


def provenance(source: str, image: ImageRef, commit: str) -> dict[str, str]:
    """Where a promoted image came from, recorded in the target's ``promotion`` setting."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    return {"from": source, "digest": image.digest, "at": now, "commit": commit}


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        raise PromotionError("not deploying without a terminal to confirm on; pass --yes to deploy")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def parse_args(argv: Sequence[str] | None = None) -> Request:
    parser = argparse.ArgumentParser(
        prog="python -m delivery.promote",
        description="Promote the image a stack runs, pinned by digest, to the next stack (dev -> staging -> prod).",
    )
    parser.add_argument("--from", dest="source", required=True, help="stack whose deployed image is promoted")
    parser.add_argument("--to", dest="target", required=True, help="stack that receives it")
    parser.add_argument("--digest", help="roll the target to this earlier sha256 digest of the same repository")
    parser.add_argument("--yes", action="store_true", help="deploy after the preview without asking")
    parser.add_argument(
        "--out-of-chain", action="store_true", help="allow a target that is not the next stack in the chain"
    )
    args = parser.parse_args(argv)
    return Request(
        source=args.source, target=args.target, digest=args.digest, out_of_chain=args.out_of_chain, yes=args.yes
    )


def main(argv: Sequence[str] | None = None) -> int:
    request = parse_args(argv)
    work_dir = Path(os.environ.get("HELLO_PROJECT_DIR", PROJECT_DIR))
    try:
        promote(request, work_dir=work_dir, confirm=_ask)
    except PromotionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except auto.errors.CommandError as error:
        print(f"error: pulumi failed; the target's settings were restored\n{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
