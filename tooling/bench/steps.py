"""The steps a user waits for, each timed on the bench's copy of the project, beside Pulumi's floor."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ops.policy_config import policy_run
from settings import DEFAULT_BUILD_CONTEXT
from tooling.bench.phases import EventTail, phases
from tooling.bench.project import BenchError, Project
from tooling.bench.stats import Line, Summary, least_squares, paired_ratios, summarize

SERVED_TIMEOUT_SECONDS = 120.0
SERVED_POLL_SECONDS = 0.2
MESSAGE_LINE = "const MESSAGE = process.env.MESSAGE || 'Hello World';"
"""The line of app/server.js that the edit step changes; its text keeps 'Hello World', so verification passes."""
PREVIEW_POLICY_GOAL = 1.5
"""No-op preview of dev with the pack, at most this many times the empty program's preview with the same pack."""
UP_GOAL = 1.8
"""No-op up of dev as `make up` runs it, at most this many times the empty program's up (with the same pack)."""
SLOPE_GOAL_SECONDS = 0.040
"""Preview time added by each WebService component, at most."""
EDIT_GOAL_SECONDS = 10.0
"""After a one-line edit of app/, the new text served, and `make up` back, each within this."""
UNIT_GOAL_SECONDS = 30.0
"""`make unit` (lint, types and the mock tests) within this."""
STACK_TYPE = "pulumi:pulumi:Stack"
PROVIDER_TYPE_PREFIX = "pulumi:providers:"


@dataclass(frozen=True, kw_only=True)
class Goal:
    """A bound on a step's median: its ratio to the floor when it has one, else its seconds."""

    limit: float
    counts: bool = True
    """Whether this reading is the one the goal is judged on; False for a stricter reading shown beside it."""


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step's times, and its ratio to the floor run beside each of its runs (if it has one)."""

    key: str
    label: str
    seconds: Summary
    floor: str | None = None
    floor_seconds: Summary | None = None
    ratio: Summary | None = None
    goal: Goal | None = None

    @property
    def measured(self) -> float:
        """What the goal bounds: the median ratio for a step beside a floor, else the median seconds."""
        return self.ratio.median if self.ratio is not None else self.seconds.median

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.measured <= self.goal.limit


@dataclass(frozen=True, kw_only=True)
class Reading:
    """One reading of a paired step: against which floor, under which key, bound by which goal."""

    key: str
    label: str
    floor: str
    """What the floor is, in words."""
    run_floor: Callable[[], float]
    goal: Goal | None = None


@dataclass(frozen=True, kw_only=True)
class Scaling:
    """Preview time of fresh stacks against the number of WebService components."""

    sizes: tuple[int, ...]
    seconds: tuple[Summary, ...]
    floor_seconds: Summary
    line: Line
    goal_seconds: float = SLOPE_GOAL_SECONDS
    """The bound on the slope, seconds a service."""

    @property
    def met(self) -> bool:
        return self.line.slope <= self.goal_seconds


@dataclass(frozen=True, kw_only=True)
class Plan:
    """How much of the bench runs."""

    runs: int
    """Timed runs of every step."""
    sizes: tuple[int, ...]
    """Service counts the scaling curve previews."""
    warm_ups: bool = True
    """Also run the untimed deploys that only steady later figures: dev brought back after the edits, a first
    promotion before the timed ones. Default ``True``; without them every step still runs and is reported."""
    mock_tests: tuple[str, ...] = ()
    """Test files of the mock suite that the make-unit step runs alone, without lint, types or make unit's
    workers. Default: none named, `make unit` itself."""


@dataclass(frozen=True, kw_only=True)
class Phase:
    """Seconds of one phase of an edited up, over its runs."""

    name: str
    seconds: Summary


