"""Summaries of timed runs: median, min, max, ratios taken pair by pair, and a least-squares slope."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Seconds (or a ratio) over several runs."""

    median: float
    minimum: float
    maximum: float
    runs: tuple[float, ...]
    """Every run's value, in the order they ran."""

    def as_json(self) -> dict[str, object]:
        return {"median": self.median, "min": self.minimum, "max": self.maximum, "runs": list(self.runs)}


def summarize(values: Sequence[float]) -> Summary:
    """Median, min and max of ``values``.

    Raises:
        ValueError: When there is no value.
    """
    if not values:
        raise ValueError("values must hold at least one run, got none")
    return Summary(median=statistics.median(values), minimum=min(values), maximum=max(values), runs=tuple(values))


def paired_ratios(step: Sequence[float], floor: Sequence[float]) -> Summary:
    """Each run of ``step`` divided by the floor run made right beside it.

    Pairs ran back to back (A B A B ...), so load that comes and goes moves both sides of a ratio
    alike; the median of the ratios is steadier than a ratio of medians.

    Raises:
        ValueError: When the runs do not pair up, or a floor run took no time.
    """
    if len(step) != len(floor) or not step:
        raise ValueError(
            f"step and floor must have the same number of runs (at least 1), got {len(step)} and {len(floor)}"
        )
    if min(floor) <= 0:
        raise ValueError(f"floor runs must take some time, got {min(floor)}")
    return summarize([a / b for a, b in zip(step, floor, strict=True)])


@dataclass(frozen=True, kw_only=True)
class Line:
    """``seconds = intercept + slope * count``."""

    slope: float
    intercept: float


def least_squares(counts: Sequence[float], seconds: Sequence[float]) -> Line:
    """The straight line closest (in squared error) to the points ``(counts[i], seconds[i])``.

    Raises:
        ValueError: With fewer than two distinct counts, which do not fix a line.
    """
    if len(counts) != len(seconds) or len(set(counts)) < 2:
        raise ValueError(f"counts must hold at least two distinct values, one per time, got {list(counts)}")
    mean_x = statistics.fmean(counts)
    mean_y = statistics.fmean(seconds)
    spread = sum((x - mean_x) ** 2 for x in counts)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(counts, seconds, strict=True)) / spread
    return Line(slope=slope, intercept=mean_y - slope * mean_x)
