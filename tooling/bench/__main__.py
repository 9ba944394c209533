"""python -m tooling.bench [--quick | --tiny] [--runs N] [--out DIR] [--commit REF]: time each step a user waits for."""

from __future__ import annotations

import argparse
import enum
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tooling.bench.project import BenchError, Project
from tooling.bench.report import plot, table, write_json
from tooling.bench.steps import Bench, Plan

DEFAULT_RUNS = 5
SIZES = (1, 10, 50, 100)
QUICK_SIZES = (1, 10)
"""The smallest sizes that still fix a slope."""
TINY_SIZES = (1, 2)
"""The smallest sizes that still fix a line: a tiny run checks the bench, not the slope."""
TINY_MOCK_TESTS = ("tests/unit/test_stacks.py",)
"""A file of the mock suite that fails unless the step hands the suite the project's own stack files."""
DEFAULT_OUT = Path(".state/bench")


class Mode(enum.Enum):
    """How much of the bench runs: all of it, a quick look, or a tiny run that checks the bench itself."""

    FULL = "full"
    QUICK = "quick"
    TINY = "tiny"


def plan(mode: Mode, runs: int) -> Plan:
    """What ``mode`` runs; ``runs`` counts only for a full bench."""
    if mode is Mode.QUICK:
        return Plan(runs=1, sizes=QUICK_SIZES)
    if mode is Mode.TINY:
        return Plan(runs=1, sizes=TINY_SIZES, warm_ups=False, mock_tests=TINY_MOCK_TESTS)
    return Plan(runs=runs, sizes=SIZES)


def _runs(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 50:
        raise argparse.ArgumentTypeError(f"--runs must be a whole number from 1 to 50, got {text!r}")
    return int(text)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, CPU, the CLI's version, and the load while they were taken."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    version = subprocess.run(["pulumi", "version"], capture_output=True, text=True, check=False).stdout.strip()
    return {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "pulumi": version}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooling.bench", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", dest="mode", action="store_const", const=Mode.QUICK, help="one run per step, sizes 1 and 10"
    )
    mode.add_argument(
        "--tiny",
        dest="mode",
        action="store_const",
        const=Mode.TINY,
        help="one run per step, sizes 1 and 2, no untimed warm-ups, one file of the mock suite: checks that every "
        "step runs and is reported (what `make test` runs); its times are not figures",
    )
    parser.set_defaults(mode=Mode.FULL)
    parser.add_argument("--runs", type=_runs, default=DEFAULT_RUNS, help=f"runs per step (default {DEFAULT_RUNS})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the outputs (default {DEFAULT_OUT})")
    parser.add_argument(
        "--commit", metavar="REF", help="time this commit of the project instead of its working tree (git archive)"
    )
    args = parser.parse_args(argv)
    # Started in the background (`make bench &`), a process inherits SIGINT ignored, and so would every
    # pulumi plugin: the CLI then waits 5 s for each one to stop on SIGINT, and every step looks 5 s slower.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Stopped with SIGTERM, the bench still destroys what it deployed (the `finally` below runs).
    signal.signal(signal.SIGTERM, lambda number, _: sys.exit(128 + number))
    chosen = plan(args.mode, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    details = {**machine(), "runs": chosen.runs, "load_before": _load()}
    try:
        project = Project.create(commit=args.commit)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        results = Bench(project, chosen).all()
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        project.remove()
    details.update(
        load_after=_load(),
        minutes=round((time.monotonic() - started) / 60, 1),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    print(table(results))
    json_path = write_json(results, details, args.out)
    print(f"\n{json_path} written")
    if results.scaling is not None:
        caption = f"{details['cores']} cores, {details['cpu']}, pulumi {details['pulumi']}, {details['date']}"
        print(f"{plot(results.scaling, args.out, caption)} written")
    print(f"{chosen.runs} run(s) a step; load {details['load_before']} before, {details['load_after']} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
