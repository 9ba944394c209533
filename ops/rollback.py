"""A failed rollout rolls itself back: the stack returns to the last digest that passed its verification.

Used by ``make up`` (ops/deploy.py) and ``make promote`` (ops/promotion.py).

The rollback deploys the stack's ``verifiedImageRef`` output (a failed ``pulumi up`` keeps the outputs
of the last successful one) through a temporary copy of the stack file, so the stack file keeps the
change that failed: ``pulumi preview`` shows it as still pending, and state and cluster agree.
"""

from __future__ import annotations

import enum
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ops.policy_config import PolicyRun
from settings import PROJECT
from settings.stack_files import load_yaml, write_atomically

if TYPE_CHECKING:
    from pulumi import automation as auto

NO_ROLLBACK = "--no-rollback"
"""The flag that turns rollback off, on ``make up`` and on ``make promote``."""
VERIFIED_OUTPUT = "verifiedImageRef"
"""The stack output naming the last image that passed the in-cluster verification."""
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
_IMAGE = f"{PROJECT}:image"
# A rollback deploys a pinned image: the build section and its password are what make a stack build.
_BUILD_ONLY = (f"{PROJECT}:build", f"{PROJECT}:registryPassword")


class Decision(enum.Enum):
    """What a failed update leads to."""

    ROLL_BACK = "roll back"
    """The update changed what runs, and an earlier digest passed verification: deploy it again."""
    UNCHANGED = "unchanged"
    """The update failed before it changed the image that runs, which is the verified one."""
    DISABLED = "disabled"
    """``--no-rollback`` was given."""
    NOTHING_TO_RETURN_TO = "nothing to return to"
    """No image ever passed verification on the stack."""


def decide(*, verified: str | None, deployed: str | None, rollback: bool) -> Decision:
    """What to do after a failed update, from the last verified image and the image the state now records."""
    if verified is not None and deployed == verified:
        return Decision.UNCHANGED
    if not rollback:
        return Decision.DISABLED
    if verified is None:
        return Decision.NOTHING_TO_RETURN_TO
    return Decision.ROLL_BACK


class DeployError(Exception):
    """The update failed; the message says what failed, whether it was rolled back, and what runs now."""


@dataclass(frozen=True, kw_only=True)
class Failure:
    """A failed update of one stack, as the messages describe it."""

    stack: str
    what: str
    """Pulumi's error, in short."""
    pending: bool = True
    """Whether the stack's config keeps the change that failed (a promotion puts the target's back)."""

    def message(self, decision: Decision, *, verified: str | None, deployed: str | None) -> str:
        """The closing message for every decision but a rollback, which :meth:`rolled_back` words."""
        head = f"stack {self.stack!r}: the update failed ({self.what})"
        if decision is Decision.UNCHANGED:
            return f"{head} before it changed the image that runs: {deployed} still runs; nothing to roll back"
        if decision is Decision.DISABLED:
            last = f"the last verified image is {verified}" if verified else "no image ever passed verification here"
            return (
                f"{head}; not rolled back ({NO_ROLLBACK}): it runs what the failed update left "
                f"({deployed or 'no Deployment'}); {last}"
            )
        if decision is Decision.NOTHING_TO_RETURN_TO:
            return (
                f"{head}; nothing to roll back to: no image ever passed verification on this stack "
                f"(it has no {VERIFIED_OUTPUT} output), so it runs what the failed update left "
                f"({deployed or 'no Deployment'})"
            )
        raise ValueError(f"decision must not be {Decision.ROLL_BACK.name} here, got it")

    def rolled_back(self, verified: str, runs: str | None) -> str:
        """The closing message after the rollback's ``pulumi up`` succeeded."""
        if runs != verified:
            return (
                f"stack {self.stack!r}: the update failed ({self.what}); the rollback to {verified} completed, "
                f"but the stack's imageRef must then be that digest, got {runs}: preview the stack"
            )
        pending = ". The failed change is still pending (pulumi preview shows it)" if self.pending else ""
        return (
            f"stack {self.stack!r}: the update failed ({self.what}); rolled back to {verified}, the last image "
            f"that passed verification here, and that rollout finished: it runs now{pending}"
        )

    def untrusted(self, verified: str, doubt: str, deployed: str | None) -> str:
        """The closing message when the image the state names as verified has no trusted evidence of it."""
        return (
            f"stack {self.stack!r}: the update failed ({self.what}); not rolled back to {verified}, which the state "
            f"names as verified, because {doubt}; it runs what the failed update left ({deployed or 'no Deployment'})"
        )

    def rollback_failed(self, verified: str, error: str) -> str:
        return (
            f"stack {self.stack!r}: the update failed ({self.what}), and the rollback to {verified} failed too "
            f"({error}): what runs is unknown; preview and refresh the stack"
        )


