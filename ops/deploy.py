"""Preview, deploy, destroy or refresh one stack of this project (`make preview|up|destroy|refresh`).

Pulumi reads this machine's copy of the stack file (ops/stack_copy.py), so nothing here changes a
tracked file; previews and updates run the policy pack at the stack's enforcement; a failed update
is rolled back to the last verified digest (ops/rollback.py); an update held to a saved review
(``--reviewed``) previews again first and applies nothing when the changes differ (ops/review_gate.py).
"""

from __future__ import annotations

import enum
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from image_ref import ImageRef, parse_image_ref
from ops import PROJECT_DIR, to_stderr
from ops.engine import CommandError, Engine, EventLog, require_pulumi
from ops.ingress_objects import check_stack_ingress
from ops.locking import backend_lock_error, locked
from ops.policy_config import policy_run
from ops.rollback import DeployError, Failure, roll_back
from ops.stack_copy import local_password_to_set, remember_password, stack_copy_file, write_stack_copy
from settings import PROJECT
from settings.local_platform import Platform, platform_uses
from settings.stack_files import StackFileError, read_known_settings, restoring

ANSWER_TRIES = 5
"""How often ``up`` asks the local service for its answer before giving up, a second apart."""
ANSWER_TIMEOUT_SECONDS = 5


class Action(enum.Enum):
    """What pulumi does to the stack."""

    PREVIEW = "preview"
    UP = "up"
    DESTROY = "destroy"
    REFRESH = "refresh"


@dataclass(frozen=True, kw_only=True)
class Request:
    """One run of an action on a stack, as asked for on the command line."""

    action: Action
    stack: str
    rollback: bool = True
    """Return the stack to its last verified digest when the update fails. Default True."""
    reviewed: Path | None = None
    """A review file saved by ``make review SAVE=<dir>`` that the update must match. Default none."""


class StackOpenError(Exception):
    """pulumi could not select or create the stack, or store its local password; nothing ran."""


class DeployRefusedError(Exception):
    """The request cannot run; nothing was changed."""


class ImageNotServedError(StackFileError):
    """The stack pins an image its registry does not serve; nothing ran (exit 2, as other bad settings)."""


class ImageCheckError(StackOpenError):
    """The registry of the stack's pinned image could not say whether it serves it; nothing ran (exit 1)."""


