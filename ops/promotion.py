"""Promote the image a stack runs, pinned by digest, to the next stack: what was tested is what ships.

Run as `make promote FROM=dev TO=staging` (``python -m ops promote --help``).

The target stack is locked for the whole promotion, previewed and deployed with the policy pack at
its own enforcement, and its stack file is put back byte for byte unless the deployment succeeds,
also on SIGINT, SIGTERM or SIGHUP (after pulumi has stopped).
"""

from __future__ import annotations

import datetime
import select
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

from image_ref import DIGEST, ImageRef, parse_image_ref
from ops import PROJECT_DIR, evidence, to_stderr
from ops.engine import CommandError, Engine, EventLog, Interrupted, require_pulumi
from ops.evidence import git_commit
from ops.image_names import ImageName, parse_image_name
from ops.ingress_objects import check_stack_ingress
from ops.locking import LOCK_WAIT_SECONDS, backend_lock_error, locked
from ops.policy_config import policy_run
from ops.registry import Registry, RegistryError, same_registry
from ops.review_gate import differences, fingerprint, plan_file, review_file, save, take_plan
from ops.review_gate import load as load_review
from ops.review_summary import policy_events, preview_document, summarize
from ops.rollback import Failure, roll_back
from ops.stack_copy import write_stack_copy
from ops.stack_registry import pull_user, stack_registry
from settings import PROJECT
from settings.stack_files import STACK_NAME, plain_config, restoring, set_settings, stack_file, stack_names

CHAIN = ("dev", "staging", "prod")
SIGNAL_CHECK_SECONDS = 0.2
"""Longest blocking wait at the prompt: each turn lets a stop signal's handler run."""


class PromotionError(Exception):
    """The promotion cannot go ahead; nothing was changed."""


@dataclass(frozen=True, kw_only=True)
class Request:
    """One promotion, as asked for on the command line."""

    source: str
    target: str
    digest: str | None = None
    """Roll the target to this earlier digest of the source's repository instead; it needs the source's evidence."""
    out_of_chain: bool = False
    yes: bool = False
    wait_seconds: float = LOCK_WAIT_SECONDS
    """How long to wait for another promotion or review of the target to finish. Default 30."""
    skip_verification: str | None = None
    """Why an image without evidence that it passed the source's verification is promoted anyway; recorded."""
    rollback: bool = True
    """Return the target to its last verified digest when the deployment fails. Default True."""
    save_review: Path | None = None
    """Stop after the preview and save it in this folder as ``<target>.review.json``, for ``reviewed``. Default: no."""
    reviewed: Path | None = None
    """Deploy only when the preview shows exactly the changes of this saved review (``save_review``). Default: no."""


@dataclass(frozen=True)
class StackName:
    """A stack as given on the command line, and the short name its ``Pulumi.<name>.yaml`` carries."""

    given: str
    """What pulumi is told: ``staging`` or ``org/hello-world/staging``."""
    name: str
    """The stack's own name: ``staging``."""


def stack_name(given: str, flag: str) -> StackName:
    """A stack name, alone or fully qualified as ``org/hello-world/<stack>`` (or ``org/<stack>``).

    Raises:
        PromotionError: When it names another project or is not a stack name.
    """
    parts = given.split("/")
    if len(parts) == 3 and all(parts) and parts[1] != PROJECT:
        raise PromotionError(f"{flag} must name a stack of project {PROJECT!r} (org/{PROJECT}/<stack>), got {given!r}")
    if len(parts) > 3 or not all(STACK_NAME.fullmatch(part) and not part.startswith(".") for part in parts):
        raise PromotionError(f"{flag} must be a stack name or org/{PROJECT}/<stack>, got {given!r}")
    return StackName(given, parts[-1])


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


def check_last_update(source: str, history: list[auto.UpdateSummary]) -> None:
    """A stack's outputs describe its last successful update: after a failed one they no longer say what runs.

    Raises:
        PromotionError: When the source's last update did not succeed.
    """
    if history and history[0].result != "succeeded":
        last = history[0]
        raise PromotionError(
            f"stack {source!r}'s last update must have succeeded, got {last.result} ({last.kind} started "
            f"{last.start_time:%Y-%m-%d %H:%M:%S}); what it runs may not be what its outputs say: deploy it "
            'until it succeeds, or pass --skip-verification "<reason>" to promote its outputs\' image anyway'
        )


