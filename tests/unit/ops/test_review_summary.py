"""The review summary, on preview JSON recorded from the real engine (golden files).

Refresh the recordings with `make recordings` (needs the platform) and the golden Markdown
with `REFRESH_GOLDEN=1 make unit`; review the diff of both like any code change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from ops.review_summary import (
    UNKNOWN_SENTINEL,
    changes,
    code,
    plain,
    policy_events,
    preview_document,
    preview_stack,
    summarize,
    violations,
)
from tests import ops_process
from tests.conftest import ROOT
from tests.unit.ops.test_deploy import ops_project
from tests.unit.ops.test_promotion import fake_registry  # noqa: F401 - a fixture
from tests.unit.tooling.test_make_inputs import Project

RECORDINGS = ROOT / "tests" / "recordings"
IMAGE_TYPE = "hello-world:index:ContainerImage$docker-build:index:Image"
NAMES = sorted(path.stem for path in RECORDINGS.glob("*.json"))


def recording(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((RECORDINGS / f"{name}.json").read_text())
    return document


@pytest.mark.parametrize("name", NAMES)
def test_summary_of_recorded_preview_matches_its_golden_file(name: str) -> None:
    recorded = recording(name)
    golden = RECORDINGS / f"{name}.md"

    summary = summarize("staging", recorded["preview"], recorded["policyEvents"])

    if os.environ.get("REFRESH_GOLDEN"):
        golden.write_text(summary)
    assert summary == golden.read_text()


@pytest.mark.parametrize("name", NAMES)
def test_summary_of_the_recorded_engine_events_matches_the_same_golden_file(name: str) -> None:
    # What the review reads: the engine's events of the preview, as the Automation API hands them over.
    events = [auto.EngineEvent.from_json(event) for event in recording(name)["events"]]

    summary = summarize("staging", preview_document(events), policy_events(events))

    assert summary == (RECORDINGS / f"{name}.md").read_text()


def test_recordings_cover_update_replacement_policy_and_creation() -> None:
    assert {"create-staging", "update-image", "replace-namespace", "policy-violation"} <= set(NAMES)


def test_summary_counts_each_kind_of_change() -> None:
    assert "0 to create · 1 to update · 1 to replace · 0 to delete" in summarize(
        "staging", recording("update-image")["preview"]
    )
    assert "0 to create · 0 to update · 8 to replace · 0 to delete" in summarize(
        "staging", recording("replace-namespace")["preview"]
    )
    assert "0 to create · 1 to update · 0 to replace · 1 to delete" in summarize(
        "staging", recording("policy-violation")["preview"]
    )


def test_summary_writes_out_the_image_digest_change() -> None:
    preview = recording("update-image")["preview"]
    (step,) = [s for s in preview["steps"] if s["op"] == "update"]
    old = step["oldState"]["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"].split("@")[1]
    new = step["newState"]["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"].split("@")[1]

    assert f"image digest: `{old}` → `{new}`" in summarize("staging", preview)


def test_summary_flags_each_replacement_with_the_field_that_forces_it() -> None:
    found = changes(recording("replace-namespace")["preview"])

    assert {(c.name, tuple(c.replace_reasons)) for c in found} == {
        ("hello-world-namespace", ("metadata.name",)),
        ("hello-world-deployment", ("metadata.namespace",)),
        ("hello-world-service", ("metadata.namespace",)),
        ("hello-world-network-policy", ("metadata.namespace",)),
        ("hello-world-deny-egress", ("metadata.namespace",)),
        ("hello-world-verify-network-policy", ("metadata.namespace",)),
        ("hello-world-disruption-budget", ("metadata.namespace",)),
        ("hello-world-verify", ("metadata.namespace", "spec.template.spec.containers[0].env[0].value")),
    }
    summary = summarize("staging", recording("replace-namespace")["preview"])
    # One line per field that forces a replacement: the Job's check follows the namespace in its URL too.
    assert summary.count("⚠️ **replacement** forced by") == 9


def test_summary_lists_policy_violations_with_their_level() -> None:
    recorded = recording("policy-violation")

    (violation,) = violations(recorded["policyEvents"])

    assert violation.policy == "kubernetes-apps-v1-deployment-min-replicas"
    assert violation.level == "advisory"
    assert violation.resource == "hello-world-deployment"
    assert "spec.replicas is 1, expected at least 2" in summarize(
        "staging", recorded["preview"], recorded["policyEvents"]
    )


def test_summary_never_prints_a_secret_value() -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "plaintext": '"hunter2"'}
    preview = {
        "changeSummary": {"update": 1},
        "steps": [
            {
                "op": "update",
                "urn": f"urn:pulumi:dev::hello-world::{IMAGE_TYPE}::app-image",
                "oldState": {"inputs": {"registries": [{"password": secret}]}},
                "newState": {"inputs": {"registries": [{"password": secret}]}},
                "detailedDiff": {"registries[0].password": {"kind": "update"}},
            }
        ],
    }

    summary = summarize("dev", preview)

    assert "hunter2" not in summary
    assert "`registries[0].password`: [secret] → [secret]" in summary


def test_summary_says_when_a_new_image_is_only_known_after_up() -> None:
    old_ref = "127.0.0.1:5000/hello-world@sha256:" + "a" * 64
    preview = {
        "changeSummary": {"update": 1},
        "steps": [
            {
                "op": "update",
                "urn": "urn:pulumi:dev::hello-world::hello-world:index:WebService$kubernetes:apps/v1:Deployment::d",
                "oldState": {"inputs": {"spec": {"template": {"spec": {"containers": [{"image": old_ref}]}}}}},
                "newState": {"inputs": {"spec": {"template": {"spec": {"containers": [{"image": UNKNOWN_SENTINEL}]}}}}},
                "detailedDiff": {"spec.template.spec.containers[0].image": {"kind": "update"}},
            }
        ],
    }

    summary = summarize("dev", preview)

    assert f"`spec.template.spec.containers[0].image`: {old_ref} → (known after up)" in summary
    assert f"image digest: `sha256:{'a' * 64}` → (known after up) (a new build)" in summary


@pytest.mark.parametrize(
    ("stack", "expected"),
    [("staging", json.loads((ROOT / "policy" / "config" / "staging.json").read_text())), ("qa", {"all": "mandatory"})],
    ids=["own-config", "no-config-all-mandatory"],
)
def test_review_previews_every_stack_with_the_policy_pack_at_its_enforcement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: str, expected: dict[str, Any]
) -> None:
    project, env, log = ops_project(tmp_path, stack)
    shutil.copy2(ROOT / "Pulumi.staging.yaml", project / f"Pulumi.{stack}.yaml")
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    preview_stack(stack, project)

    (logged,) = [entry for entry in map(json.loads, log.read_text().splitlines()) if entry["args"][0] == "preview"]
    assert logged["args"][logged["args"].index("--policy-pack") + 1] == str(ROOT / "policy")
    assert logged["policy_config"] == expected


@pytest.mark.parametrize(
    ("stack", "expected"),
    [("prod", json.loads((ROOT / "policy" / "config" / "prod.json").read_text())), ("qa", {"all": "mandatory"})],
    ids=["own-config", "no-config-all-mandatory"],
)
def test_make_preview_and_up_run_the_policy_pack_at_the_stacks_enforcement(
    tmp_path: Path,
    stack: str,
    expected: dict[str, Any],
    service_port: int,
    fake_registry: str,  # noqa: F811 - the fixture
) -> None:
    _, env, log = ops_project(tmp_path, stack, service_port, registry=fake_registry)
    for command in ("preview", "up"):
        result = ops_process.run([command, stack], cwd=ROOT, env=env)
        assert result.returncode == 0, result.stderr
    assert f"The service answers at http://127.0.0.1:{service_port}/:\nHello World\n" in result.stdout

    runs = [json.loads(line) for line in log.read_text().splitlines()]
    (preview,) = [run for run in runs if run["args"][0] == "preview"]
    (up,) = [run for run in runs if run["args"][0] == "up"]
    for run in (preview, up):
        pack = run["args"][run["args"].index("--policy-pack") + 1]
        assert Path(pack) == ROOT / "policy"  # the pack beside the code, whichever project copy it deploys
        assert run["policy_config"] == expected


def test_an_up_refuses_a_review_of_another_stack_before_pulumi_previews_or_deploys(tmp_path: Path) -> None:
    _, env, log = ops_project(tmp_path, "qa")
    reviewed = tmp_path / "qa.review.json"
    reviewed.write_text('{"version": 2, "stack": "prod", "changes": {}}')

    result = ops_process.run(["up", "qa", f"--reviewed={reviewed}"], cwd=ROOT, env=env)

    assert result.returncode == 2
    assert "REVIEWED must be a review of stack 'qa', got one of 'prod'" in result.stderr
    runs = [json.loads(line)["args"][0] for line in log.read_text().splitlines()] if log.exists() else []
    assert not {"preview", "up"} & set(runs)


@pytest.mark.parametrize("target", ["preview", "destroy", "refresh"])
def test_make_refuses_reviewed_for_anything_but_an_up_before_anything_runs(tmp_path: Path, target: str) -> None:
    project = Project(tmp_path)
    reviewed = tmp_path / "dev.review.json"
    reviewed.write_text("{}")

    result = project.run(target, REVIEWED=str(reviewed))

    assert result.returncode == 2
    assert f"REVIEWED holds only an up to a review, got it for make {target}" in result.stderr
    assert not project.record.exists(), "python -m ops did not run"


def test_summary_says_app_changed_instead_of_a_context_hash() -> None:
    preview = {
        "changeSummary": {"update": 1},
        "steps": [
            {
                "op": "update",
                "urn": "urn:pulumi:dev::hello-world::hello-world:index:ContainerImage$"
                "docker-build:index:Image::app-image",
                "oldState": {"inputs": {"contextHash": "0311fd" + "0" * 58}},
                "newState": {"inputs": {}},
                "detailedDiff": {"contextHash": {"kind": "update"}},
            }
        ],
    }

    summary = summarize("dev", preview, app_changes=["app/server.js"])

    assert "  - app/ changed (`app/server.js`): a new image will be built" in summary
    assert "0311fd" not in summary


def test_summary_lists_rules_that_only_run_at_deploy_apart_from_violations() -> None:
    deferred = "can't run policy during preview: string value at .spec.image can't be known during preview"
    events = [
        {"policyEvent": {"policyName": "image-pinned", "enforcementLevel": "advisory", "message": deferred}},
        {"policyEvent": {"policyName": "min-replicas", "enforcementLevel": "mandatory", "message": "too few"}},
    ]

    summary = summarize("dev", {"changeSummary": {}}, events)

    violations, deferred_part = summary.split("Checked at deploy (the value is only known then):")
    assert "`min-replicas` (mandatory) on `(stack)`: too few" in violations
    assert "image-pinned" not in violations
    assert "`image-pinned` (advisory) on `(stack)`" in deferred_part


def test_summary_of_a_create_shows_what_a_reviewer_needs_and_not_every_input() -> None:
    summary = summarize("staging", recording("create-staging")["preview"])

    deployment = summary.split("`hello-world-deployment`\n", 1)[1]
    assert deployment.startswith("  - `metadata.namespace`: review-staging\n  - `spec.replicas`: 2\n")
    assert "  - `spec.ports[0].nodePort`: 31641\n" in summary
    assert "livenessProbe" not in summary
    assert "image digest:" not in summary  # the image line of a create already names its digest


HOSTILE = "ok\r\n<!-- hidden\n### Stack `prod`\n``` **bold** [link](http://x) <b>&amp; ~~gone~~ -->"
"""A value that would end its line, open an HTML comment, close a code span and start markup."""
JOB = "hello-world:index:WebService$kubernetes:batch/v1:Job"


def preview_with(value: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A preview whose every shown value, name, path, reason and policy field is ``value``."""
    preview = {
        "changeSummary": {"update": 1, "replace": 1},
        "steps": [
            {
                "op": "replace",
                "urn": f"urn:pulumi:dev::hello-world::{JOB}::{value}",
                "oldState": {"inputs": {"body": "Hello World", value: value}},
                "newState": {"inputs": {"body": value, value: "new"}},
                "detailedDiff": {"body": {"kind": "update"}, value: {"kind": "update"}},
                "replaceReasons": [value],
            },
            {
                "op": "update",
                "urn": f"urn:pulumi:dev::hello-world::{IMAGE_TYPE}::app-image",
                "oldState": {"inputs": {"contextHash": "0" * 64}},
                "newState": {"inputs": {}},
                "detailedDiff": {"contextHash": {"kind": "update"}},
            },
        ],
    }
    urn = f"urn:pulumi:dev::hello-world::{JOB}::{value}"
    events = [{"policyEvent": {"policyName": value, "enforcementLevel": value, "message": value, "resourceUrn": urn}}]
    return preview, events