def deployed_image(deployment: Mapping[str, Any]) -> str | None:
    """The image of the state's Deployment (``pulumi stack export``'s ``deployment``), None without one."""
    images = [
        resource.get("outputs", {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0]
        for resource in deployment.get("resources") or []
        if resource.get("type") == DEPLOYMENT_TYPE and not resource.get("delete")
    ]
    if len(images) > 1:
        raise ValueError(f"the state must hold one {DEPLOYMENT_TYPE}, got {len(images)}")
    return images[0].get("image") if images else None


def rollback_document(document: Mapping[str, Any], verified: str) -> dict[str, Any]:
    """The stack file's document, deploying ``verified`` instead of building or of another image.

    Everything else stays, the encryption salt and the other settings' ciphertext included.
    """
    config = {key: value for key, value in (document.get("config") or {}).items() if key not in _BUILD_ONLY}
    return {**document, "config": {**config, _IMAGE: verified}}


@contextmanager
def rollback_config_file(source: Path, verified: str) -> Iterator[Path]:
    """A private copy of a stack's config file (0600, in a 0700 folder) that deploys ``verified``; removed afterwards.

    Args:
        source: The config file the failed update ran with: this machine's copy (which holds its secrets
            and salt) or the stack file.
    """
    document = load_yaml(source) or {}
    with tempfile.TemporaryDirectory(prefix="rollback-") as scratch:
        path = Path(scratch) / source.name
        content = yaml.safe_dump(rollback_document(document, verified), sort_keys=False)
        write_atomically(path, content.encode(), private=True)
        yield path


def roll_back(
    stack: auto.Stack,
    *,
    config: Path,
    failure: Failure,
    rollback: bool,
    policy: PolicyRun,
    doubt: Callable[[str], str | None],
    say: Callable[[str], None] = print,
) -> DeployError:
    """After a failed ``pulumi up`` of ``stack``, returns it to its last verified digest when that is due.

    Waits for the rollback's rollout (``pulumi up`` awaits the Deployment and the verification Job).

    Args:
        config: The config file the failed update ran with; a copy of it deploys the verified digest.
        rollback: False for ``--no-rollback``.
        doubt: Why an image the state names as verified is not to be trusted, or None (``evidence.doubts``):
            whoever can write the state can name any image there.

    Returns:
        The error to raise: the update failed whatever was done after it.
    """
    # Here, not at the top: `python -m ops` reads NO_ROLLBACK from this module on every run.
    from ops.engine import CommandError, EventLog

    verified_output = stack.outputs().get(VERIFIED_OUTPUT)
    verified = str(verified_output.value) if verified_output is not None and verified_output.value else None
    deployed = deployed_image(stack.export_stack().deployment or {})
    decision = decide(verified=verified, deployed=deployed, rollback=rollback)
    if decision is not Decision.ROLL_BACK:
        return DeployError(failure.message(decision, verified=verified, deployed=deployed))
    assert verified is not None  # decide() rolls back only to a verified image
    if (why := doubt(verified)) is not None:
        return DeployError(failure.untrusted(verified, why, deployed))
    log = EventLog()
    say(f"The update of {failure.stack} failed; rolling back to {verified}, the last image that passed verification:")
    try:
        with rollback_config_file(config, verified) as copy:
            stack.up(
                on_output=say,
                on_event=log,
                color="never",
                policy_packs=[str(policy.pack)],
                policy_pack_configs=[str(policy.config)],
                config_file=str(copy),
            )
    except CommandError:
        return DeployError(failure.rollback_failed(verified, log.first_error()))
    runs = stack.outputs().get("imageRef")
    return DeployError(failure.rolled_back(verified, None if runs is None else str(runs.value)))
