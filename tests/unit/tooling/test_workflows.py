"""The GitHub Actions workflows shipped for users: valid, calling only make targets we test, safe with their inputs.

Inputs and event fields reach scripts only as checked data, and no pull request's job can decrypt prod.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LOCAL_ACTIONS = ROOT / ".github" / "actions"
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
PROD_ENVIRONMENTS = {"prod-review", "prod"}
"""Where prod's passphrase may be: the job that previews prod before its approval, and the approved job."""
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


def test_workflows_give_prods_passphrase_only_to_jobs_in_the_prod_environments() -> None:
    for workflow in WORKFLOWS:
        for job_name, job in jobs_of(workflow):
            for secrets in secrets_per_run(job):
                where = f"{workflow.name} job {job_name}"
                assert "PULUMI_CONFIG_PASSPHRASE" not in secrets, f"{where}: use the passphrase of one stack"
                if "PULUMI_CONFIG_PASSPHRASE_PROD" in secrets:
                    assert environment(job) in PROD_ENVIRONMENTS, (
                        f"{where}: prod's passphrase only in {PROD_ENVIRONMENTS}"
                    )


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


# `uses: owner/repo@<full commit sha>  # v<release>`: a tag can be moved to other code, a commit cannot.
PINNED_USE = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40}  # v\d+(\.\d+){0,2}$")
# Or one of this repository's own actions, which the checked-out commit pins.
LOCAL_USE = re.compile(r"^\s*(?:- )?uses: \./\.github/actions/([a-z-]+)$")


def test_every_action_is_pinned_by_its_full_commit_sha_with_its_release_named() -> None:
    for workflow in WORKFLOWS:
        uses = [line for line in workflow.read_text().splitlines() if re.match(r"^\s*(- )?uses:", line)]

        assert uses, f"{workflow.name} uses no action"
        for line in uses:
            local = LOCAL_USE.match(line)
            assert PINNED_USE.match(line) or (local and (LOCAL_ACTIONS / local[1] / "action.yml").is_file()), (
                f"{workflow.name}: pin by full commit SHA with `# v<release>`: {line.strip()}"
            )


def test_our_actions_validate_against_the_github_action_schema_and_pass_yamllint() -> None:
    actions = sorted(map(str, LOCAL_ACTIONS.glob("*/action.yml")))
    schema = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions", *actions]
    lint = [str(BIN / "yamllint"), "-d", YAMLLINT_CONFIG, *actions]

    assert actions
    for command in (schema, lint):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def run_evidence_keys(tmp_path: Path, **inputs: str) -> dict[str, str]:
    """Runs the evidence-keys action's script as the runner would; returns what it adds to the job's env."""
    (step,) = load(LOCAL_ACTIONS / "evidence-keys" / "action.yml")["runs"]["steps"]
    env_file = tmp_path / "github_env"
    env = {
        "PATH": "/usr/bin:/bin",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_ENV": str(env_file),
        "SIGNING_KEY": inputs.get("signing_key", ""),
        "PUBLIC_KEY": inputs["public_key"],
    }
    assert set(step["env"]) == {"SIGNING_KEY", "PUBLIC_KEY"}
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], env=env, check=True)
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines())


def test_evidence_keys_are_written_for_this_user_only_and_named_in_the_jobs_env(tmp_path: Path) -> None:
    added = run_evidence_keys(tmp_path, signing_key="PRIVATE $(touch pwned)", public_key="PUBLIC")

    assert set(added) == {"HELLO_EVIDENCE_KEY_FILE", "HELLO_EVIDENCE_PUBLIC_KEY_FILE"}
    assert Path(added["HELLO_EVIDENCE_KEY_FILE"]).read_text() == "PRIVATE $(touch pwned)\n"
    assert Path(added["HELLO_EVIDENCE_PUBLIC_KEY_FILE"]).read_text() == "PUBLIC\n"
    assert {Path(path).stat().st_mode & 0o777 for path in added.values()} == {0o600}
    assert not (tmp_path / "pwned").exists()