@dataclass(frozen=True, kw_only=True)
class Shape:
    """What the copy's dev deploys: its resources' types and names, the stack and the default providers included."""

    resources: tuple[tuple[str, str], ...]

    @property
    def registered(self) -> list[tuple[str, str]]:
        """The resources the program registers: all but the stack and the engine's default providers."""
        return [
            (type_, name)
            for type_, name in self.resources
            if type_ != STACK_TYPE and not (type_.startswith(PROVIDER_TYPE_PREFIX) and name.startswith("default"))
        ]

    @property
    def types(self) -> dict[str, int]:
        """How many resources of each type."""
        counts: dict[str, int] = {}
        for type_, _ in self.resources:
            counts[type_] = counts.get(type_, 0) + 1
        return counts


@dataclass
class Results:
    steps: list[Step] = field(default_factory=list)
    scaling: Scaling | None = None
    phases: list[Phase] = field(default_factory=list)
    shape: Shape | None = None
    failed_requests: int = 0
    """Requests to dev's node port that failed (no answer, or not 200) while edited ups rolled out."""


def say(text: str) -> None:
    print(f">> {text}", file=sys.stderr, flush=True)


class Bench:
    """Runs every step ``plan.runs`` times on ``project``; the scaling curve at ``plan.sizes``."""

    def __init__(self, project: Project, plan: Plan) -> None:
        self.project = project
        self.plan = plan
        self.floor_dir = project.directory / "tooling" / "bench" / "floor"
        self.scaling_dir = project.directory / "tooling" / "bench" / "scaling"
        self.results = Results()
        self.config_file: tuple[str, ...] = ()
        """``--config-file`` for pulumi run straight on dev, when the project keeps a machine copy of stack files."""
        self.policy: tuple[str, ...] = ()
        """``--policy-pack`` and ``--policy-pack-config`` as `python -m ops preview dev` passes them: the copy's
        pack, dev's policy config."""

    def all(self) -> Results:
        with policy_run(self.project.directory, "dev") as policy:
            self.policy = ("--policy-pack", str(policy.pack), "--policy-pack-config", str(policy.config))
            self.prepare()
            self.pairs()
            self.single("make-up", "warm `make up`, nothing changed", lambda _: self.project.make("up", "STACK=dev"))
            digests = self.edits()
        self.single("review", "`make review` of dev, staging, prod", lambda _: self.project.make("review"))
        self.single("render", "`make render` of dev", self.render)
        self.promotions(digests)
        unit = (
            f"the mock test suite, only {' '.join(self.plan.mock_tests)}"
            if self.plan.mock_tests
            else "`make unit`: lint, types and the mock test suite"
        )
        self.single("make-unit", unit, self.make_unit, goal=Goal(limit=UNIT_GOAL_SECONDS))
        self.scale()
        return self.results

    def prepare(self) -> None:
        """The floor's stack and dev are deployed once, untimed: every timed run after is warm."""
        say(f"setup: the copy's stacks run in namespaces {', '.join(self.project.namespaces.values())}")
        say("setup: the floor's stack and a first `make up` of the copy's dev (builds the image)")
        self.project.run("pulumi", "stack", "init", "floor", "--non-interactive", cwd=self.floor_dir)
        self.project.pulumi("up", "--yes", "--skip-preview", stack="floor", cwd=self.floor_dir)
        self.project.make("up", "STACK=dev")
        # This machine's copy of dev's stack file, which `make up` deploys with.
        copy = "import pathlib; from ops.stack_copy import write_stack_copy as w; print(w(pathlib.Path.cwd(), 'dev'))"
        path = self.project.output(".venv/bin/python", "-c", copy)
        self.config_file = ("--config-file", path.strip())
        self.results.shape = self.shape()
        say(f"setup: the copy's dev holds {len(self.results.shape.resources)} resources, as `make up` made them")

    def shape(self) -> Shape:
        """The resources of the copy's dev, read from its state."""
        text = self.project.output("pulumi", "stack", "export", "--non-interactive", "--stack", "dev")
        resources = json.loads(text).get("deployment", {}).get("resources") or []
        return Shape(resources=tuple((entry["type"], entry["urn"].split("::")[-1]) for entry in resources))

    def dev(self, *args: str) -> float:
        """``pulumi ARGS`` on dev with this machine's copy of its stack file, as `make preview`/`make up` run it."""
        return self.project.pulumi(*args, *self.config_file)

    def floor(self, command: str, *, pack: bool = False) -> float:
        """The empty program's ``command``; with ``pack``, with dev's policy pack and config."""
        extra = ("--yes", "--skip-preview") if command == "up" else ()
        policy = self.policy if pack else ()
        return self.project.pulumi(command, *extra, *policy, stack="floor", cwd=self.floor_dir)

    def pairs(self) -> None:
        """Each step run beside its floors, back to back: step, floor(s), step, floor(s) ..."""
        with_pack = "empty program's {} with the same policy pack"
        paired: list[tuple[Callable[[], float], list[Reading]]] = [
            (lambda: self.dev("preview"), [
                Reading(key="preview", label="no-op `pulumi preview` of dev, no policy pack",
                        floor="empty program's preview", run_floor=lambda: self.floor("preview")),
            ]),
            (lambda: self.project.run(".venv/bin/python", "-m", "ops", "preview", "dev"), [
                Reading(key="preview-policy",
                        label="no-op preview of dev with the policy pack (`make preview`'s command)",
                        floor=with_pack.format("preview"), run_floor=lambda: self.floor("preview", pack=True),
                        goal=Goal(limit=PREVIEW_POLICY_GOAL)),
            ]),
            (lambda: self.dev("up", "--yes", "--skip-preview"), [
                Reading(key="up", label="no-op `pulumi up --skip-preview` of dev, no policy pack",
                        floor="empty program's up", run_floor=lambda: self.floor("up")),
            ]),
            (lambda: self.project.run(".venv/bin/python", "-m", "ops", "up", "dev"), [
                Reading(key="up-policy",
                        label="no-op up of dev with the policy pack (`python -m ops up dev`, as `make up` runs it)",
                        floor=with_pack.format("up"), run_floor=lambda: self.floor("up", pack=True),
                        goal=Goal(limit=UP_GOAL)),
                Reading(key="up-policy-vs-empty-up",
                        label="the same no-op up of dev with the pack, against the empty up without it",
                        floor="empty program's up, no policy pack", run_floor=lambda: self.floor("up"),
                        goal=Goal(limit=UP_GOAL, counts=False)),
            ]),
        ]  # fmt: skip
        for step, readings in paired:
            times: list[float] = []
            floors: list[list[float]] = [[] for _ in readings]
            for run in range(self.plan.runs):
                times.append(step())
                for reading, taken in zip(readings, floors, strict=True):
                    taken.append(reading.run_floor())
                beside = ", ".join(f"floor {taken[-1]:.2f} s" for taken in floors)
                say(f"{readings[0].key} {run + 1}/{self.plan.runs}: {times[-1]:.2f} s, {beside}")
            for reading, taken in zip(readings, floors, strict=True):
                self.results.steps.append(
                    Step(
                        key=reading.key,
                        label=reading.label,
                        seconds=summarize(times),
                        floor=reading.floor,
                        floor_seconds=summarize(taken),
                        ratio=paired_ratios(times, taken),
                        goal=reading.goal,
                    )
                )

    def single(self, key: str, label: str, step: Callable[[int], float], goal: Goal | None = None) -> None:
        times = []
        for run in range(self.plan.runs):
            times.append(step(run))
            say(f"{key} {run + 1}/{self.plan.runs}: {times[-1]:.2f} s")
        self.results.steps.append(Step(key=key, label=label, seconds=summarize(times), goal=goal))

    def edits(self) -> list[str]:
        """The edit steps (:meth:`edit_to_served`, :meth:`edit_phases`); returns dev's digests, before and after.

        app/server.js is put back afterwards, whatever happens, and dev is brought back to it (a warm-up).
        """
        server = self.project.directory / DEFAULT_BUILD_CONTEXT / "server.js"
        original = server.read_text()
        if MESSAGE_LINE not in original:
            raise BenchError(f"app/server.js must hold the line {MESSAGE_LINE!r}, got none")
        try:
            digests = self.edit_to_served(server, original)
            self.edit_phases(server, original)
        finally:
            server.write_text(original)
        if self.plan.warm_ups:
            self.project.make("up", "STACK=dev")
        return digests

    def edit_to_served(self, server: Path, original: str) -> list[str]:
        """`make up` after a one-line edit of app/server.js: until the new text is first served, and until it returns.

        The node port is polled from the start of `make up` to its end; requests that fail are counted.
        """
        digests = [self.project.stack_outputs()["imageRef"]]
        url = f"http://127.0.0.1:{self.project.stack_outputs()['nodePort']}/"
        served: list[float] = []
        back: list[float] = []
        for run in range(self.plan.runs):
            message = f"Hello World, edit {run + 1} at {time.time():.0f}"
            server.write_text(edited(original, message))
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=1) as pool:
                up = pool.submit(self.make_up_since, started)
                first, failed = watch_until_served(url, message, started, up)
                back.append(up.result())
            if first is None:
                raise BenchError(f"{url} must serve {message!r} within {SERVED_TIMEOUT_SECONDS:g} s, got other text")
            served.append(first)
            self.results.failed_requests += failed
            digests.append(self.project.stack_outputs()["imageRef"])
            say(f"edit {run + 1}/{self.plan.runs}: served after {first:.2f} s, `make up` back after {back[-1]:.2f} s")
        edit = "a one-line edit of app/server.js, then `make up`"
        self.results.steps += [
            Step(
                key="edit-to-served",
                label=f"{edit}: until the new text is first served",
                seconds=summarize(served),
                goal=Goal(limit=EDIT_GOAL_SECONDS),
            ),
            Step(
                key="edit-make-up",
                label=f"{edit}: until `make up` is back (verified)",
                seconds=summarize(back),
                goal=Goal(limit=EDIT_GOAL_SECONDS),
            ),
        ]
        return digests

    def make_up_since(self, started: float) -> float:
        """`make up` of dev; returns the seconds since ``started`` (``time.monotonic()``) when it is back."""
        self.project.make("up", "STACK=dev")
        return time.monotonic() - started

    def edit_phases(self, server: Path, original: str) -> None:
        """Another one-line edit, deployed by `make up`'s pulumi command alone, its engine events read as they come.

        Bare `pulumi up` with the pack and the machine copy: what `make up` adds around it is the rest of
        the edit step's time.
        """
        totals: list[float] = []
        runs: list[dict[str, float]] = []
        for run in range(self.plan.runs):
            server.write_text(edited(original, f"Hello World, phases {run + 1} at {time.time():.0f}"))
            log = self.project.root / f"events-{run}.jsonl"
            started = time.monotonic()
            with EventTail(log, started) as tail:
                # The CLI takes --event-log only with its debug commands on, as the Automation API turns them on.
                self.project.pulumi(
                    "up", "--yes", "--skip-preview", *self.policy, *self.config_file, "--event-log", str(log),
                    env={"PULUMI_DEBUG_COMMANDS": "true"},
                )  # fmt: skip
                totals.append(time.monotonic() - started)
            runs.append(phases(tail.arrivals, totals[-1]))
            found = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in runs[-1].items())
            say(f"edit-up-phases {run + 1}/{self.plan.runs}: {totals[-1]:.2f} s: {found}")
        self.results.steps.append(
            Step(
                key="edit-up-phases",
                label="another one-line edit, then bare `pulumi up` with the pack (`make up`'s pulumi command)",
                seconds=summarize(totals),
            )
        )
        names = list(dict.fromkeys(name for found in runs for name in found))
        self.results.phases = [
            Phase(name=name, seconds=summarize([found.get(name, 0.0) for found in runs])) for name in names
        ]

    def render(self, run: int) -> float:
        return self.project.make("render", "STACK=dev", f"OUT={self.project.root / 'render' / str(run)}")

    def promotions(self, digests: list[str]) -> None:
        """A promotion to staging that rolls out a new image each time (A B A B ...), after one untimed first.

        Without warm-ups, the first timed promotion creates staging.
        """
        if self.plan.warm_ups:
            say("setup: a first, untimed promotion creates the copy's staging")
            self.project.make("promote", "FROM=dev", "TO=staging", "ARGS=--yes")
        older, newer = digests[0].split("@")[1], digests[1].split("@")[1]

        def promote(run: int) -> float:
            digest = newer if run % 2 == 0 else older
            return self.project.make("promote", "FROM=dev", "TO=staging", f"ARGS=--yes --digest {digest}")

        self.single("promote", "`make promote FROM=dev TO=staging`, a new image each time", promote)

    def make_unit(self, _: int) -> float:
        """`make unit` in the copy, as a user runs it; with the plan's test files, only those, by pytest. The suite
        runs on the project's own stack files: the tests check them, not the bench's."""
        command = (
            (
                ".venv/bin/pytest",
                "-m",
                "not engine and not platform",
                "-q",
                "-p",
                "no:cacheprovider",
                *self.plan.mock_tests,
            )
            if self.plan.mock_tests
            # The copy's virtualenv is the project's, linked: make must not try to build it again.
            else ("make", "--no-print-directory", "-o", "venv", "unit")
        )
        isolated = {path: path.read_bytes() for path in self.project.directory.glob("Pulumi.*.yaml")}
        try:
            for path in isolated:
                path.write_bytes(self.project.tracked(path.name))
            seconds, result = self.project.timed(*command)
        finally:
            for path, content in isolated.items():
                path.write_bytes(content)
        if result.returncode != 0:
            raise BenchError(
                f"{' '.join(command)} must pass in the copy, got exit {result.returncode}:\n"
                f"{(result.stdout + result.stderr)[-3000:]}"
            )
        return seconds

    def scale(self) -> None:
        """Each run previews a fresh stack of every size, each beside an empty program's preview."""
        times: dict[int, list[float]] = {size: [] for size in self.plan.sizes}
        floors: list[float] = []
        for run in range(self.plan.runs):
            for size in self.plan.sizes:
                stack = f"scale-{size}-{run}"
                self.project.run("pulumi", "stack", "init", stack, "--non-interactive", cwd=self.scaling_dir)
                try:
                    self.project.pulumi("config", "set", "services", str(size), stack=stack, cwd=self.scaling_dir)
                    times[size].append(self.project.pulumi("preview", stack=stack, cwd=self.scaling_dir))
                finally:
                    self.project.pulumi("stack", "rm", "--yes", "--force", stack=stack, cwd=self.scaling_dir)
                floors.append(self.floor("preview"))
                say(f"scaling {size} services, run {run + 1}/{self.plan.runs}: {times[size][-1]:.2f} s")
        summaries = tuple(summarize(times[size]) for size in self.plan.sizes)
        line = least_squares(self.plan.sizes, [summary.median for summary in summaries])
        self.results.scaling = Scaling(
            sizes=self.plan.sizes, seconds=summaries, floor_seconds=summarize(floors), line=line
        )


