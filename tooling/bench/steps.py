"""The steps a user waits for, each timed on the bench's copy of the project, beside Pulumi's floor."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from settings import DEFAULT_BUILD_CONTEXT
from tooling.bench.project import BenchError, Project
from tooling.bench.stats import Line, Summary, least_squares, paired_ratios, summarize

SERVED_TIMEOUT_SECONDS = 120.0
SERVED_POLL_SECONDS = 0.2
MESSAGE_LINE = "const MESSAGE = process.env.MESSAGE || 'Hello World';"
"""The line of app/server.js that the edit step changes; its text keeps 'Hello World', so verification passes."""


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step's times, and its ratio to the floor run beside each of its runs (if it has one)."""

    key: str
    label: str
    seconds: Summary
    floor: str | None = None
    floor_seconds: Summary | None = None
    ratio: Summary | None = None


@dataclass(frozen=True, kw_only=True)
class Scaling:
    """Preview time of fresh stacks against the number of WebService components."""

    sizes: tuple[int, ...]
    seconds: tuple[Summary, ...]
    floor_seconds: Summary
    line: Line


@dataclass(frozen=True, kw_only=True)
class Plan:
    """How much of the bench runs."""

    runs: int
    """Timed runs of every step."""
    sizes: tuple[int, ...]
    """Service counts the scaling curve previews."""
    warm_ups: bool = True
    """Also run the untimed deploys that only steady later figures: dev brought back after the edit, a first
    promotion before the timed ones. Default ``True``; without them every step still runs and is reported."""
    mock_tests: tuple[str, ...] = ()
    """Test files the mock-tests step runs. Default: none named, the whole mock suite."""


@dataclass
class Results:
    steps: list[Step] = field(default_factory=list)
    scaling: Scaling | None = None


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

    def all(self) -> Results:
        self.prepare()
        self.pairs()
        self.single("make-up", "warm `make up`, nothing changed", lambda _: self.project.make("up", "STACK=dev"))
        digests = self.edit_to_served()
        self.single("review", "`make review` of dev, staging, prod", lambda _: self.project.make("review"))
        self.single("render", "`make render` of dev", self.render)
        self.promotions(digests)
        only = f", only {' '.join(self.plan.mock_tests)}" if self.plan.mock_tests else ""
        self.single("mock-tests", f"the mock test suite{only}", self.mock_tests)
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

    def dev(self, *args: str) -> float:
        """``pulumi ARGS`` on dev, without the policy pack, as `make preview`/`make up` would run it otherwise."""
        return self.project.pulumi(*args, *self.config_file)

    def floor(self, command: str) -> float:
        extra = ("--yes", "--skip-preview") if command == "up" else ()
        return self.project.pulumi(command, *extra, stack="floor", cwd=self.floor_dir)

    def pairs(self) -> None:
        steps: list[tuple[str, str, str, Callable[[], float]]] = [
            ("preview", "no-op `pulumi preview` of dev, no policy pack", "preview",
             lambda: self.dev("preview")),
            ("preview-policy", "no-op preview of dev with the policy pack (`make preview`'s command)", "preview",
             lambda: self.project.run(".venv/bin/python", "-m", "ops", "preview", "dev")),
            ("up", "no-op `pulumi up --skip-preview` of dev, no policy pack", "up",
             lambda: self.dev("up", "--yes", "--skip-preview")),
            ("up-policy", "no-op up of dev with the policy pack (`python -m ops up dev`, as `make up` runs it)", "up",
             lambda: self.project.run(".venv/bin/python", "-m", "ops", "up", "dev")),
        ]  # fmt: skip
        for key, label, floor, step in steps:
            times: list[float] = []
            floors: list[float] = []
            for run in range(self.plan.runs):
                times.append(step())
                floors.append(self.floor(floor))
                say(f"{key} {run + 1}/{self.plan.runs}: {times[-1]:.2f} s, floor {floors[-1]:.2f} s")
            self.results.steps.append(
                Step(
                    key=key,
                    label=label,
                    seconds=summarize(times),
                    floor=f"empty program's {floor}",
                    floor_seconds=summarize(floors),
                    ratio=paired_ratios(times, floors),
                )
            )

    def single(self, key: str, label: str, step: Callable[[int], float]) -> None:
        times = []
        for run in range(self.plan.runs):
            times.append(step(run))
            say(f"{key} {run + 1}/{self.plan.runs}: {times[-1]:.2f} s")
        self.results.steps.append(Step(key=key, label=label, seconds=summarize(times)))

    def edit_to_served(self) -> list[str]:
        """Times `make up` after an edit of app/server.js until the new text is served; returns dev's digests.

        The file is put back afterwards, whatever happens, and dev is brought back to it (a warm-up).
        """
        server = self.project.directory / DEFAULT_BUILD_CONTEXT / "server.js"
        original = server.read_text()
        if MESSAGE_LINE not in original:
            raise BenchError(f"app/server.js must hold the line {MESSAGE_LINE!r}, got none")
        digests = [self.project.stack_outputs()["imageRef"]]
        port = self.project.stack_outputs()["nodePort"]

        def edit(run: int) -> float:
            message = f"Hello World, edit {run + 1} at {time.time():.0f}"
            server.write_text(original.replace(MESSAGE_LINE, MESSAGE_LINE.replace("'Hello World'", f"'{message}'")))
            started = time.monotonic()
            self.project.make("up", "STACK=dev")
            wait_until_served(f"http://127.0.0.1:{port}/", message)
            seconds = time.monotonic() - started
            digests.append(self.project.stack_outputs()["imageRef"])
            return seconds

        try:
            self.single("edit-to-served", "`make up` after editing app/server.js, until the new text is served", edit)
        finally:
            server.write_text(original)
        if self.plan.warm_ups:
            self.project.make("up", "STACK=dev")
        return digests

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

    def mock_tests(self, _: int) -> float:
        """The suite runs on the project's own stack files: the tests check them, not the bench's."""
        isolated = {path: path.read_bytes() for path in self.project.directory.glob("Pulumi.*.yaml")}
        try:
            for path in isolated:
                path.write_bytes(self.project.tracked(path.name))
            seconds, result = self.project.timed(
                ".venv/bin/pytest",
                "-m",
                "not engine and not platform",
                "-q",
                "-p",
                "no:cacheprovider",
                *self.plan.mock_tests,
            )
        finally:
            for path, content in isolated.items():
                path.write_bytes(content)
        # Failed tests still ran in full, so the time holds; a suite that stopped early (2 and up) times nothing.
        # In the copy, tests that check the virtualenv's own path fail: the copy links the project's.
        if result.returncode not in (0, 1):
            raise BenchError(
                f"the mock test suite must run to its end, got exit {result.returncode}:\n{result.stdout[-3000:]}"
            )
        if result.returncode == 1:
            summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "?"
            say(f"warning: the mock test suite ran with failures in the copy: {summary}")
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


def wait_until_served(url: str, text: str) -> None:
    """Polls ``url`` on loopback until its answer holds ``text``, for at most SERVED_TIMEOUT_SECONDS.

    Raises:
        BenchError: When the text is not served in time.
    """
    deadline = time.monotonic() + SERVED_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if text in answer.read().decode(errors="replace"):
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(SERVED_POLL_SECONDS)
    raise BenchError(f"{url} must serve {text!r} within {SERVED_TIMEOUT_SECONDS:g} s, got other text")