def test_a_job_that_only_checks_evidence_gets_no_signing_key_file(tmp_path: Path) -> None:
    added = run_evidence_keys(tmp_path, public_key="PUBLIC")

    assert set(added) == {"HELLO_EVIDENCE_PUBLIC_KEY_FILE"}
    assert not (tmp_path / "evidence-key.pem").exists()


def test_only_jobs_that_deploy_give_the_evidence_action_the_signing_key() -> None:
    for workflow in WORKFLOWS:
        for job_name, job in jobs_of(workflow):
            for step in steps_using(job, "./.github/actions/evidence-keys"):
                deploys = any(re.search(r"make (up|promote)\b", s.get("run", "")) for s in job["steps"])
                reviews_only = any("--save-review" in s.get("run", "") for s in job["steps"])
                signs = "signing-key" in step.get("with", {})
                assert signs == (deploys and not reviews_only), f"{workflow.name} job {job_name}"


def test_every_checkout_keeps_no_token_in_the_git_config() -> None:
    for workflow in WORKFLOWS:
        for job_name, job in jobs_of(workflow):
            for step in steps_using(job, "actions/checkout"):
                assert step.get("with", {}).get("persist-credentials") is False, (
                    f"{workflow.name} job {job_name}: persist-credentials: false (a push gets its token itself)"
                )


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


# --- deploy-dev.yml takes a review only from this repository's own pull-request run (never a fork's) -----------------

FAKE_GH_API = """
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "api":
    path = next(arg for arg in args[1:] if arg.startswith("repos/"))
    answer = json.dumps(json.loads(os.environ["FAKE_GH_ANSWERS"])[path])
    # gh --jq prints as `jq -r` does
    expression = args[args.index("--jq") + 1]
    sys.exit(subprocess.run(["jq", "-r", expression], input=answer, text=True, check=False).returncode)
"""
HEAD = "a" * 40
MERGE = "b" * 40
REPOSITORY = "owner/repo"


def pull_request_answers(
    *,
    head_repo: str = REPOSITORY,
    path: str = ".github/workflows/pull-request.yml",
    event: str = "pull_request",
    run_repo: str = REPOSITORY,
    merged: bool = True,
) -> dict[str, Any]:
    """What the GitHub API answers deploy-dev.yml about the merged pull request and its review run."""
    pull = {"merge_commit_sha": MERGE if merged else "c" * 40, "head": {"sha": HEAD, "repo": {"full_name": head_repo}}}
    run = {
        "path": path,
        "event": event,
        "head_repository": {"full_name": run_repo},
        "head_sha": HEAD,
        "conclusion": "success",
    }
    return {
        f"repos/{REPOSITORY}/commits/{MERGE}/pulls": [pull],
        f"repos/{REPOSITORY}/actions/workflows/pull-request.yml/runs": {"workflow_runs": [{"id": 42}]},
        f"repos/{REPOSITORY}/actions/runs/42": run,
    }