def run(
    request: Request,
    *,
    work_dir: Path = PROJECT_DIR,
    environ: Mapping[str, str] = os.environ,
    say: Callable[[str], None] = print,
) -> None:
    """Runs the request's action on its stack, with the stack's policy pack and this machine's stack copy.

    Raises:
        StackFileError: When the stack has no file or its file is broken; nothing ran.
        ImageNotServedError: When a preview or up would run an image its registry does not serve; nothing ran.
        ImageCheckError: When that registry cannot be asked (down, refusing the credentials); nothing ran.
        IngressObjectsMissingError: When a preview or up would name an IngressClass or TLS Secret the cluster does
            not have; nothing ran.
        DeployRefusedError: When ``reviewed`` is given to another action than ``up``, or the changes differ.
        StackOpenError: When pulumi cannot open the stack (its backend, its passphrase); nothing ran.
        StackLockedError: When a promotion or review holds the stack past the lock's wait.
        BackendLockedError: When another update (another machine's, or a killed run's) holds the backend's lock.
        DeployError: When the update failed (after the rollback, if one was due).
        CommandError: When pulumi failed otherwise.
        Interrupted: On a stop signal, once pulumi has exited.
    """
    if request.reviewed is not None and request.action is not Action.UP:
        raise DeployRefusedError(f"REVIEWED holds only an up to a review, got {request.action.value!r}")
    settings = read_known_settings(work_dir, request.stack)
    engine = Engine(work_dir)
    require_pulumi(engine.runner.command)  # before the copy, the lock or the backend is made
    config_file = stack_copy_file(work_dir, request.stack)
    with engine.runner.stopping_on_signals(), tempfile.TemporaryDirectory(prefix="reviewed-") as scratch:
        plan = None
        if request.reviewed is not None:
            plan = hold_to_review(engine, request.stack, request.reviewed, work_dir, say, into=Path(scratch))
        # A stop signal cancels pulumi, which is waited for; then the run ends there, and nothing is rolled back.
        cancelled = f"pulumi {request.action.value} was cancelled and has exited"
        engine.runner.stop_detail = f"{cancelled}; not rolling back" if request.action is Action.UP else cancelled
        color = "always" if sys.stdout.isatty() else "never"
        output = {"on_output": say, "on_error": to_stderr, "color": color, "config_file": str(config_file)}
        # The pack is the one beside this code, whichever project copy it deploys. The stack's lock keeps a
        # promotion from writing its file meanwhile (the review gate above takes it for its own preview); the
        # engine's reads of the stack without this machine's copy (select, its outputs, its history) write a
        # missing salt into the tracked file, which is put back.
        with (
            locked(work_dir, request.stack, purpose=f"make {request.action.value}"),
            restoring(work_dir, request.stack),
            policy_run(PROJECT_DIR, request.stack) as policy,
        ):
            # Written under the lock: a promotion that finished while this run waited for it has pinned a new
            # image in the tracked file, and the copy must carry it (the machine's secrets stay).
            write_stack_copy(work_dir, request.stack)
            try:
                stack = engine.stack(request.stack, create=True)
                _store_local_password(engine, stack, work_dir, settings, config_file, environ)
            except CommandError as error:
                message = f"pulumi could not open stack {request.stack!r}, so nothing ran:\n{error}"
                raise StackOpenError(message) from error
            if request.action in (Action.PREVIEW, Action.UP):
                check_pinned_image(engine, stack, work_dir, config_file, environ, say=to_stderr)
                check_stack_ingress(request.stack, work_dir)
            pack = {"policy_packs": [str(policy.pack)], "policy_pack_configs": [str(policy.config)]}
            try:
                if request.action is Action.PREVIEW:
                    stack.preview(diff=True, **output, **pack)  # type: ignore[arg-type]
                elif request.action is Action.DESTROY:
                    # The rules check resources an update would create or change; destroy makes none.
                    stack.destroy(**output)  # type: ignore[arg-type]
                elif request.action is Action.REFRESH:
                    stack.refresh(**output)  # type: ignore[arg-type]
            except CommandError as error:
                if (held := backend_lock_error(str(error), request.stack)) is not None:
                    raise held from error
                raise
            if request.action is Action.UP:
                from ops import evidence  # only an up signs or checks evidence (cryptography: 25 ms to import)

                registry_for = evidence_registry(engine, stack, work_dir, config_file, environ)
                log = EventLog()
                try:
                    # Refreshed first: against the state alone, an up sees no change where the cluster drifted
                    # (`make drift`), and would leave it so.
                    stack.up(on_event=log, refresh=True, plan=None if plan is None else str(plan), **output, **pack)  # type: ignore[arg-type]
                except CommandError as error:
                    # Another machine's update holds the shared backend's lock: nothing ran, nothing to roll back.
                    if (held := backend_lock_error(str(error), request.stack)) is not None:
                        raise held from error
                    failure = Failure(stack=request.stack, what=log.first_error())
                    doubt = evidence.doubts(registry_for, request.stack)
                    raise roll_back(
                        stack,
                        config=config_file,
                        failure=failure,
                        rollback=request.rollback,
                        policy=policy,
                        doubt=doubt,
                        say=say,
                    ) from error
                evidence.record_after_up(log.events, request.stack, registry_for, work_dir, to_stderr)
                outputs = log.stack_outputs()
                _show_answer(outputs.get("nodePort"), settings, work_dir, environ, say)
                _show_service_urls(outputs.get("serviceUrls"), say)


