"""The GitHub Actions workflows shipped for users: valid, calling only make targets we test, safe with their inputs.

Inputs and event fields reach scripts only as checked data, and no pull request's job can decrypt prod.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
YAMLLINT_CONFIG = (
    "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}"
)


def test_workflows_exist_for_pull_requests_merges_and_promotion() -> None:
    assert [path.name for path in WORKFLOWS] == ["deploy-dev.yml", "drift.yml", "promote.yml", "pull-request.yml"]


def test_workflows_validate_against_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_yamllint() -> None:
    result = subprocess.run(
        [str(BIN / "yamllint"), "-d", YAMLLINT_CONFIG, *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_calls_only_make_targets_the_makefile_has(workflow: Path) -> None:
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    commands = [line for line in workflow.read_text().splitlines() if not line.lstrip().startswith("#")]
    called = set(re.findall(r"\bmake ([a-z-]+)", "\n".join(commands)))

    assert called, "the workflow runs no make target"
    assert called <= targets, f"{workflow.name} calls {sorted(called - targets)}, which the Makefile lacks"


# What a workflow may not paste into a script: values that whoever starts the run, or opens the pull request, chooses.
UNTRUSTED = re.compile(r"\$\{\{\s*(inputs|github\.event)\.")
INPUT_RULES = {
    # Every workflow_dispatch input needs an entry: its pattern, values it must accept, values it must refuse.
    # (Stack names would be ^[a-z][a-z0-9-]*$.)
    "digest": (
        "^sha256:[0-9a-f]{64}$",
        ["", "sha256:" + "0" * 64],
        [
            "sha256:$(touch {marker})",
            "`touch {marker}`",
            "; touch {marker}",
            "sha256:" + "0" * 64 + "\ntouch {marker}",
            "sha256:" + "A" * 64,
        ],
    ),
}
PREVIEW_SECRETS = {"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_DEV", "PULUMI_CONFIG_PASSPHRASE_STAGING"}
Node = dict[str, Any]


def load(workflow: Path) -> Node:
    document: Node = yaml.safe_load(workflow.read_text())
    return document


def triggers(document: dict[Any, Any]) -> Node:
    found: Node = document["on"] if "on" in document else document[True]  # YAML 1.1 reads a bare `on` as true
    return found


def strings(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string in a document, with the keys that lead to it."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, (*path, str(index)))
    elif isinstance(node, str):
        yield path, node


def secrets_per_run(job: Node) -> list[set[str]]:
    """The secrets each run of a job reads: one set per matrix entry, `secrets[matrix.x]` resolved."""
    named = {match for _, text in strings(job) for match in re.findall(r"secrets\.([A-Za-z0-9_]+)", text)}
    by_matrix = {match for _, text in strings(job) for match in re.findall(r"secrets\[matrix\.(\w+)\]", text)}
    entries = job.get("strategy", {}).get("matrix", {}).get("include", [{}])
    return [named | {entry[key] for key in by_matrix} for entry in entries]


def environment(job: Node) -> str | None:
    found = job.get("environment")
    return found.get("name") if isinstance(found, dict) else found


def jobs_of(workflow: Path) -> list[tuple[str, Node]]:
    return list(load(workflow)["jobs"].items())


def test_workflows_pass_inputs_and_event_fields_only_through_env_or_with() -> None:
    misplaced = [
        f"{workflow.name}: {'.'.join(path)}"
        for workflow in WORKFLOWS
        for path, text in strings(load(workflow))
        if UNTRUSTED.search(text) and path[-2:-1] not in [("env",), ("with",)]
    ]

    assert misplaced == [], "pass inputs and event fields through env: or with:, never into a script"


DISPATCH_INPUTS = [
    (workflow, name)
    for workflow in WORKFLOWS
    for name in (triggers(load(workflow)).get("workflow_dispatch") or {}).get("inputs", {})
]


@pytest.mark.parametrize(
    ("workflow", "name"), DISPATCH_INPUTS, ids=[f"{path.name}-{name}" for path, name in DISPATCH_INPUTS]
)
def test_workflow_input_is_checked_against_a_strict_pattern_before_any_step_uses_it(
    workflow: Path, name: str, tmp_path: Path
) -> None:
    assert name in INPUT_RULES, f"input {name!r} of {workflow.name} needs a pattern in INPUT_RULES and a check step"
    pattern, accepted, refused = INPUT_RULES[name]
    marker = tmp_path / "marker"
    reference = re.compile(r"\$\{\{\s*inputs\." + name + r"\s*\}\}")
    for job_name, job in jobs_of(workflow):
        users = [step for step in job["steps"] if any(reference.search(text) for _, text in strings(step))]
        if not users:
            continue
        check = users[0]
        variable = next((key for key, value in check.get("env", {}).items() if reference.fullmatch(str(value))), None)
        assert variable, f"{job_name}: the first step that reads {name} must take it from env:"
        script = check.get("run", "")
        assert f"=~ {pattern}" in script, (
            f"{job_name}: the first step that reads {name} must check it against {pattern}"
        )

        def run(value: str, script: str = script, variable: str = variable) -> int:
            # As GitHub runs a `shell: bash` step.
            command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script]
            env = {"PATH": "/usr/bin:/bin", variable: value.format(marker=marker)}
            return subprocess.run(command, env=env, capture_output=True, timeout=10, check=False).returncode

        assert [run(value) for value in accepted] == [0] * len(accepted)
        assert all(run(value) != 0 for value in refused)
        assert not marker.exists()


def test_workflows_give_prods_passphrase_only_to_jobs_in_the_prod_environment() -> None:
    for workflow in WORKFLOWS:
        for job_name, job in jobs_of(workflow):
            for secrets in secrets_per_run(job):
                where = f"{workflow.name} job {job_name}"
                assert "PULUMI_CONFIG_PASSPHRASE" not in secrets, f"{where}: use the passphrase of one stack"
                if "PULUMI_CONFIG_PASSPHRASE_PROD" in secrets:
                    assert environment(job) == "prod", f"{where}: prod's passphrase only in the prod environment"


def test_pull_request_workflow_previews_with_one_non_prod_passphrase_per_job_and_no_environment() -> None:
    workflow = ROOT / ".github" / "workflows" / "pull-request.yml"

    assert list(triggers(load(workflow))) == ["pull_request"]  # never pull_request_target
    for job_name, job in jobs_of(workflow):
        assert environment(job) is None, f"{job_name}: a pull request's job must enter no environment"
        for secrets in secrets_per_run(job):
            assert secrets <= PREVIEW_SECRETS, f"{job_name}: {sorted(secrets - PREVIEW_SECRETS)} are not for previews"
            assert len({secret for secret in secrets if "PASSPHRASE" in secret}) <= 1, f"{job_name}: one stack each"


def test_pull_request_jobs_that_run_its_code_hold_no_write_token() -> None:
    document = load(ROOT / ".github" / "workflows" / "pull-request.yml")
    for job_name, job in document["jobs"].items():
        permissions = job.get("permissions", document.get("permissions", "write-all"))
        writes = permissions == "write-all" or (isinstance(permissions, dict) and "write" in permissions.values())
        runs_code = any(
            "actions/checkout" in step.get("uses", "") or "make " in step.get("run", "") for step in job["steps"]
        )

        assert not (writes and runs_code), f"{job_name} runs the pull request's code with a write token"


# What a workflow writes on a make command line after the target: VAR=value settings.
MAKE_CALL = re.compile(r"\bmake ([a-z-]+)((?:\s+[A-Z_]+=(?:\"[^\"]*\"|'[^']*'|\S+))*)")


def make_calls(workflow: Path) -> list[tuple[str, list[str]]]:
    """Every `make <target> VAR=...` in the workflow's scripts: the target and the names of the settings."""
    scripts = "\n".join(text for path, text in strings(load(workflow)) if path[-1] == "run")
    return [(target, re.findall(r"([A-Z_]+)=", settings)) for target, settings in MAKE_CALL.findall(scripts)]


