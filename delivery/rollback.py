"""A failed rollout rolls itself back: the stack returns to the last digest that passed its verification.

Usage: python -m delivery.rollback STACK POLICY_CONFIG up [PULUMI ARGS...] [--no-rollback]
(tooling/scripts/stack.sh's ``up`` path; ``make promote`` calls :func:`roll_back` itself).

The rollback deploys the stack's ``verifiedImageRef`` output (a failed ``pulumi up`` keeps the outputs
of the last successful one) through a temporary copy of the stack file, so the stack file keeps the
change that failed: ``pulumi preview`` shows it as still pending, and state and cluster agree.
"""

from __future__ import annotations

import enum
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import yaml

from delivery.program import PROJECT_DIR
from settings import PROJECT
from settings.stack_files import POLICY_PACK_DIR, PolicyRun, stack_file

if TYPE_CHECKING:
    from pulumi import automation as auto

NO_ROLLBACK = "--no-rollback"
"""The flag that turns rollback off, on ``stack.sh STACK up`` and on ``make promote``."""
VERIFIED_OUTPUT = "verifiedImageRef"
"""The stack output naming the last image that passed the in-cluster verification."""
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
SUMMARY_MAX_CHARS = 400
"""How much of pulumi's error a message quotes."""
_IMAGE = f"{PROJECT}:image"
# A rollback deploys a pinned image: the build section and its password are what make a stack build.
_BUILD_ONLY = (f"{PROJECT}:build", f"{PROJECT}:registryPassword")
# Pulumi repeats the resource's URN inside its error; the message already names the resource.
_URN_PREAMBLE = re.compile(r'resource "urn:[^"]*" was successfully created, but ')
_ERROR = re.compile(r"\berror: (.+)")
_RESOURCE_LINE = re.compile(r"^\s+(?P<type>[\w.-]+:[\w./-]*:\w+) \((?P<name>[^)]+)\):$")


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

    def rollback_failed(self, verified: str, error: str) -> str:
        return (
            f"stack {self.stack!r}: the update failed ({self.what}), and the rollback to {verified} failed too "
            f"({error}): what runs is unknown; preview and refresh the stack"
        )


def summary(output: str) -> str:
    """Pulumi's first resource error (``<name> (<type>): <error>``), else its first error line, in short."""
    lines = output.splitlines()
    found = ""
    for index, line in enumerate(lines):
        resource = _RESOURCE_LINE.match(line)
        # The stack's own "update failed" says nothing; the resource that failed does.
        if resource and resource["type"] != "pulumi:pulumi:Stack":
            detail = " ".join(part.strip() for part in lines[index + 1 : index + 4] if part.strip())
            if "error" in detail:
                detail = _URN_PREAMBLE.sub("", detail.removeprefix("error: "))
                found = f"{resource['name']} ({resource['type']}): {detail}"
                break
    if not found:
        errors = [match.group(1).strip() for line in lines if (match := _ERROR.search(line))]
        found = errors[0] if errors else "pulumi up exited non-zero"
    return found if len(found) <= SUMMARY_MAX_CHARS else found[: SUMMARY_MAX_CHARS - 1] + "…"


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
    document = yaml.safe_load(source.read_text()) or {}
    with tempfile.TemporaryDirectory(prefix="rollback-") as scratch:
        path = Path(scratch) / source.name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as written:
            yaml.safe_dump(rollback_document(document, verified), written, sort_keys=False)
        yield path


def roll_back(
    stack: auto.Stack,
    *,
    config: Path,
    failure: Failure,
    rollback: bool,
    policy: PolicyRun,
    say: Callable[[str], None] = print,
) -> DeployError:
    """After a failed ``pulumi up`` of ``stack``, returns it to its last verified digest when that is due.

    Waits for the rollback's rollout (``pulumi up`` awaits the Deployment and the verification Job).

    Args:
        config: The config file the failed update ran with; a copy of it deploys the verified digest.
        rollback: False for ``--no-rollback``.

    Returns:
        The error to raise: the update failed whatever was done after it.
    """
    from pulumi.automation.errors import CommandError

    verified_output = stack.outputs().get(VERIFIED_OUTPUT)
    verified = str(verified_output.value) if verified_output is not None and verified_output.value else None
    deployed = deployed_image(stack.export_stack().deployment or {})
    decision = decide(verified=verified, deployed=deployed, rollback=rollback)
    if decision is not Decision.ROLL_BACK:
        return DeployError(failure.message(decision, verified=verified, deployed=deployed))
    assert verified is not None  # decide() rolls back only to a verified image
    say(f"The update of {failure.stack} failed; rolling back to {verified}, the last image that passed verification:")
    try:
        with rollback_config_file(config, verified) as copy:
            stack.up(
                on_output=say,
                color="never",
                policy_packs=[str(policy.pack)],
                policy_pack_configs=[str(policy.config)],
                config_file=str(copy),
            )
    except CommandError as error:
        return DeployError(failure.rollback_failed(verified, summary(str(error))))
    runs = stack.outputs().get("imageRef")
    return DeployError(failure.rolled_back(verified, None if runs is None else str(runs.value)))


def _run_streaming(command: list[str]) -> tuple[int, str, int | None]:
    """Runs pulumi, echoing its output; SIGINT and SIGTERM are passed on to it (as its graceful cancel).

    Returns:
        Its exit code, its output and the stop signal received, if any.
    """
    stopped: list[int] = []
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, encoding="utf-8"
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)
        process.send_signal(signal.SIGINT)

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code, "".join(lines), stopped[0] if stopped else None


def config_file_of(pulumi_args: Sequence[str]) -> Path | None:
    """The ``--config-file`` a pulumi command line gives (the last one, as pulumi reads it), if any."""
    found = None
    for index, arg in enumerate(pulumi_args):
        if arg == "--config-file" and index + 1 < len(pulumi_args):
            found = pulumi_args[index + 1]
        elif arg.startswith("--config-file="):
            found = arg.removeprefix("--config-file=")
    return None if found is None else Path(found)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[2] != "up":
        print("usage: python -m delivery.rollback STACK POLICY_CONFIG up [PULUMI ARGS...]", file=sys.stderr)
        return 2
    name, policy_config, *pulumi_args = argv
    rollback = NO_ROLLBACK not in pulumi_args
    pulumi_args = [arg for arg in pulumi_args if arg != NO_ROLLBACK]
    policy = PolicyRun(pack=PROJECT_DIR / POLICY_PACK_DIR, config=Path(policy_config))
    command = ["pulumi", *pulumi_args, *policy.flags, "--non-interactive", "--stack", name]
    code, output, stopped = _run_streaming(command)
    if code == 0:
        return 0
    if stopped is not None:
        print(f"error: stopped by {signal.Signals(stopped).name}; not rolling back", file=sys.stderr)
        return 128 + stopped
    # stack.sh runs from the project, with this machine's copy of the stack file; the pack is always ours.
    work_dir = Path.cwd()
    config = config_file_of(pulumi_args) or stack_file(work_dir, name)
    # Only a failed up needs the SDK (0.2 s to import): every `make up` goes through here.
    from pulumi import automation as auto

    stack = auto.select_stack(name, work_dir=str(work_dir))
    failure = Failure(stack=name, what=summary(output))
    error = roll_back(stack, config=config, failure=failure, rollback=rollback, policy=policy)
    print(f"error: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
