"""Review binding without the engine: fingerprints of recorded previews, their differences, review files, the CLI."""

from __future__ import annotations

import copy
import hashlib
import http.server
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ops import review_gate, review_summary
from ops.__main__ import main
from ops.deploy import DeployRefusedError, hold_to_review
from ops.engine import Engine
from ops.review_gate import ReviewGateError, differences, fingerprint, load, plan_file, review_file, save
from ops.review_summary import SECRET_SIG_KEY
from tests.conftest import ROOT, serving
from tests.unit.ops.test_review_summary import recording
from tests.unit.tooling.test_make_inputs import Project, hostile

WEB_SERVICE = "hello-world:index:WebService"
DEPLOYMENT = f"`{WEB_SERVICE}$kubernetes:apps/v1:Deployment hello-world-deployment`"
IMAGE_PATH = "spec.template.spec.containers[0].image"
OTHER_IMAGE = "127.0.0.1:5000/hello-world-review@sha256:" + "1" * 64


def image_update(new_image: str | None = None) -> dict[str, Any]:
    preview: dict[str, Any] = copy.deepcopy(recording("update-image")["preview"])
    if new_image:
        (step,) = [s for s in preview["steps"] if s["op"] == "update"]
        step["newState"]["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"] = new_image
    return preview


def test_fingerprint_of_the_same_preview_has_no_differences(tmp_path: Path) -> None:
    first, second = fingerprint("staging", image_update(), tmp_path), fingerprint("staging", image_update(), tmp_path)

    assert differences(first, second) == []
    assert first.digest() == second.digest()


def test_differences_name_a_changed_image_digest_with_both_values(tmp_path: Path) -> None:
    reviewed = fingerprint("staging", image_update(), tmp_path)
    old, new = reviewed.changes[DEPLOYMENT.strip("`")]["fields"][IMAGE_PATH]

    found = differences(reviewed, fingerprint("staging", image_update(OTHER_IMAGE), tmp_path))

    assert found == [f"{DEPLOYMENT} `{IMAGE_PATH}`: reviewed {old} → {new}, now {old} → {OTHER_IMAGE}"]


def test_differences_name_a_change_the_review_did_not_show_and_one_it_showed_that_is_gone(tmp_path: Path) -> None:
    nothing = fingerprint("staging", {"steps": []}, tmp_path)
    update = fingerprint("staging", image_update(), tmp_path)

    # An image update changes the Deployment and replaces the verification Job, which checks that image.
    job = f"`{WEB_SERVICE}$kubernetes:batch/v1:Job hello-world-verify`"
    assert differences(nothing, update) == [
        f"{DEPLOYMENT}: reviewed no change, now update",
        f"{job}: reviewed no change, now replace",
    ]
    assert differences(update, nothing) == [
        f"{DEPLOYMENT}: reviewed update, now no change",
        f"{job}: reviewed replace, now no change",
    ]


def test_differences_name_a_changed_replacement_reason(tmp_path: Path) -> None:
    reviewed = fingerprint("staging", recording("replace-namespace")["preview"], tmp_path)
    now = copy.deepcopy(reviewed)
    key = next(iter(now.changes))
    now.changes[key]["replaceReasons"] = ["spec.selector"]

    (found,) = differences(reviewed, now)

    assert found.startswith(f"`{key}` replacement forced by: reviewed [")
    assert found.endswith("now ['spec.selector']")


def creating(inputs: dict[str, Any]) -> dict[str, Any]:
    urn = "urn:pulumi:qa::hello-world::hello-world:index:WebService$kubernetes:batch/v1:Job::hello-world-verify"
    return {"steps": [{"op": "create", "urn": urn, "newState": {"inputs": inputs}}]}