def outside_code_spans(line: str) -> str:
    """What Markdown reads as markup on a line: code spans (CommonMark's rule) and backslash escapes left out."""
    kept, at = [], 0
    while at < len(line):
        if line[at] == "\\" and at + 1 < len(line):
            at += 2
            continue
        run = re.match(r"`+", line[at:])
        if run is None:
            kept.append(line[at])
            at += 1
            continue
        closer = re.compile(rf"(?<!`){run.group()}(?!`)").search(line, at + len(run.group()))
        kept.append("" if closer else run.group())
        at = closer.end() if closer else at + len(run.group())
    return "".join(kept)


def test_summary_keeps_hostile_values_inside_their_place() -> None:
    ordinary = summarize("dev", *preview_with("ok"), app_changes=["app/ok.js"]).splitlines()

    hostile = summarize("dev", *preview_with(HOSTILE), app_changes=[HOSTILE]).splitlines()

    # No value starts a line of its own: the summary has the lines it has for ordinary values, in order.
    assert [line[:3] for line in hostile] == [line[:3] for line in ordinary]
    assert "  - ⚠️ **replacement** forced by " in "\n".join(hostile)
    for mine, theirs in zip(ordinary, hostile, strict=True):
        markup = outside_code_spans(theirs)
        # Outside code spans, no comment opener, tag, code fence, link or emphasis survives unescaped.
        assert not set(markup.replace("**", "")) & set("<`[]*_~&"), theirs
        assert markup.count("**") == outside_code_spans(mine).count("**"), theirs
    assert "ok⏎\\<!-- hidden⏎### Stack \\`prod\\`⏎" in "\n".join(hostile)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("a`b", "``a`b``"),
        ("`start", "`` `start ``"),
        ("end``", "``` end`` ```"),
        (" padded ", "`  padded  `"),
        ("   ", "`   `"),
        ("", "` `"),
        ("one\ntwo\r\nthree", "`one⏎two⏎three`"),
        ("<!-- x", "`<!-- x`"),
    ],
    ids=["inner-backtick", "leading-backtick", "trailing-run", "padded", "only-spaces", "empty", "newlines", "comment"],
)
def test_code_span_fence_outlasts_the_values_own_backticks(value: str, shown: str) -> None:
    assert code(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("review-staging", "review-staging"),
        ("a\nb", "a⏎b"),
        ("<!-- x -->", "\\<!-- x -->"),
        ("**x** [y](z) `c` ~~d~~ _e_ &amp; \\", "\\*\\*x\\*\\* \\[y\\](z) \\`c\\` \\~\\~d\\~\\~ \\_e\\_ \\&amp; \\\\"),
        ("[secret]", "[secret]"),
    ],
    ids=["ordinary", "newline", "comment", "markup", "secret-marker"],
)
def test_plain_value_escapes_what_would_start_markup(value: str, shown: str) -> None:
    assert plain(value) == shown