def check_evidence(source: str, image: ImageRef, registry: Registry, say: Callable[[str], None]) -> None:
    """Only what passed the source stack's in-cluster verification moves on, as its signed evidence shows
    (ops/evidence.py); the source's state outputs are no evidence, since whoever can write the state can set them.

    Raises:
        PromotionError: When there is no trusted evidence that ``image`` passed verification in ``source``.
    """
    try:
        found = evidence.require(registry, image, source)
    except evidence.EvidenceError as error:
        raise PromotionError(
            f'{error}; or pass --skip-verification "<reason>" (make promote ... REASON="<reason>") to promote '
            "it anyway: the reason is recorded; nothing was promoted"
        ) from error
    say(
        f"Evidence: {image.digest} passed verification in stack {source!r} at {found.at} (commit {found.commit}), "
        f"signed by the trusted key ({found.tag})"
    )


def check_served(image: ImageRef, registry: Registry, copied_from: ImageRef | None = None) -> None:
    """The registry must still serve the exact digest, or nothing is promoted.

    Args:
        image: The reference the target will pull.
        registry: The target's registry, with the credentials the target pulls with.
        copied_from: Where the image is, when that is another registry than the target's.

    Raises:
        PromotionError: When the digest is gone or the registry cannot tell.
    """
    try:
        served = registry.served_digest(image.repository, image.digest)
    except RegistryError as error:
        raise PromotionError(f"cannot check {image}: {error}") from error
    if served == image.digest:
        return
    got = "nothing" if served is None else served
    if copied_from is None:
        raise PromotionError(
            f"the registry must still serve {image.digest} for {image.registry}/{image.repository}, got "
            f"{got}; nothing was promoted"
        )
    # Copying manifests and blobs between registries is what crane and skopeo do well, with each
    # registry's own login; promotion only pins what the target's registry already serves.
    destination = f"{image.registry}/{image.repository}"
    raise PromotionError(
        f"the target pulls from {destination}, which must serve {image.digest}, got {got}: the image is in "
        f"{copied_from.registry}/{copied_from.repository}, and promotion does not copy between registries. "
        f"Copy it first (the digest stays the same), then promote again:\n"
        f"  crane copy {copied_from} {destination}:promoted\n"
        f"  or: skopeo copy --all --preserve-digests docker://{copied_from} docker://{destination}:promoted\n"
        "nothing was promoted"
    )


def pinned_for(image: ImageRef, pulls_from: ImageName | ImageRef | None) -> ImageRef:
    """What the target is pinned to: the promoted digest, in the registry and repository the target pulls from.

    ``pulls_from`` is the image a target with an image pull secret names (its credentials are for that
    registry); a target without one takes ``image`` as it is.
    """
    if pulls_from is None or same_registry(pulls_from.registry, image.registry):
        return image
    return ImageRef(registry=pulls_from.registry, repository=pulls_from.repository, digest=image.digest)


def pulls_from(work_dir: Path, stack: str) -> ImageName | None:
    """The image a stack with an image pull secret names, pinned or not: its credentials are for that image's registry.

    Raises:
        PromotionError: When the stack has an image pull secret but its ``image`` names no registry (a first
            promotion, or a malformed value): its credentials would go to whatever registry the source uses.
    """
    if pull_user(work_dir, stack) is None:
        return None
    given = plain_config(work_dir, stack).get(f"{PROJECT}:image")
    parsed = parse_image_name(str(given)) if isinstance(given, str) and given else "no image"
    if isinstance(parsed, str):
        raise PromotionError(
            f"stack {stack!r} sets imagePull, so its image must name the registry those credentials are for "
            f"(<registry>/<repository>[:<tag>|@sha256:<digest>]), got {given!r} ({parsed}); set {PROJECT}:image in "
            f"Pulumi.{stack}.yaml to the repository it pulls from; its credentials went nowhere"
        )
    return parsed


