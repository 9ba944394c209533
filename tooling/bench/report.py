"""The bench's three outputs: a Markdown table for the terminal, a JSON file, a PNG of the scaling curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tooling.bench.stats import Summary
from tooling.bench.steps import Results, Scaling

JSON_NAME = "bench.json"
PNG_NAME = "scaling.png"


def _seconds(summary: Summary) -> str:
    return f"{summary.median:.2f} s ({summary.minimum:.2f}-{summary.maximum:.2f})"


def _ratio(summary: Summary) -> str:
    return f"{summary.median:.2f}x ({summary.minimum:.2f}-{summary.maximum:.2f})"


def table(results: Results) -> str:
    """Median (min-max) of every step, its floor and the median of the paired ratios."""
    lines = [
        "| step | this project | floor | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for step in results.steps:
        floor = f"{_seconds(step.floor_seconds)}, {step.floor}" if step.floor_seconds else ""
        ratio = _ratio(step.ratio) if step.ratio else ""
        lines.append(f"| {step.label} | {_seconds(step.seconds)} | {floor} | {ratio} |")
    if (scaling := results.scaling) is not None:
        sizes = " / ".join(str(size) for size in scaling.sizes)
        times = " / ".join(f"{summary.median:.2f}" for summary in scaling.seconds)
        lines.append(
            f"| preview of {sizes} WebService components (fresh stacks) | {times} s "
            f"| {_seconds(scaling.floor_seconds)}, empty program's preview "
            f"| {scaling.line.slope * 1000:.1f} ms a service (least squares) |"
        )
    return "\n".join(lines)


def as_json(results: Results, machine: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {"machine": machine, "steps": {}}
    for step in results.steps:
        entry: dict[str, Any] = {"label": step.label, "seconds": step.seconds.as_json()}
        if step.floor_seconds is not None and step.ratio is not None:
            entry.update(floor=step.floor, floor_seconds=step.floor_seconds.as_json(), ratio=step.ratio.as_json())
        document["steps"][step.key] = entry
    if (scaling := results.scaling) is not None:
        document["scaling"] = {
            "sizes": list(scaling.sizes),
            "seconds": [summary.as_json() for summary in scaling.seconds],
            "floor_seconds": scaling.floor_seconds.as_json(),
            "slope_seconds_per_service": scaling.line.slope,
            "intercept_seconds": scaling.line.intercept,
        }
    return document


def write_json(results: Results, machine: dict[str, Any], out: Path) -> Path:
    path = out / JSON_NAME
    path.write_text(json.dumps(as_json(results, machine), indent=2) + "\n")
    return path


def plot(scaling: Scaling, out: Path, caption: str) -> Path:
    """Median preview time (min-max bars) against the component count, the fitted line and the floor."""
    # Imported here: only the bench draws; matplotlib is a development requirement (requirements-dev.txt).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(scaling.sizes)
    medians = [summary.median for summary in scaling.seconds]
    below = [summary.median - summary.minimum for summary in scaling.seconds]
    above = [summary.maximum - summary.median for summary in scaling.seconds]
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    axes.errorbar(sizes, medians, yerr=[below, above], fmt="o", capsize=4, label="preview, median (min-max)")
    ends = [0, max(sizes)]
    line = scaling.line
    axes.plot(
        ends,
        [line.intercept + line.slope * x for x in ends],
        "--",
        label=f"least squares: {line.intercept:.2f} s + {line.slope * 1000:.1f} ms a service",
    )
    axes.axhline(
        scaling.floor_seconds.median,
        color="grey",
        linestyle=":",
        label=f"floor: empty program's preview, {scaling.floor_seconds.median:.2f} s",
    )
    axes.set_xlabel("WebService components in the program")
    axes.set_ylabel("pulumi preview, seconds")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_title("Preview time of a fresh stack against its size")
    axes.legend(loc="upper left")
    figure.text(0.01, 0.01, caption, fontsize=7, color="grey")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    path = out / PNG_NAME
    figure.savefig(path)
    plt.close(figure)
    return path