def makefile_settings() -> set[str]:
    """The variables the Makefile reads from its command line (`override X := $(value X)`, `X ?=`)."""
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^override ([A-Z_]+) :=", text, re.MULTILINE)) | set(
        re.findall(r"^([A-Z_]+) \?=", text, re.MULTILINE)
    )


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_sets_only_make_settings_the_makefile_reads(workflow: Path) -> None:
    used = {setting for _, settings in make_calls(workflow) for setting in settings}

    assert used - makefile_settings() == set(), f"{workflow.name} sets {sorted(used - makefile_settings())}"


def test_make_calls_are_read_with_their_settings() -> None:
    assert make_calls(ROOT / ".github" / "workflows" / "deploy-dev.yml") == [("up", ["STACK", "REVIEWED", "TOOLCHAIN"])]


def steps_using(job: Node, action: str) -> list[Node]:
    return [step for step in job["steps"] if step.get("uses", "").split("@")[0] == action]


def runs_make(job: Node) -> bool:
    return any("make " in step.get("run", "") for step in job["steps"])


def test_jobs_that_run_make_install_the_pinned_cli_with_pulumis_action_and_cache_pip() -> None:
    pinned = (ROOT / "requirements.txt").read_text().split("pulumi==", 1)[1].split()[0]
    for workflow in WORKFLOWS:
        for job_name, job in jobs_of(workflow):
            if not runs_make(job):
                continue
            where = f"{workflow.name} job {job_name}"
            (cli,) = steps_using(job, "pulumi/actions")
            assert "command" not in cli.get("with", {}), f"{where}: the action only installs; make runs pulumi"
            assert cli["with"]["pulumi-version"] == pinned, f"{where}: the CLI must be requirements.txt's {pinned}"
            (python,) = steps_using(job, "actions/setup-python")
            assert python["with"]["cache"] == "pip", f"{where}: cache pip"
            assert not steps_using(job, "actions/setup-go"), f"{where}: no Go toolchain: nothing is built from source"
            assert all(
                "TOOLCHAIN=path" in step["run"]
                for step in job["steps"]
                if "make " in step.get("run", "")
                and re.search(r"make (engine-test|review|up|promote|drift)", step["run"])
            ), f"{where}: TOOLCHAIN=path"


