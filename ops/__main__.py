"""Drive this project's stacks from one command line: `python -m ops <command> --help` (`make` calls it).

Exit codes: 0 done; 1 the operation failed (pulumi, a check, a deployment); 2 bad input, nothing ran;
3 an up refused because its changes differ from the review it is held to; 4 drift: the cluster differs
from the stack's state; 128+N stopped by signal N.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ops import PROJECT_DIR
from ops.locking import LOCK_WAIT_SECONDS, WAIT_EXPECTATION, wait_in_bounds
from settings.stack_files import StackFileError

if TYPE_CHECKING:
    from ops.promotion import Request

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REVIEW_DIFFERS = 3
EXIT_DRIFT = 4


def project_dir() -> Path:
    """The project the commands work on: ``HELLO_PROJECT_DIR`` (a throwaway copy, in tests), else this one."""
    return Path(os.environ.get("HELLO_PROJECT_DIR") or PROJECT_DIR)


def wait_seconds(text: str) -> float:
    """``--wait``'s value: seconds from 0 to MAX_WAIT_SECONDS; NaN, infinities and negatives would wait forever."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not wait_in_bounds(seconds):
        raise argparse.ArgumentTypeError(f"--wait must be {WAIT_EXPECTATION}, got {text!r}")
    return seconds


def _error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


def _stack_action(args: argparse.Namespace) -> int:
    from ops.deploy import Action, DeployRefusedError, Request, StackOpenError, run
    from ops.engine import CommandError, Interrupted
    from ops.locking import StackLockedError
    from ops.review_gate import ReviewGateError
    from ops.rollback import DeployError

    request = Request(
        action=Action(args.command),
        stack=args.stack,
        rollback=getattr(args, "rollback", True),
        reviewed=getattr(args, "reviewed", None),
    )
    try:
        run(request, work_dir=project_dir())
    except (StackFileError, ReviewGateError) as error:
        _error(error)
        return EXIT_BAD_INPUT
    except (StackLockedError, StackOpenError) as error:
        _error(error)
        return EXIT_FAILED
    except DeployRefusedError as error:
        _error(error)
        return EXIT_REVIEW_DIFFERS
    except DeployError as error:
        _error(error)
        return EXIT_FAILED
    except CommandError:
        _error(f"pulumi {args.command} of stack {args.stack!r} failed (its output is above)")
        return EXIT_FAILED
    except Interrupted as stopped:
        _error(stopped)
        return stopped.exit_code
    return 0


def _secret(args: argparse.Namespace) -> int:
    from ops.deploy import store_secret
    from ops.engine import CommandError
    from ops.locking import StackLockedError

    value = None if args.remove else sys.stdin.read().removesuffix("\n")
    if value == "":
        _error(f"the value of {args.key} must come on standard input, got nothing")
        return EXIT_BAD_INPUT
    try:
        store_secret(args.stack, args.key, value, work_dir=project_dir())
    except StackFileError as error:
        _error(error)
        return EXIT_BAD_INPUT
    except StackLockedError as error:
        _error(error)
        return EXIT_FAILED
    except CommandError as error:
        _error(f"pulumi could not {'remove' if args.remove else 'set'} {args.key}:\n{error}")
        return EXIT_FAILED
    return 0


def _drift(args: argparse.Namespace) -> int:
    from ops.drift import DriftCheckError, find_drift, summarize
    from ops.engine import Interrupted
    from ops.locking import StackLockedError
    from settings.stack_files import read_known_settings

    try:
        read_known_settings(project_dir(), args.stack)
        found = find_drift(args.stack, project_dir())
    except StackFileError as error:
        _error(error)
        return EXIT_BAD_INPUT
    except (DriftCheckError, StackLockedError) as error:
        _error(error)
        return EXIT_FAILED
    except Interrupted as stopped:
        _error(stopped)
        return stopped.exit_code
    print(summarize(args.stack, found))
    return EXIT_DRIFT if found else 0