def run_fetch_step(tmp_path: Path, answers: dict[str, Any]) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    (job,) = [job for _, job in jobs_of(ROOT / ".github" / "workflows" / "deploy-dev.yml")]
    (step,) = [step for step in job["steps"] if "gh run download" in step.get("run", "")]
    fake = tmp_path / "bin" / "gh"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\n{FAKE_GH_API}")
    fake.chmod(0o755)
    log = tmp_path / "gh.log"
    env = {
        **{key: value for key, value in step["env"].items() if "${{" not in value},
        "PATH": f"{fake.parent}:/usr/bin:/bin",
        "FAKE_GH_LOG": str(log),
        "FAKE_GH_ANSWERS": json.dumps(answers),
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_SHA": MERGE,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "dev.md").write_text("reviewed\n")
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result, [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def downloads(calls: list[Any]) -> list[Any]:
    return [call for call in calls if call[:2] == ["run", "download"]]


def test_deploy_dev_takes_the_review_of_this_repositorys_own_pull_request_run(tmp_path: Path) -> None:
    result, calls = run_fetch_step(tmp_path, pull_request_answers())

    assert result.returncode == 0, result.stdout + result.stderr
    assert downloads(calls) == [
        ["run", "download", "42", "--repo", REPOSITORY, "--name", "review-dev", "--dir", "review"]
    ]
    runs = next(call for call in calls if "actions/workflows/pull-request.yml/runs" in " ".join(call))
    assert [f"head_sha={HEAD}", "event=pull_request", "status=success"] == [
        runs[index + 1] for index, arg in enumerate(runs) if arg == "-f"
    ][:3]


@pytest.mark.parametrize(
    ("answers", "said"),
    [
        (pull_request_answers(head_repo="attacker/repo"), "a fork's pull request is never deployed"),
        (pull_request_answers(run_repo="attacker/repo"), "its review-dev artifact is not trusted"),
        (pull_request_answers(path=".github/workflows/forged.yml"), "its review-dev artifact is not trusted"),
        (pull_request_answers(event="pull_request_target"), "its review-dev artifact is not trusted"),
        (pull_request_answers(merged=False), "came from no merged pull request"),
    ],
    ids=["fork-pull-request", "run-from-a-fork", "other-workflow-file", "other-event", "not-this-merge"],
)
def test_deploy_dev_refuses_a_review_it_cannot_trust_and_downloads_nothing(
    tmp_path: Path, answers: dict[str, Any], said: str
) -> None:
    result, calls = run_fetch_step(tmp_path, answers)

    assert result.returncode != 0
    assert said in result.stdout
    assert downloads(calls) == []


# --- promote.yml: prod is previewed before its approval, and exactly that is applied ---------------------------------


def test_prod_is_previewed_before_its_approval_and_the_approved_job_applies_exactly_that_review() -> None:
    jobs = dict(jobs_of(ROOT / ".github" / "workflows" / "promote.yml"))
    review, prod = jobs["prod-review"], jobs["prod"]
    review_script = "\n".join(step.get("run", "") for step in review["steps"])
    prod_script = "\n".join(step.get("run", "") for step in prod["steps"])
    (upload,) = steps_using(review, "actions/upload-artifact")
    (download,) = steps_using(prod, "actions/download-artifact")

    assert environment(review) == "prod-review"
    assert environment(prod) == "prod"
    assert 'make promote FROM=staging TO=prod ARGS="--save-review review"' in review_script
    assert "$GITHUB_STEP_SUMMARY" in review_script, "the approver reads the preview in the run's summary"
    assert upload["with"]["name"] == download["with"]["name"] == "review-prod"
    assert "prod-review" in prod["needs"]
    assert prod["if"] == "needs.prod-review.outputs.reviewed == 'true'"
    assert 'make promote FROM=staging TO=prod ARGS="--yes --reviewed review/prod.review.json"' in prod_script
    assert "--save-review" not in prod_script
    # Both check out the commit the staging job recorded: never whatever reached main meanwhile.
    (review_checkout,) = steps_using(review, "actions/checkout")
    (prod_checkout,) = steps_using(prod, "actions/checkout")
    assert review_checkout["with"]["ref"] == prod_checkout["with"]["ref"] == "${{ needs.staging.outputs.commit }}"
    assert jobs["staging"]["outputs"]["commit"] == "${{ steps.record.outputs.commit }}"
    assert not re.search(r"git (pull|merge|fetch)", review_script + prod_script)


def test_promotions_are_recorded_by_the_record_script_after_each_make_promote_that_deploys() -> None:
    jobs = dict(jobs_of(ROOT / ".github" / "workflows" / "promote.yml"))
    for name, (source, target) in {"staging": ("dev", "staging"), "prod": ("staging", "prod")}.items():
        runs = [step.get("run", "") for step in jobs[name]["steps"]]
        promote = next(index for index, run in enumerate(runs) if f"make promote FROM={source} TO={target}" in run)

        assert f".github/scripts/record-promotion.sh {source} {target}" in runs[promote + 1]
        assert not any("git commit" in run or "git push" in run for run in runs), "the script alone commits"


# --- .github/scripts/record-promotion.sh: a no-op records nothing, a refused push is said ----------------------------

RECORD = ROOT / ".github" / "scripts" / "record-promotion.sh"
PINNED = "  hello-world:image: 127.0.0.1:5000/hello-world@sha256:" + "1" * 64 + "\n"


def git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


@dataclass
class Checkout:
    """A checkout of main with a remote of its own, as the promote job has it."""

    work: Path
    remote: Path
    other: Path

    def record(self, source: str, target: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        output = self.work.parent / "output"
        output.write_text("")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.work.parent),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.work.parent / "summary"),
        }
        result = subprocess.run(
            ["bash", str(RECORD), source, target],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result, dict(line.split("=", 1) for line in output.read_text().splitlines())

    def main_moves(self, file: str, text: str) -> None:
        git(self.other, "pull", "-q", "origin", "main")
        (self.other / file).write_text(text)
        git(self.other, "commit", "-qam", f"someone changes {file}")
        git(self.other, "push", "-q", "origin", "HEAD:main")


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(remote), str(seed))
    git(seed, "checkout", "-q", "-b", "main")
    for name in ("Pulumi.staging.yaml", "Pulumi.prod.yaml", "README.md"):
        (seed / name).write_text("config:\n")
    git(seed, "add", ".")
    git(seed, "commit", "-qm", "seed")
    git(seed, "push", "-q", "origin", "main")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    return Checkout(work=work, remote=remote, other=seed)


