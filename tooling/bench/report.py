"""The bench's three outputs: a Markdown table for the terminal, a JSON file, a PNG of the scaling curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tooling.bench.stats import Summary
from tooling.bench.steps import Results, Scaling, Step

JSON_NAME = "bench.json"
PNG_NAME = "scaling.png"


def _seconds(summary: Summary) -> str:
    return f"{summary.median:.2f} s ({summary.minimum:.2f}-{summary.maximum:.2f})"


def _ratio(summary: Summary) -> str:
    return f"{summary.median:.2f}x ({summary.minimum:.2f}-{summary.maximum:.2f})"


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


def _goal(step: Step) -> str:
    if step.goal is None or step.met is None:
        return ""
    unit = "x" if step.ratio is not None else " s"
    reading = "" if step.goal.counts else " (stricter reading, not the goal's)"
    return f"<= {step.goal.limit:g}{unit}: {_verdict(step.met)}{reading}"


def goals(results: Results) -> list[str]:
    """One line per goal: what is bounded, the bound, the measured median and whether it is met."""
    lines = []
    for step in results.steps:
        if step.goal is None or step.met is None:
            continue
        measured = f"{step.measured:.2f}x" if step.ratio is not None else f"{step.measured:.2f} s"
        bound = f"{step.goal.limit:g}x of the {step.floor}" if step.ratio is not None else f"{step.goal.limit:g} s"
        reading = "" if step.goal.counts else " (a stricter reading, shown beside the goal's)"
        lines.append(f"- {step.label}: {measured}, goal <= {bound}: {_verdict(step.met)}{reading}")
    if (scaling := results.scaling) is not None:
        lines.append(
            f"- preview slope: {scaling.line.slope * 1000:.1f} ms a service, goal <= "
            f"{scaling.goal_seconds * 1000:g} ms: {_verdict(scaling.met)}"
        )
    return lines


def table(results: Results) -> str:
    """Median (min-max) of every step, its floor, the median of the paired ratios and its goal; then the
    phases of an edited up, the copy's dev and the goals."""
    lines = [
        "| step | this project | floor | ratio | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for step in results.steps:
        floor = f"{_seconds(step.floor_seconds)}, {step.floor}" if step.floor_seconds else ""
        ratio = _ratio(step.ratio) if step.ratio else ""
        lines.append(f"| {step.label} | {_seconds(step.seconds)} | {floor} | {ratio} | {_goal(step)} |")
    if (scaling := results.scaling) is not None:
        sizes = " / ".join(str(size) for size in scaling.sizes)
        times = " / ".join(f"{summary.median:.2f}" for summary in scaling.seconds)
        lines.append(
            f"| preview of {sizes} WebService components (fresh stacks) | {times} s "
            f"| {_seconds(scaling.floor_seconds)}, empty program's preview "
            f"| {scaling.line.slope * 1000:.1f} ms a service (least squares) "
            f"| <= {scaling.goal_seconds * 1000:g} ms a service: {_verdict(scaling.met)} |"
        )
    if results.phases:
        total = sum(phase.seconds.median for phase in results.phases)
        lines += ["", "| phase of an edited up (bare `pulumi up` with the pack, engine events) | seconds | share |"]
        lines.append("| --- | --- | --- |")
        lines += [
            f"| {phase.name} | {_seconds(phase.seconds)} | {phase.seconds.median / total:.0%} |"
            for phase in results.phases
        ]
    if (shape := results.shape) is not None:
        kinds = ", ".join(f"{count} {type_}" for type_, count in sorted(shape.types.items()))
        lines += [
            "",
            f"The copy's dev, deployed by `make up`: {len(shape.resources)} resources in its state, "
            f"{len(shape.registered)} of them registered by the program, besides the stack and the engine's "
            f"default providers ({kinds}).",
        ]
    if results.steps and any(step.key.startswith("edit-") for step in results.steps):
        lines.append(f"Requests that failed while the edited ups rolled out: {results.failed_requests}.")
    if found := goals(results):
        lines += ["", "Goals:", *found]
    return "\n".join(lines)


def as_json(results: Results, machine: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {"machine": machine, "steps": {}}
    for step in results.steps:
        entry: dict[str, Any] = {"label": step.label, "seconds": step.seconds.as_json()}
        if step.floor_seconds is not None and step.ratio is not None:
            entry.update(floor=step.floor, floor_seconds=step.floor_seconds.as_json(), ratio=step.ratio.as_json())
        if step.goal is not None:
            entry["goal"] = {
                "limit": step.goal.limit,
                "of": "ratio" if step.ratio is not None else "seconds",
                "met": step.met,
                "counts": step.goal.counts,
            }
        document["steps"][step.key] = entry
    if (scaling := results.scaling) is not None:
        document["scaling"] = {
            "sizes": list(scaling.sizes),
            "seconds": [summary.as_json() for summary in scaling.seconds],
            "floor_seconds": scaling.floor_seconds.as_json(),
            "slope_seconds_per_service": scaling.line.slope,
            "intercept_seconds": scaling.line.intercept,
            "goal": {"limit_seconds_per_service": scaling.goal_seconds, "met": scaling.met},
        }
    if results.phases:
        document["edit_phases"] = {phase.name: phase.seconds.as_json() for phase in results.phases}
    if (shape := results.shape) is not None:
        document["dev_shape"] = {
            "resources": len(shape.resources),
            "registered": len(shape.registered),
            "types": shape.types,
            "names": [list(resource) for resource in shape.resources],
        }
    document["failed_requests"] = results.failed_requests
    document["goals"] = goals(results)
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
    axes.plot(
        ends,
        [line.intercept + scaling.goal_seconds * x for x in ends],
        ":",
        color="tab:green",
        label=f"goal: at most {scaling.goal_seconds * 1000:g} ms a service",
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