def _needs_platform(args: argparse.Namespace) -> int:
    from settings.local_platform import uses_local_platform

    try:
        uses = uses_local_platform(project_dir(), args.stack)
    except StackFileError as error:
        _error(error)
        return EXIT_BAD_INPUT
    # The answer on stdout for make, the reason on stderr for people.
    print("yes" if uses else "no")
    reason = "; ".join(uses) if uses else "it names another cluster and registry"
    print(f"stack {args.stack} {'needs' if uses else 'does not need'} the local platform: {reason}", file=sys.stderr)
    return 0


def _review(args: argparse.Namespace) -> int:
    from ops.review_gate import ReviewGateError, fingerprint, plan_file, review_file, save
    from ops.review_summary import ReviewError, app_changes, code, preview_stack, summarize
    from settings.stack_files import stack_names

    work_dir = project_dir()
    if args.save is not None and not args.save.is_dir():
        _error(f"SAVE must be an existing folder, got {str(args.save)!r}")
        return EXIT_BAD_INPUT
    known = stack_names(work_dir)
    # A stack without a file would be created by the preview and left behind: refuse it up front.
    if unknown := [stack for stack in args.stacks if stack not in known]:
        _error(f"stacks must have a Pulumi.<stack>.yaml ({', '.join(known)}), got {', '.join(unknown)}")
        return EXIT_BAD_INPUT
    print("## Pulumi preview\n")
    failed = False
    for stack in args.stacks or known:
        plan = None if args.save is None else plan_file(args.save, stack)
        try:
            preview, events = preview_stack(stack, work_dir, plan=plan)
        except ReviewError as error:
            print(f"### Stack {code(stack)}\n\n⛔ preview failed; see the job log.\n")
            _error(error)
            failed = True
            continue
        summary = summarize(stack, preview, events, app_changes(work_dir))
        print(summary)
        if args.save is not None:
            try:
                reviewed = fingerprint(stack, preview, work_dir, plan=plan)
            except ReviewGateError as error:
                _error(error)
                failed = True
                continue
            save(review_file(args.save, stack), reviewed, summary)
            print(f"Saved as {code(review_file(args.save, stack).name)} (fingerprint `{reviewed.digest()[:12]}`).\n")
    return EXIT_FAILED if failed else 0


def promotion_request(args: argparse.Namespace) -> Request:
    """The promotion the ``promote`` command's arguments ask for."""
    from ops.promotion import Request

    return Request(
        source=args.source,
        target=args.target,
        digest=args.digest,
        out_of_chain=args.out_of_chain,
        yes=args.yes,
        wait_seconds=args.wait_seconds,
        skip_verification=args.skip_verification,
        rollback=args.rollback,
        save_review=args.save_review,
        reviewed=args.reviewed,
    )


def _promote(args: argparse.Namespace) -> int:
    from ops.engine import CommandError, Interrupted
    from ops.locking import StackLockedError
    from ops.promotion import PromotionError, ask, promote
    from ops.review_gate import ReviewGateError
    from ops.rollback import DeployError

    if args.save_review is not None and not args.save_review.is_dir():
        _error(f"--save-review must be an existing folder, got {str(args.save_review)!r}")
        return EXIT_BAD_INPUT
    try:
        promote(promotion_request(args), work_dir=project_dir(), confirm=ask)
    except Interrupted as stopped:
        _error(stopped)
        return stopped.exit_code
    except ReviewGateError as error:
        _error(error)
        return EXIT_BAD_INPUT
    except (PromotionError, StackLockedError, StackFileError) as error:
        _error(error)
        return EXIT_FAILED
    except DeployError as error:
        _error(f"{error}; the target's settings were restored")
        return EXIT_FAILED
    except CommandError as error:
        _error(f"pulumi failed; the target's settings were restored\n{error}")
        return EXIT_FAILED
    return 0


