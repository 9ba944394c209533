"""Where one edited `pulumi up` spends its time, from the engine's event log read while pulumi writes it."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pulumi import automation as auto

IMAGE_TYPES = frozenset({"docker-build:index:Image", "docker:index/image:Image"})
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
JOB_TYPE = "kubernetes:batch/v1:Job"
PUSHING = re.compile(r"\bpushing\b", re.IGNORECASE)
"""A BuildKit progress line of the push (``#12 pushing layers``), which the builder sends as the image's status."""
TAIL_POLL_SECONDS = 0.02
"""How often the log is read: an event's own timestamp is in whole seconds, its arrival here to 20 ms."""
WORKING_OPS = frozenset({"create", "update", "create-replacement", "delete", "delete-replaced"})
"""Steps that do work on a resource; ``same``, ``read``, ``refresh`` and the logical ``replace`` do none."""

START = "start: CLI, plugins, program, unchanged resources"
BUILD = "image build"
PUSH = "image push"
BUILD_AND_PUSH = "image build and push (no push line seen)"
ROLLOUT = "Deployment rollout: new pods available, old ones out"
VERIFICATION = "verification Job"
OLD_JOB = "old verification Job deleted"
REST = "the rest: other resources, state, exit"


@dataclass(frozen=True)
class Arrival:
    """One engine event and when it reached the log, in seconds since the command started."""

    seconds: float
    event: auto.EngineEvent


class EventTail:
    """Follows a ``pulumi --event-log`` file from a thread, stamping each event with when it arrived.

    Used as a context manager around the command: on exit the rest of the file is read and the thread ends.
    """

    def __init__(self, path: Path, started: float) -> None:
        self.path = path
        self.started = started
        """``time.monotonic()`` when the command started."""
        self.arrivals: list[Arrival] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> EventTail:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _follow(self) -> None:
        while not self.path.exists():
            if self._stop.wait(TAIL_POLL_SECONDS):
                return
        partial = ""
        with self.path.open(encoding="utf-8") as log:
            while True:
                stopping = self._stop.is_set()
                line = log.readline()
                if not line:
                    if stopping:
                        return
                    time.sleep(TAIL_POLL_SECONDS)
                    continue
                partial += line
                if partial.endswith("\n"):
                    event = auto.EngineEvent.from_json(json.loads(partial))
                    self.arrivals.append(Arrival(time.monotonic() - self.started, event))
                    partial = ""


@dataclass(frozen=True, kw_only=True)
class ResourceStep:
    """One step of the engine on one resource, from its ResourcePreEvent to its ResOutputs (or failure) event."""

    type: str
    name: str
    op: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def resource_steps(arrivals: Sequence[Arrival]) -> list[ResourceStep]:
    """Every step that did work, in the order it started."""
    started: dict[tuple[str, str], tuple[str, float]] = {}
    steps: list[ResourceStep] = []
    for arrival in arrivals:
        event = arrival.event
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            started[(meta.urn, meta.op.value)] = (meta.type, arrival.seconds)
            continue
        ended = event.res_outputs_event or event.res_op_failed_event
        if ended is None:
            continue
        meta = ended.metadata
        if (meta.urn, meta.op.value) not in started or meta.op.value not in WORKING_OPS:
            continue
        type_, start = started.pop((meta.urn, meta.op.value))
        steps.append(
            ResourceStep(type=type_, name=meta.urn.split("::")[-1], op=meta.op.value, start=start, end=arrival.seconds)
        )
    return sorted(steps, key=lambda step: step.start)


def first_push(arrivals: Sequence[Arrival], image: ResourceStep) -> float | None:
    """When the builder's status first spoke of pushing, within the image's step; None if it never did."""
    for arrival in arrivals:
        diagnostic = arrival.event.diagnostic_event
        if (
            diagnostic is not None
            and image.start <= arrival.seconds <= image.end
            and (diagnostic.urn or "").split("::")[-1] == image.name
            and PUSHING.search(diagnostic.message)
        ):
            return arrival.seconds
    return None


def phases(arrivals: Sequence[Arrival], total: float) -> dict[str, float]:
    """The command's ``total`` seconds cut into phases that add up to it, in the order they ran.

    The build, rollout and check run one after the other (each waits for the one before), so they
    do not overlap; whatever no named phase holds is in the last one, the rest.
    """
    steps = resource_steps(arrivals)
    found: dict[str, float] = {}
    if steps:
        found[START] = steps[0].start
    for step in steps:
        if step.type in IMAGE_TYPES and step.op != "delete-replaced":
            pushed = first_push(arrivals, step)
            if pushed is None:
                found[BUILD_AND_PUSH] = found.get(BUILD_AND_PUSH, 0.0) + step.seconds
            else:
                found[BUILD] = found.get(BUILD, 0.0) + pushed - step.start
                found[PUSH] = found.get(PUSH, 0.0) + step.end - pushed
        elif step.type == DEPLOYMENT_TYPE and step.op != "delete-replaced":
            found[ROLLOUT] = found.get(ROLLOUT, 0.0) + step.seconds
        elif step.type == JOB_TYPE:
            name = OLD_JOB if step.op in ("delete", "delete-replaced") else VERIFICATION
            found[name] = found.get(name, 0.0) + step.seconds
    found[REST] = total - sum(found.values())
    return found