def ingress_step(op: str, *rules: dict[str, Any], before: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    urn = (
        "urn:pulumi:prod::hello-world::hello-world:index:WebService$kubernetes:networking.k8s.io/v1:Ingress"
        "::hello-world-ingress"
    )
    step: dict[str, Any] = {"op": op, "urn": urn, "newState": {"inputs": {"spec": {"rules": list(rules)}}}}
    if before:
        step["oldState"] = {"inputs": {"spec": {"rules": list(before)}}}
        step["detailedDiff"] = {"spec.rules[1]": {"kind": "add"}}
    return step


def rule(host: str, *paths: tuple[str, str]) -> dict[str, Any]:
    routes = [{"path": path, "pathType": "Prefix", "backend": {"service": {"name": name}}} for path, name in paths]
    return {"host": host, "http": {"paths": routes}}


def test_summary_of_an_ingress_says_which_service_answers_each_host_and_path() -> None:
    main = rule("hello.example.com", ("/", "hello-world"), ("/v2", "hello-v2"))
    preview = {"steps": [ingress_step("create", main, rule("beta.example.com", ("/", "beta")))]}

    summary = summarize("prod", preview)

    assert (
        "  - routes: `hello.example.com/ → hello-world`, `hello.example.com/v2 → hello-v2`, "
        "`beta.example.com/ → beta`\n" in summary
    )


def test_summary_of_an_ingress_update_shows_the_routes_after_it_only_when_they_change() -> None:
    before = rule("hello.example.com", ("/", "hello-world"))
    added = ingress_step("update", before, rule("v2.example.com", ("/", "hello-v2")), before=(before,))
    same = ingress_step("update", before, before=(before,))

    assert "  - routes, after the change: `hello.example.com/ → hello-world`, `v2.example.com/ → hello-v2`\n" in (
        summarize("prod", {"steps": [added]})
    )
    assert "routes" not in summarize("prod", {"steps": [same]})