def _render(args: argparse.Namespace) -> int:
    from ops.render import RenderError, render

    try:
        written = render(args.stack, args.out, project_dir(), registry_password=os.environ.get("REGISTRY_PASSWORD"))
    except (RenderError, StackFileError) as error:
        _error(error)
        return EXIT_BAD_INPUT
    print(f"{len(written)} manifests in {args.out}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per operation, each with its own ``--help``."""
    from ops.rollback import NO_ROLLBACK

    top = argparse.ArgumentParser(prog="python -m ops", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    command("preview", _stack_action, "preview STACK's changes, with its policy pack").add_argument("stack")
    up = command("up", _stack_action, "deploy STACK; a failed rollout is rolled back to its last verified digest")
    up.add_argument("stack")
    up.add_argument(NO_ROLLBACK, dest="rollback", action="store_false", help="leave a failed update as it is")
    up.add_argument("--reviewed", type=Path, metavar="FILE", help="apply only the changes this saved review shows")
    command("destroy", _stack_action, "destroy STACK's resources").add_argument("stack")
    command("refresh", _stack_action, "refresh STACK's state from the cluster").add_argument("stack")
    command(
        "drift",
        _drift,
        "say which resources and fields of STACK's cluster differ from its state (exit 4); changes nothing",
    ).add_argument("stack")
    secret = command(
        "secret", _secret, "set a secret setting of STACK on this machine, its value read from standard input"
    )
    secret.add_argument("stack")
    secret.add_argument("key", help="the setting, such as imagePullPassword")
    secret.add_argument("--remove", action="store_true", help="remove the setting instead")
    needs = command("needs-platform", _needs_platform, "say yes or no: does STACK use the local platform")
    needs.add_argument("stack")

    review = command("review", _review, "a Markdown summary of a real preview of each stack, for a pull request")
    review.add_argument("stacks", nargs="*", help="stacks to preview (default: every Pulumi.<stack>.yaml)")
    review.add_argument("--save", type=Path, metavar="DIR", help="also write DIR/<stack>.review.json for deploys")

    promote = command(
        "promote",
        _promote,
        "promote the image a stack runs, pinned by digest, to the next stack (dev -> staging -> prod)",
    )
    promote.add_argument("--from", dest="source", required=True, help="stack whose deployed image is promoted")
    promote.add_argument("--to", dest="target", required=True, help="stack that receives it")
    promote.add_argument(
        "--digest",
        help="roll the target to this earlier sha256 digest of the same repository (it needs the source's evidence)",
    )
    promote.add_argument("--yes", action="store_true", help="deploy after the preview without asking")
    promote.add_argument(
        "--out-of-chain", action="store_true", help="allow a target that is not the next stack in the chain"
    )
    promote.add_argument(
        "--skip-verification",
        metavar="REASON",
        help="promote without signed evidence that the image passed the source's verification; the reason is "
        "recorded in the target's promotion setting (make promote ... REASON=...)",
    )
    reviewing = promote.add_mutually_exclusive_group()
    reviewing.add_argument(
        "--save-review",
        type=Path,
        metavar="DIR",
        help="stop after the preview and save it as DIR/<target>.review.json, for --reviewed; nothing is deployed",
    )
    reviewing.add_argument(
        "--reviewed",
        type=Path,
        metavar="FILE",
        help="deploy only if the preview shows exactly the changes of this review saved by --save-review",
    )
    promote.add_argument(
        "--wait",
        dest="wait_seconds",
        type=wait_seconds,
        default=LOCK_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for another promotion or review of the target (default {LOCK_WAIT_SECONDS:g})",
    )
    promote.add_argument(
        NO_ROLLBACK,
        dest="rollback",
        action="store_false",
        help="leave a failed deployment as it is instead of returning the target to its last verified digest",
    )

    render = command("render", _render, "write STACK's manifests to OUT for GitOps review (no cluster is touched)")
    render.add_argument("stack", help="stack whose manifests are rendered")
    render.add_argument(
        "out", type=Path, help="folder to write them to: new, empty, or written by an earlier render (replaced)"
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except Exception as error:
        from ops.engine import PulumiMissingError  # loaded only once something failed: needs-platform stays light

        if not isinstance(error, PulumiMissingError):
            raise
        _error(error)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