def test_fingerprint_of_a_create_holds_every_input_and_ignores_the_random_suffix_of_a_made_up_name(
    tmp_path: Path,
) -> None:
    first = creating({"metadata": {"name": "hello-world-verify-0a1b2c3d"}, "spec": {"backoffLimit": 0}})
    second = creating({"metadata": {"name": "hello-world-verify-99887766"}, "spec": {"backoffLimit": 1}})

    found = differences(fingerprint("qa", first, tmp_path), fingerprint("qa", second, tmp_path))

    assert found == [
        f"`{WEB_SERVICE}$kubernetes:batch/v1:Job hello-world-verify` `spec.backoffLimit`: reviewed (none) → 0, "
        "now (none) → 1"
    ]


def test_review_file_keeps_no_secret_in_plaintext(tmp_path: Path) -> None:
    secret = {SECRET_SIG_KEY: "1b47061264138c4ac30d75fd1eb44270", "value": "registry-password-plaintext"}
    reviewed = fingerprint("qa", creating({"data": {"password": secret}}), tmp_path)
    path = review_file(tmp_path, "qa")

    save(path, reviewed, "summary")

    assert "registry-password-plaintext" not in path.read_text()
    job = f"{WEB_SERVICE}$kubernetes:batch/v1:Job hello-world-verify"
    assert reviewed.changes[job]["fields"]["data.password"][1] == "[secret]"


BUILD = {"steps": [{"op": "same", "urn": "urn:pulumi:dev::p::x$docker-build:index:Image::app-image"}]}
PINNED_BASE = "127.0.0.1:5000/hello-pulumi/node-base@sha256:" + "b" * 64


def building_project(directory: Path, build: str) -> Path:
    """A project whose stack dev builds with ``build`` (its YAML mapping): Pulumi.yaml, the stack file, app/."""
    shutil.copy(ROOT / "Pulumi.yaml", directory)
    (directory / "Pulumi.dev.yaml").write_text(f"config:\n  hello-world:build:\n{build}")
    for context in ("app", "src"):
        (directory / context).mkdir()
        (directory / context / "server.js").write_text("'Hello World'")
    return directory


def test_fingerprint_of_a_build_changes_with_any_file_of_its_build_context(tmp_path: Path) -> None:
    project = building_project(tmp_path, f"    context: src\n    baseImage: {PINNED_BASE}\n")
    reviewed = fingerprint("dev", BUILD, project)
    (project / "app" / "server.js").write_text("'Hello Other World'")
    unchanged = fingerprint("dev", BUILD, project)
    (project / "src" / "server.js").write_text("'Hello Other World'")

    assert differences(reviewed, unchanged) == []  # app/ is not what this stack builds
    assert differences(reviewed, fingerprint("dev", BUILD, project)) == [
        "the build context differs from the reviewed source: another image would be built"
    ]
    assert reviewed.base_image == PINNED_BASE
    assert fingerprint("qa", image_update(), tmp_path).build_context is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", r"REVIEWED must be a review file saved by `make review SAVE=<dir>`, got .*qa.review.json: "),
        ("[]", r"REVIEWED must be a review file saved by `make review SAVE=<dir>`, got .*qa.review.json$"),
        ('{"version": 1, "stack": "qa", "changes": {}}', r"REVIEWED must be a review file of version 2, got 1$"),
        (
            '{"version": 2, "stack": "prod", "changes": {}}',
            r"REVIEWED must be a review of stack 'qa', got one of 'prod'$",
        ),
    ],
    ids=["not-json", "not-a-review", "other-version", "other-stack"],
)
def test_load_refuses_what_is_not_a_review_of_this_stack(tmp_path: Path, content: str, message: str) -> None:
    path = review_file(tmp_path, "qa")
    path.write_text(content)

    with pytest.raises(ReviewGateError, match=message):
        load(path, "qa")


def test_load_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReviewGateError, match=r"REVIEWED must be a review file .*, got .*missing.json: "):
        load(tmp_path / "missing.json", "qa")


def fake_preview(monkeypatch: pytest.MonkeyPatch, preview: dict[str, Any]) -> None:
    monkeypatch.setattr(review_gate, "preview_stack", lambda stack, work_dir, engine: (preview, []))