def check_pinned_image(
    engine: Engine,
    stack: auto.Stack,
    work_dir: Path,
    config_file: Path,
    environ: Mapping[str, str],
    say: Callable[[str], None],
) -> None:
    """A stack that pins an ``image`` runs only a digest its registry serves, asked as its pods will pull it.

    Read under the stack's lock, so that an image a promotion pinned meanwhile is the one asked about. A pod
    that cannot pull never starts, and pulumi would wait out the rollout's timeout to say so.

    A registry that wants credentials this machine does not have is said, not refused: nodes often pull with
    their own (an ECR node role, a containerd mirror), and the rollout then shows whether they can.

    Raises:
        ImageNotServedError: When the registry does not serve the digest.
        ImageCheckError: When the registry cannot say, or the stack's pull credentials cannot be read.
    """
    name = stack.name.split("/")[-1]
    image = parse_image_ref(str(read_known_settings(work_dir, name).get("image", "")))
    if not isinstance(image, ImageRef):
        return  # a stack that builds its image; a malformed one is the program's settings error
    # Only now: the registry client (oras, requests) costs a building stack's every preview 0.13 s to import.
    from ops.registry import CredentialsRequiredError, RegistryError
    from ops.stack_registry import stack_registry

    def pull_password() -> str:
        try:
            return engine.get_secret(stack, f"{PROJECT}:imagePullPassword", config_file=config_file)
        except CommandError as error:
            raise ImageCheckError(
                f"stack {name!r} sets imagePull, so imagePullPassword must be set too, got none; "
                f"set it with `make secret STACK={name} KEY=imagePullPassword <file`"
            ) from error

    try:
        served = stack_registry(image, work_dir, name, pull_password, environ).served_digest(
            image.repository, image.digest
        )
    except CredentialsRequiredError as error:
        say(f"warning: the image stack {name!r} pins was not checked: {error}")
        return
    except RegistryError as error:
        raise ImageCheckError(f"cannot check the image stack {name!r} pins, so nothing ran: {error}") from error
    if served != image.digest:
        raise ImageNotServedError(
            f"stack {name!r} pins image {image}, which its registry must serve, got nothing; nothing ran. "
            f"Give the stack an image that passed the stack before it: {promote_hint(name)}"
        )


def evidence_registry(
    engine: Engine, stack: auto.Stack, work_dir: Path, config_file: Path, environ: Mapping[str, str]
) -> Callable[[ImageRef], Any]:
    """An image's registry for the stack's verification evidence (ops/evidence.py), with the credentials the
    stack's pods pull with (ops/stack_registry.py says the order)."""
    from ops import evidence
    from ops.stack_registry import stack_registry

    name = stack.name.split("/")[-1]

    def pull_password() -> str:
        return engine.get_secret(stack, f"{PROJECT}:imagePullPassword", config_file=config_file)

    def registry_for(image: ImageRef) -> Any:
        try:
            return stack_registry(image, work_dir, name, pull_password, environ)
        except CommandError as error:
            raise evidence.EvidenceUnavailableError(f"stack {name!r}'s imagePullPassword cannot be read") from error

    return registry_for


def promote_hint(stack: str) -> str:
    """The promotion that gives a stack a real image: from the stack before it in the chain."""
    from ops.promotion import CHAIN

    if stack in CHAIN[1:]:
        return f"`make promote FROM={CHAIN[CHAIN.index(stack) - 1]} TO={stack}`"
    return f"`make promote FROM=<stack> TO={stack} ARGS=--out-of-chain`"


def _store_local_password(
    engine: Engine,
    stack: auto.Stack,
    work_dir: Path,
    settings: Mapping[str, object],
    config_file: Path,
    environ: Mapping[str, str],
) -> None:
    """A stack that pushes to the local registry gets its generated password, as a secret, when the copy lacks it."""
    if not local_password_to_set(work_dir, stack.name, settings, config_file, environ):
        return
    password_file = Path(environ["HELLO_REGISTRY_PASSWORD_FILE"])
    engine.set_secret(stack, "registryPassword", password_file.read_text().strip(), config_file=config_file)
    remember_password(work_dir, stack.name, config_file, password_file)