def edited(original: str, message: str) -> str:
    """app/server.js with its message line saying ``message``."""
    return original.replace(MESSAGE_LINE, MESSAGE_LINE.replace("'Hello World'", f"'{message}'"))


def watch_until_served(url: str, text: str, started: float, up: Future[float]) -> tuple[float | None, int]:
    """Polls ``url`` on loopback until it serves ``text`` and ``up`` is done (or has failed).

    Returns:
        Seconds from ``started`` (``time.monotonic()``) until ``text`` was first served, None if it was not
        within SERVED_TIMEOUT_SECONDS; and how many requests failed (no answer, or a status other than 200).
    """
    # Straight to loopback: a proxy from the environment has no business with this machine's node.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = started + SERVED_TIMEOUT_SECONDS
    served: float | None = None
    failed = 0
    while served is None or not up.done():
        if up.done() and up.exception() is not None:
            break
        if served is None and time.monotonic() > deadline:
            break
        try:
            with opener.open(url, timeout=2) as answer:
                if answer.status != 200:
                    failed += 1
                elif served is None and text in answer.read().decode(errors="replace"):
                    served = time.monotonic() - started
        except (urllib.error.URLError, OSError):
            failed += 1
        time.sleep(SERVED_POLL_SECONDS)
    return served, failed