def held(directory: Path) -> Path:
    """A folder of its own for the plan an up is held to (what ``ops.deploy.run`` makes for it)."""
    folder = directory / "held"
    folder.mkdir(exist_ok=True)
    return folder


def saved_review(directory: Path, stack: str, preview: dict[str, Any], plan: bytes = b'{"resourcePlans": {}}') -> Path:
    """A review of ``preview`` saved in ``directory`` as `make review SAVE=...` saves it, with its update plan."""
    plan_file(directory, stack).write_bytes(plan)
    path = review_file(directory, stack)
    save(path, fingerprint(stack, preview, plan=plan_file(directory, stack)), "summary")
    return path


def test_an_up_held_to_its_review_goes_on_when_the_changes_are_those_reviewed_with_the_reviewed_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = saved_review(tmp_path, "staging", image_update())
    fake_preview(monkeypatch, image_update())
    said: list[str] = []

    plan = hold_to_review(Engine(), "staging", path, ROOT, said.append, into=held(tmp_path))

    message = f"Stack 'staging': the changes are those reviewed in {path}; the up runs with its update plan."
    assert said == [message]
    assert (plan.parent, plan.read_bytes()) == (tmp_path / "held", plan_file(tmp_path, "staging").read_bytes())


@pytest.mark.parametrize("plan", ["changed", "missing", "unrecorded"])
def test_an_up_held_to_its_review_is_refused_without_the_plan_reviewed_before_any_preview(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    monkeypatch.setattr(review_gate, "preview_stack", no_preview)
    path = saved_review(tmp_path, "staging", image_update())
    saved = plan_file(tmp_path, "staging")
    if plan == "changed":
        saved.write_text('{"resourcePlans": {"anything": "goes"}}')
    elif plan == "missing":
        saved.unlink()
    else:
        save(path, fingerprint("staging", image_update()), "summary")
    messages = {
        "changed": rf"^{re.escape(str(saved))} must be the update plan reviewed \(sha256 {SHA}\), got {SHA}$",
        "missing": rf"^REVIEWED needs its update plan {re.escape(str(saved))}, got: ",
        "unrecorded": rf"^REVIEWED must record the update plan saved with it, got none in {re.escape(str(path))}$",
    }

    with pytest.raises(ReviewGateError, match=messages[plan]):
        hold_to_review(Engine(), "staging", path, ROOT, print, into=held(tmp_path))


def test_an_up_held_to_its_review_is_refused_for_other_changes_and_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = saved_review(tmp_path, "staging", image_update())
    fake_preview(monkeypatch, image_update(OTHER_IMAGE))

    with pytest.raises(DeployRefusedError) as refused:
        hold_to_review(Engine(), "staging", path, ROOT, print, into=held(tmp_path))

    message = str(refused.value)
    assert message.startswith(f"deploy of stack 'staging' refused: its changes differ from the review in {path}:\n")
    assert f"  - {DEPLOYMENT} `{IMAGE_PATH}`: reviewed " in message
    assert message.endswith("Review the stack again, or deploy without REVIEWED.")


SHA = "[0-9a-f]{64}"


def no_preview(*args: object) -> None:
    raise AssertionError("no preview for a bad review")


def test_an_up_held_to_a_bad_review_file_is_refused_before_any_preview(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(review_gate, "preview_stack", no_preview)

    with pytest.raises(ReviewGateError, match="REVIEWED must be a review file saved by `make review SAVE=<dir>`"):
        hold_to_review(Engine(), "staging", tmp_path / "nope.json", ROOT, print, into=held(tmp_path))


def test_review_command_saves_each_stacks_review_for_deploys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def preview_saving_a_plan(stack: str, work_dir: Path, *, plan: Path) -> tuple[dict[str, Any], list[Any]]:
        plan.write_text('{"resourcePlans": {}}')  # what `pulumi preview --save-plan` writes, in short
        return image_update(), []

    monkeypatch.setattr(review_summary, "preview_stack", preview_saving_a_plan)

    assert main(["review", "--save", str(tmp_path), "staging"]) == 0

    saved = json.loads((tmp_path / "staging.review.json").read_text())
    assert saved["stack"] == "staging"
    assert saved["plan"] == hashlib.sha256(b'{"resourcePlans": {}}').hexdigest()
    assert saved["summary"].startswith("### Stack `staging`")
    assert f"Saved as `staging.review.json` (fingerprint `{saved['fingerprint'][:12]}`)." in capsys.readouterr().out


def test_review_command_refuses_a_save_folder_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["review", "--save", str(tmp_path / "nope"), "staging"]) == 2
    assert capsys.readouterr().err == f"error: SAVE must be an existing folder, got '{tmp_path / 'nope'}'\n"


def test_make_review_hands_save_over_as_one_argument(tmp_path: Path) -> None:
    for number, value in enumerate(hostile(tmp_path / "marker")):
        project = Project(tmp_path / str(number))
        project.marker = tmp_path / "marker"

        recorded = project.make("review", STACKS="dev", SAVE=value)

        assert recorded == [["record", "-m", "ops", "review", "--save", value, "dev"]]


def test_make_up_runs_nothing_from_reviewed(tmp_path: Path) -> None:
    for number, value in enumerate(hostile(tmp_path / "marker")):
        project = Project(tmp_path / str(number))
        project.marker = tmp_path / "marker"

        recorded = project.make("up", REVIEWED=value)

        assert ["record", "-m", "ops", "up", "dev", f"--reviewed={value}"] in recorded


CHANGE = {"op": "update", "fields": {"spec.replicas": ["2", "3"]}, "replaceReasons": []}


def review_record(**changed: Any) -> str:
    record = {"version": 2, "stack": "qa", "changes": {"kubernetes:apps/v1:Deployment d": CHANGE}, "buildContext": None}
    return json.dumps({**record, **changed})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (review_record(version=True), r"^REVIEWED must be a review file of version 2, got True$"),
        (review_record(version=2.0), r"^REVIEWED must be a review file of version 2, got 2\.0$"),
        (
            review_record(changes={"d": "update"}),
            r"REVIEWED must be a review file saved by `make review SAVE=<dir>`, got .*qa\.review\.json: "
            r"changes\['d'\] must be a mapping of op, fields and replaceReasons, got 'update'$",
        ),
        (
            review_record(changes={"d": {**CHANGE, "op": 3}}),
            r": changes\['d'\]\.op must be text, got 3$",
        ),
        (
            review_record(changes={"d": {**CHANGE, "fields": {"spec.replicas": "2"}}}),
            r": changes\['d'\]\.fields\['spec\.replicas'\] must be \[old, new\] of text, got '2'$",
        ),
        (
            review_record(changes={"d": {**CHANGE, "replaceReasons": "spec"}}),
            r": changes\['d'\]\.replaceReasons must be a list of text, got 'spec'$",
        ),
        (review_record(buildContext=7), r": buildContext must be a sha256 in hex or null, got 7$"),
        (review_record(plan="abc"), r": plan must be a sha256 in hex or null, got 'abc'$"),
        (
            review_record(baseImage="node:24-bookworm-slim"),
            r": baseImage must be an image pinned by digest or null, got 'node:24-bookworm-slim'$",
        ),
        ("[" * 100_000 + "]" * 100_000, r"got .*qa\.review\.json: it nests deeper than JSON may here$"),
    ],
    ids=[
        "version-true",
        "version-float",
        "change-not-mapping",
        "op",
        "field-pair",
        "reasons",
        "context",
        "plan",
        "base-image",
        "deep",
    ],
)
def test_load_refuses_a_malformed_review_file_with_a_named_error(tmp_path: Path, content: str, message: str) -> None:
    path = review_file(tmp_path, "qa")
    path.write_text(content)

    with pytest.raises(ReviewGateError, match=message):
        load(path, "qa")