def test_every_action_is_pinned_to_a_release() -> None:
    for workflow in WORKFLOWS:
        for _, job in jobs_of(workflow):
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+){0,2}", step["uses"]), step["uses"]


def test_pull_requests_test_on_a_kind_cluster_and_never_start_our_platform() -> None:
    document = load(ROOT / ".github" / "workflows" / "pull-request.yml")
    test_job = document["jobs"]["test"]
    scripts = "\n".join(step.get("run", "") for _, job in document["jobs"].items() for step in job["steps"])

    assert steps_using(test_job, "helm/kind-action")
    assert ("unit", []) in make_calls(ROOT / ".github" / "workflows" / "pull-request.yml")
    assert ("engine-test", ["TOOLCHAIN"]) in make_calls(ROOT / ".github" / "workflows" / "pull-request.yml")
    assert not re.search(r"make (test|platform|e2e)\b|sudo", scripts)


def test_review_is_saved_per_stack_and_the_deploy_is_held_to_the_merged_pull_requests_review() -> None:
    review_job = load(ROOT / ".github" / "workflows" / "pull-request.yml")["jobs"]["review"]
    (deploy_job,) = [job for _, job in jobs_of(ROOT / ".github" / "workflows" / "deploy-dev.yml")]
    (upload,) = steps_using(review_job, "actions/upload-artifact")
    review_script = "\n".join(step.get("run", "") for step in review_job["steps"])
    deploy_script = "\n".join(step.get("run", "") for step in deploy_job["steps"])

    assert 'make review STACKS="$STACKS" SAVE=review' in review_script
    assert upload["with"] == {"name": "review-${{ matrix.stack }}", "path": "review/"}
    assert "gh run download" in deploy_script
    assert "--name review-dev --dir review" in deploy_script
    assert "make up STACK=dev REVIEWED=review/dev.review.json" in deploy_script
    assert deploy_job["permissions"]["actions"] == "read"