def hold_to_review(
    engine: Engine, stack: str, reviewed: Path, work_dir: Path, say: Callable[[str], None], *, into: Path
) -> Path:
    """Previews the stack again; nothing goes on unless its changes are those of the saved review. Returns the
    reviewed update plan, copied into ``into``, that the up must run with.

    Raises:
        ReviewGateError: When ``reviewed`` is not a review file of this stack, or its plan is missing or not the
            one reviewed; nothing was previewed.
        DeployRefusedError: When the changes differ, or the preview failed.
    """
    from ops.review_gate import check, load, take_plan

    fingerprinted = load(reviewed, stack)
    plan = take_plan(reviewed, fingerprinted, into)
    from ops.review_summary import ReviewError

    try:
        found = check(fingerprinted, work_dir, engine=engine)
    except ReviewError as error:
        raise DeployRefusedError(
            f"the deploy's own preview failed, so it cannot be held to the review: {error}"
        ) from error
    if found:
        lines = "\n".join(f"  - {line}" for line in found)
        raise DeployRefusedError(
            f"deploy of stack {stack!r} refused: its changes differ from the review in {reviewed}:\n{lines}\n"
            "Review the stack again, or deploy without REVIEWED."
        )
    say(f"Stack {stack!r}: the changes are those reviewed in {reviewed}; the up runs with its update plan.")
    return plan


def _show_answer(
    node_port: object,
    settings: Mapping[str, object],
    work_dir: Path,
    environ: Mapping[str, str],
    say: Callable[[str], None],
) -> None:
    """Where the service answers; on the local platform, its answer (only that node is this machine)."""
    if not platform_uses(settings, Platform.from_environment(environ), work_dir):
        say(f"The service listens on node port {node_port} of every node of the stack's cluster.")
        return
    url = f"http://127.0.0.1:{node_port}/"
    say(f"The service answers at {url}:")
    for attempt in range(ANSWER_TRIES):
        try:
            # Straight to loopback: a proxy from the environment has no business with this machine's node.
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url, timeout=ANSWER_TIMEOUT_SECONDS) as response:
                say(response.read(4096).decode(errors="replace").rstrip())
                return
        except (urllib.error.URLError, OSError) as error:
            if attempt == ANSWER_TRIES - 1:
                raise DeployError(f"the stack deployed, but {url} did not answer: {error}") from error
            time.sleep(1)


def _show_service_urls(urls: object, say: Callable[[str], None]) -> None:
    """Where each service answers through the Ingress (the ``serviceUrls`` output), when the stack has one."""
    if not isinstance(urls, dict) or not urls:
        return
    say("Through the Ingress:")
    for name, url in urls.items():
        say(f"  {name}: {url}")


SETTING_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]{0,99}")
"""A top-level setting's name, such as ``imagePullPassword``."""


def store_secret(stack_name: str, key: str, value: str | None, *, work_dir: Path = PROJECT_DIR) -> None:
    """Sets (or, with ``value`` None, removes) a secret setting in this machine's copy of the stack file.

    The tracked file is never written: a secret encrypted with this machine's passphrase belongs to
    this machine. The value travels on pulumi's standard input, never on a command line.

    Raises:
        StackFileError: When the stack has no file, its file is broken, or ``key`` is not a setting's name.
        CommandError: When pulumi fails.
    """
    if not SETTING_KEY.fullmatch(key):
        raise StackFileError(f"KEY must be a setting's name such as imagePullPassword, got {key!r}")
    read_known_settings(work_dir, stack_name)
    engine = Engine(work_dir)
    require_pulumi(engine.runner.command)  # before the copy, the lock or the backend is made
    config_file = write_stack_copy(work_dir, stack_name)
    with engine.runner.stopping_on_signals(), locked(work_dir, stack_name, purpose="make secret"):
        stack = engine.stack(stack_name, create=True)
        if value is None:
            engine.remove_setting(stack, key, config_file=config_file)
        else:
            engine.set_secret(stack, key, value, config_file=config_file)