def test_load_refuses_a_review_file_too_large_to_be_one_without_reading_it_whole(tmp_path: Path) -> None:
    path = review_file(tmp_path, "qa")
    limit = review_gate.MAX_REVIEW_BYTES
    with path.open("wb") as handle:
        handle.truncate(limit + 1)

    with pytest.raises(ReviewGateError, match=rf"^REVIEWED must be at most {limit} bytes, got {limit + 1}$"):
        load(path, "qa")


def test_load_reads_a_well_formed_review(tmp_path: Path) -> None:
    path = review_file(tmp_path, "qa")
    path.write_text(review_record())

    assert load(path, "qa").changes == {"kubernetes:apps/v1:Deployment d": CHANGE}


def updating_replicas(parent: str, old: int, new: int) -> dict[str, Any]:
    urn = f"urn:pulumi:qa::hello-world::{parent}$kubernetes:apps/v1:Deployment::web"
    state = {"inputs": {"spec": {"replicas": old}}}, {"inputs": {"spec": {"replicas": new}}}
    return {
        "op": "update",
        "urn": urn,
        "oldState": state[0],
        "newState": state[1],
        "detailedDiff": {"spec.replicas": {}},
    }


def test_fingerprint_keeps_resources_of_one_type_and_name_under_two_parents_apart(tmp_path: Path) -> None:
    reviewed = {"steps": [updating_replicas("a:index:Web", 3, 4), updating_replicas("b:index:Web", 3, 4)]}
    now = {"steps": [updating_replicas("a:index:Web", 3, 4), updating_replicas("b:index:Web", 3, 50)]}

    found = differences(fingerprint("qa", reviewed, tmp_path), fingerprint("qa", now, tmp_path))

    assert found == ["`b:index:Web$kubernetes:apps/v1:Deployment web` `spec.replicas`: reviewed 3 → 4, now 3 → 50"]