def test_record_of_a_promotion_that_changed_nothing_succeeds_saying_so(checkout: Checkout) -> None:
    head = git(checkout.work, "rev-parse", "HEAD").strip()

    result, output = checkout.record("dev", "staging")

    assert result.returncode == 0, result.stderr
    assert "Nothing was promoted from dev to staging: staging already runs that image" in result.stdout
    assert output == {"commit": head, "promoted": "false"}
    assert git(checkout.remote, "rev-parse", "main").strip() == head


def test_record_of_a_promotion_commits_only_the_target_file_and_pushes_it(checkout: Checkout) -> None:
    (checkout.work / "Pulumi.staging.yaml").write_text("config:\n" + PINNED)

    result, output = checkout.record("dev", "staging")

    assert result.returncode == 0, result.stderr
    assert output["promoted"] == "true"
    assert git(checkout.remote, "rev-parse", "main").strip() == output["commit"]
    assert git(checkout.remote, "show", "--format=%s", "--name-only", "main").split() == [
        "Promote",
        "dev",
        "to",
        "staging",
        "Pulumi.staging.yaml",
    ]


def test_record_after_main_moved_is_put_on_top_of_main(checkout: Checkout) -> None:
    checkout.main_moves("README.md", "changed meanwhile\n")
    (checkout.work / "Pulumi.staging.yaml").write_text("config:\n" + PINNED)

    result, output = checkout.record("dev", "staging")

    assert result.returncode == 0, result.stderr
    assert git(checkout.remote, "log", "--format=%s", "main").splitlines()[:2] == [
        "Promote dev to staging",
        "someone changes README.md",
    ]
    assert output["commit"] == git(checkout.remote, "rev-parse", "main").strip()


def test_record_that_main_refuses_fails_saying_the_target_runs_it_unrecorded(checkout: Checkout) -> None:
    checkout.main_moves("Pulumi.staging.yaml", "config:\n  hello-world:replicas: '5'\n")
    (checkout.work / "Pulumi.staging.yaml").write_text("config:\n" + PINNED)

    result, output = checkout.record("dev", "staging")

    assert result.returncode == 1
    assert "::error::staging runs the image promoted from dev, but main refused its record" in result.stdout
    assert "NOT recorded" in result.stdout
    assert PINNED.strip() in (checkout.work.parent / "summary").read_text(), "the commit to apply by hand is shown"
    assert "promoted" not in output


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