def target_registry(image: ImageRef, work_dir: Path, target: auto.Stack, engine: Engine) -> Registry:
    """The target's registry, asked with the credentials its pods pull with (ops/stack_registry.py says the order).

    Raises:
        PromotionError: When the target's pull settings are incomplete, the environment's address is malformed
            or the Docker config is broken.
    """
    name = target.name.split("/")[-1]

    def pull_password() -> str:
        # Read through the engine, which decrypts it, from this machine's copy of the stack file, where the
        # secrets set on this machine live; it travels on a pipe, never on a command line.
        config_file = write_stack_copy(work_dir, name)
        try:
            return engine.get_secret(target, f"{PROJECT}:imagePullPassword", config_file=config_file)
        except CommandError as error:
            raise PromotionError(
                f"stack {target.name!r} sets imagePull, so imagePullPassword must be set too, got none; "
                "set it with `pulumi config set --secret imagePullPassword`"
            ) from error

    try:
        return stack_registry(image, work_dir, name, pull_password)
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

    The target is locked for the whole promotion; its preview and its deployment run the policy
    pack with the target's enforcement (every rule mandatory for a stack without its own config).
    Must run in the main thread: it handles SIGINT, SIGTERM and SIGHUP.

    With ``request.save_review``, it stops after the preview and saves it; with ``request.reviewed``, it deploys
    only what that saved preview showed (a review in one job, its approval, then the deploy in another).

    Returns:
        True when the target was deployed, False when there was nothing to do or only a review was saved.

    Raises:
        PromotionError: When a check fails, the preview differs from ``request.reviewed`` or the deployment is
            declined; the target's settings are left as they were.
        ReviewGateError: When ``request.reviewed`` is not a review of the target; nothing ran.
        IngressObjectsMissingError: When the target's Ingress names an IngressClass or TLS Secret its cluster does
            not have; nothing ran.
        StackLockedError: When another promotion or review holds the target past ``request.wait_seconds``, or
            another update holds the target's lock in a shared backend (BackendLockedError: nothing is rolled back).
        Interrupted: On a stop signal, once pulumi has exited; the target's settings are put back
            unless the deployment had already succeeded.
        DeployError: When the deployment failed; the target was rolled back to its last verified digest
            (unless ``request.rollback`` is False or there is none) and its settings were put back.
        CommandError: When pulumi fails (a mandatory policy, an error); the settings are put back.
    """
    source_stack = stack_name(request.source, "--from")
    target_stack = stack_name(request.target, "--to")
    if source_stack.name not in CHAIN and not request.out_of_chain:
        raise PromotionError(f"--from must be one of {', '.join(CHAIN)}, got {request.source!r}")
    check_chain(source_stack.name, target_stack.name, request.out_of_chain)
    known = stack_names(work_dir)
    if target_stack.name not in known:
        raise PromotionError(
            f"--to must be a stack with a {stack_file(work_dir, target_stack.name).name} in {work_dir} "
            f"({', '.join(known)}), got {request.target!r}"
        )
    reviewed = None if request.reviewed is None else load_review(request.reviewed, target_stack.name)
    engine = Engine(work_dir)
    require_pulumi(engine.runner.command)  # before the lock or the backend is made
    runner = engine.runner
    runner.stop_detail = "nothing was deployed; the target's settings are as they were"
    purpose = f"promotion {source_stack.name} -> {target_stack.name}"
    with (
        runner.stopping_on_signals(),
        locked(work_dir, target_stack.name, purpose=purpose, wait_seconds=request.wait_seconds),
        tempfile.TemporaryDirectory(prefix="reviewed-") as scratch,
    ):
        # The reviewed update plan, checked once and used as that copy: the engine refuses what it does not hold.
        plan = (
            None
            if reviewed is None or request.reviewed is None
            else take_plan(request.reviewed, reviewed, Path(scratch))
        )
        source = engine.stack(source_stack.given)
        outputs = source.outputs()
        if "imageRef" not in outputs:
            raise PromotionError(f"stack {request.source!r} must have been deployed (an imageRef output), got none")
        image = candidate(str(outputs["imageRef"].value), request.digest)
        if request.skip_verification is None:
            if request.digest is None:
                check_last_update(request.source, source.history(page_size=1))
            # The evidence is beside the image in the source's repository, asked as the source's pods pull.
            check_evidence(source_stack.name, image, target_registry(image, work_dir, source, engine), say)

        # A first promotion makes the target, as a first `make up` makes its stack (a new, shared backend has none).
        target = engine.stack(target_stack.given, create=True)
        # The digest is checked where, and as, the target will pull it.
        source_image, image = image, pinned_for(image, pulls_from(work_dir, target_stack.name))
        copied_from = source_image if image != source_image else None
        registry = target_registry(image, work_dir, target, engine)
        check_served(image, registry, copied_from)
        # The target's Ingress is checked as a preview or up of it checks it: before anything is pinned.
        check_stack_ingress(target_stack.name, work_dir)
        deployed = target.outputs().get("imageRef")
        if deployed is not None and deployed.value == str(image):
            say(f"{request.target} already runs {image}; nothing to promote")
            return False

        with (
            policy_run(PROJECT_DIR, target_stack.name) as policy,
            runner.interruptible(False),  # putting the stack file back is never cut short
            restoring(work_dir, target_stack.name, unless_success=True),
            runner.interruptible(),
        ):
            record = provenance(source_stack.name, image, git_commit(work_dir))
            if request.skip_verification is not None:
                record["skippedVerification"] = request.skip_verification
            pinned = {"image": str(image), "promotion": record}
            # The preview reads this machine's copy with the image pinned; the tracked file, which every other
            # reader trusts (render, git, CI), records it only once the deployment is confirmed.
            config_file = str(write_stack_copy(work_dir, target_stack.name, pinned))
            packs, configs = [str(policy.pack)], [str(policy.config)]
            say(f"Promoting {image} from {request.source} to {request.target}; preview with the policy pack:")
            previewed = EventLog()
            saved_plan = None if request.save_review is None else plan_file(request.save_review, target_stack.name)
            target.preview(
                diff=True,
                on_output=say,
                on_event=previewed,
                color="never",
                policy_packs=packs,
                policy_pack_configs=configs,
                config_file=config_file,
                plan=None if saved_plan is None else str(saved_plan),
            )
            if request.save_review is not None:
                document = preview_document(previewed.events)
                saved = review_file(request.save_review, target_stack.name)
                summary = summarize(target_stack.name, document, policy_events(previewed.events))
                save(saved, fingerprint(target_stack.name, document, work_dir, plan=saved_plan), summary)
                say(f"Saved the review of promoting {image} to {request.target} as {saved}; nothing was deployed")
                return False
            if reviewed is not None:
                now = fingerprint(target_stack.name, preview_document(previewed.events), work_dir)
                if found := differences(reviewed, now):
                    raise PromotionError(
                        f"the preview of {request.target} must show the changes reviewed in {request.reviewed}, got "
                        f"other changes: {'; '.join(found)}; nothing was deployed"
                    )
                say(f"The changes are those reviewed in {request.reviewed}.")
            if not (request.yes or confirm(f"Deploy {image} to {request.target}?")):
                raise PromotionError("declined; nothing was deployed")
            set_settings(work_dir, target_stack.name, pinned)
            with runner.interruptible(False):
                log = EventLog()
                try:
                    _deploy(target, engine, say, packs, configs, config_file, log, plan)
                    evidence.record_after_up(
                        log.events, target_stack.name, lambda _: registry, work_dir, to_stderr, expected=image
                    )
                except CommandError as error:
                    # Another machine's update holds the shared backend's lock: nothing ran, nothing to roll back.
                    if (held := backend_lock_error(str(error), target_stack.name)) is not None:
                        raise held from error
                    # The target's settings are put back below: the failed change does not stay pending.
                    failure = Failure(stack=target_stack.name, what=log.first_error(), pending=False)
                    raise roll_back(
                        target,
                        config=Path(config_file),
                        failure=failure,
                        rollback=request.rollback,
                        policy=policy,
                        doubt=evidence.doubts(lambda _: registry, target_stack.name),
                        say=say,
                    ) from error
        if runner.interrupted is not None:
            raise Interrupted(
                runner.interrupted,
                f"pulumi up had completed: {request.target} runs {image} and its stack file records it",
            )
    return True


def _deploy(
    target: auto.Stack,
    engine: Engine,
    say: Callable[[str], None],
    packs: list[str],
    configs: list[str],
    config_file: str,
    log: EventLog,
    plan: Path | None = None,
) -> None:
    """``pulumi up`` (held to ``plan``, the reviewed update plan, if given), which a signal cancels; a failure
    after a signal is reported as the interruption.

    Raises:
        Interrupted: When pulumi up failed after a stop signal.
        CommandError: When pulumi up failed.
    """
    try:
        target.up(
            on_output=say,
            on_event=log,
            color="never",
            policy_packs=packs,
            policy_pack_configs=configs,
            config_file=config_file,
            plan=None if plan is None else str(plan),
        )
    except CommandError as error:
        if engine.runner.deployed:
            return  # only reading the outputs after a successful `pulumi up` failed: the target is deployed
        if engine.runner.interrupted is not None:
            raise Interrupted(
                engine.runner.interrupted,
                "pulumi up was cancelled and has exited; the target's settings were put back, "
                "and what pulumi had changed before it stopped stays changed (preview the target to see it)",
            ) from error
        raise


def provenance(source: str, image: ImageRef, commit: str) -> dict[str, str]:
    """Where a promoted image came from, recorded in the target's ``promotion`` setting."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    return {"from": source, "digest": image.digest, "at": now, "commit": commit}


def ask(question: str) -> bool:
    """Asks on the terminal; stop signals are handled while it waits."""
    if not sys.stdin.isatty():
        raise PromotionError("not deploying without a terminal to confirm on; pass --yes to deploy")
    print(f"{question} [y/N] ", end="", flush=True)
    while not select.select([sys.stdin], [], [], SIGNAL_CHECK_SECONDS)[0]:
        pass  # each turn lets a signal handler run, even one whose signal landed just before the wait
    return sys.stdin.readline().strip().lower() in ("y", "yes")