class _BaseImageRegistry(http.server.BaseHTTPRequestHandler):
    """A registry whose tag `node:24` is the digest in ``served`` (none: no such image)."""

    served: str | None = "sha256:" + "c" * 64

    def do_HEAD(self) -> None:
        served = type(self).served
        self.send_response(200 if served and self.path == "/v2/library/node/manifests/24" else 404)
        if served:
            self.send_header("Docker-Content-Digest", served)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_fingerprint_binds_a_base_image_tag_to_the_digest_its_registry_serves(tmp_path: Path) -> None:
    with serving(_BaseImageRegistry) as port:
        project = building_project(tmp_path, f"    baseImage: 127.0.0.1:{port}/library/node:24\n")
        environ = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "no-docker-config")}
        reviewed = fingerprint("dev", BUILD, project, environ=environ)
        _BaseImageRegistry.served = "sha256:" + "d" * 64
        try:
            moved = fingerprint("dev", BUILD, project, environ=environ)
            _BaseImageRegistry.served = None
            with pytest.raises(ReviewGateError) as gone:
                fingerprint("dev", BUILD, project, environ=environ)
        finally:
            _BaseImageRegistry.served = "sha256:" + "c" * 64

    assert reviewed.base_image == f"127.0.0.1:{port}/library/node:24@sha256:" + "c" * 64
    assert differences(reviewed, moved) == [
        f"the base image is now 127.0.0.1:{port}/library/node:24@sha256:{'d' * 64}, reviewed {reviewed.base_image}: "
        "another would be built"
    ]
    assert str(gone.value) == (
        f"the base image 127.0.0.1:{port}/library/node:24 must be served by its registry, got no such image"
    )


def test_fingerprint_takes_the_dockerfile_s_base_image_when_the_stack_sets_none(tmp_path: Path) -> None:
    project = building_project(tmp_path, "    context: src\n")
    (project / "src" / "Dockerfile").write_text(f"ARG BASE_IMAGE={PINNED_BASE}\nFROM ${{BASE_IMAGE}}\n")

    assert fingerprint("dev", BUILD, project).base_image == PINNED_BASE