FAKE_GH = """
import json, os, sys
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "--paginate" in sys.argv:
    print(os.environ.get("FAKE_GH_EXISTING", ""))
"""


@pytest.mark.parametrize(
    ("existing", "expected", "reviewed"),
    [("", "POST", ("dev", "staging")), ("4242", "PATCH", ("dev", "staging")), ("4242", "PATCH", ("dev",))],
    ids=["first-push-posts", "later-push-edits-in-place", "a-failed-review-is-said"],
)
def test_review_comment_is_posted_once_then_edited_in_place(
    tmp_path: Path, existing: str, expected: str, reviewed: tuple[str, ...]
) -> None:
    (comment_job,) = [
        job for name, job in jobs_of(ROOT / ".github" / "workflows" / "pull-request.yml") if name == "comment"
    ]
    (step,) = [step for step in comment_job["steps"] if "run" in step]
    fake = tmp_path / "bin" / "gh"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\n{FAKE_GH}")
    fake.chmod(0o755)
    (tmp_path / "review").mkdir()
    for stack in reviewed:
        (tmp_path / "review" / f"{stack}.md").write_text(f"### Stack `{stack}`\n")
    log = tmp_path / "gh.log"
    env = {
        "PATH": f"{fake.parent}:/usr/bin:/bin",
        "FAKE_GH_LOG": str(log),
        "FAKE_GH_EXISTING": existing,
        "GITHUB_REPOSITORY": "owner/repo",
        "PR_NUMBER": "7",
        "MARKER": step["env"]["MARKER"],
    }

    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    writes = [call for call in calls if "--method" in call]
    assert len(writes) == 1
    method, path = writes[0][writes[0].index("--method") + 1], writes[0][writes[0].index("--method") + 2]
    assert method == expected
    assert path == ("repos/owner/repo/issues/comments/4242" if existing else "repos/owner/repo/issues/7/comments")
    body = (tmp_path / "comment.md").read_text()
    staging = "### Stack `staging`\n" if "staging" in reviewed else "### Stack `staging`\n\n⛔ no review (job log)\n\n"
    assert body.startswith(step["env"]["MARKER"] + "\n### Stack `dev`\n" + staging)


def test_drift_runs_every_stack_on_a_schedule_and_fails_the_job_on_drift_or_a_failed_check() -> None:
    workflow = ROOT / ".github" / "workflows" / "drift.yml"
    document = load(workflow)
    jobs = dict(jobs_of(workflow))
    stacks = [entry["stack"] for entry in jobs["drift"]["strategy"]["matrix"]["include"]] + ["prod"]

    assert set(triggers(document)) == {"schedule", "workflow_dispatch"}
    assert not (triggers(document)["workflow_dispatch"] or {}).get("inputs"), "drift takes no inputs"
    assert sorted(stacks) == sorted(path.name.split(".")[1] for path in ROOT.glob("Pulumi.*.yaml"))
    assert environment(jobs["drift-prod"]) == "prod"
    for job in jobs.values():
        (step,) = [step for step in job["steps"] if "make drift" in step.get("run", "")]
        assert step["run"].count("exit 1") == 2, "both drift (4) and a failed check fail the job"


@pytest.mark.parametrize(("code", "failed"), [(0, False), (4, True), (1, True)], ids=["clean", "drift", "unchecked"])
def test_drift_step_fails_visibly_and_keeps_the_summary(tmp_path: Path, code: int, failed: bool) -> None:
    (step,) = [s for s in load(ROOT / ".github" / "workflows" / "drift.yml")["jobs"]["drift"]["steps"] if "run" in s]
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho '### Drift of stack'\nexit {code}\n")
    fake.chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "STACK": "dev", "GITHUB_STEP_SUMMARY": str(summary)}

    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert (result.returncode != 0) == failed
    assert summary.read_text() == "### Drift of stack\n"
    assert ("::error::" in result.stdout) == failed
