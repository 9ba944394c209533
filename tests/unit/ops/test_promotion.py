"""Promotion without an engine: the chain, the reference to pin, the command line, and the process's
behaviour under signals, a concurrent promotion and the policy pack (against a stand-in pulumi)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from image_ref import ImageRef
from ops import evidence
from ops.__main__ import parser, promotion_request
from ops.locking import StackLockedError, locked
from ops.policy_config import policy_config
from ops.promotion import PromotionError, Request, StackName, candidate, check_chain, stack_name
from settings.stack_files import StackFileError, set_settings
from tests import ops_process
from tests.conftest import ROOT, serving
from tests.ops_process import OpsProcess
from tests.unit.ops.stand_in_kubectl import install_kubectl

DIGEST = "sha256:" + "1" * 64
OLDER = "sha256:" + "2" * 64
SOURCE_REF = f"127.0.0.1:5000/hello-world@{DIGEST}"


def parse_args(argv: list[str]) -> Request:
    """``python -m ops promote ARGV`` as the command line reads it."""
    return promotion_request(parser().parse_args(["promote", *argv]))


@pytest.mark.parametrize(("source", "target"), [("dev", "staging"), ("staging", "prod")])
def test_chain_allows_the_next_stack(source: str, target: str) -> None:
    check_chain(source, target, out_of_chain=False)


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("dev", "prod", "--to after 'dev' must be 'staging' in the chain dev -> staging -> prod, got 'prod'"),
        ("staging", "dev", "--to after 'staging' must be 'prod' in the chain dev -> staging -> prod, got 'dev'"),
        ("prod", "dev", "--to after 'prod' must be nothing (it is the last stack) in the chain"),
        ("dev", "dev", "--to must be another stack than --from, got 'dev' for both"),
    ],
    ids=["skips-staging", "backwards", "past-the-end", "same-stack"],
)
def test_chain_refuses_other_targets(source: str, target: str, message: str) -> None:
    with pytest.raises(PromotionError, match=re.escape(message)):
        check_chain(source, target, out_of_chain=False)


def test_chain_flag_allows_skipping_a_stack() -> None:
    check_chain("dev", "prod", out_of_chain=True)


def test_candidate_is_the_source_reference_itself() -> None:
    assert str(candidate(SOURCE_REF, None)) == SOURCE_REF


def test_candidate_for_a_rollback_keeps_the_repository_and_takes_the_digest() -> None:
    assert str(candidate(SOURCE_REF, OLDER)) == f"127.0.0.1:5000/hello-world@{OLDER}"


def test_candidate_refuses_a_malformed_digest() -> None:
    with pytest.raises(PromotionError, match=re.escape("--digest must be sha256:<64 hex digits>, got 'sha256:abc'")):
        candidate(SOURCE_REF, "sha256:abc")


def test_candidate_refuses_a_source_running_a_tag() -> None:
    with pytest.raises(
        PromotionError, match=re.escape("must be pinned by digest, got '127.0.0.1:5000/hello-world:dev'")
    ):
        candidate("127.0.0.1:5000/hello-world:dev", None)


def test_command_line_reads_every_flag() -> None:
    request = parse_args(
        ["--from", "dev", "--to", "prod", "--digest", OLDER, "--yes", "--out-of-chain", "--wait", "2.5"]
    )

    assert request == Request(source="dev", target="prod", digest=OLDER, out_of_chain=True, yes=True, wait_seconds=2.5)


@pytest.mark.parametrize(
    ("given", "name"),
    [("staging", "staging"), ("organization/hello-world/staging", "staging"), ("acme/prod", "prod")],
    ids=["short", "org-project-stack", "org-stack"],
)
def test_stack_name_reads_the_stacks_own_name_from_a_qualified_one(given: str, name: str) -> None:
    assert stack_name(given, "--to") == StackName(given, name)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("acme/other/staging", "--to must name a stack of project 'hello-world' (org/hello-world/<stack>), got"),
        ("a/hello-world/b/staging", "--to must be a stack name or org/hello-world/<stack>, got"),
        ("acme//staging", "--to must be a stack name or org/hello-world/<stack>, got"),
        ("../staging", "--to must be a stack name or org/hello-world/<stack>, got"),
        ("stag ing", "--to must be a stack name or org/hello-world/<stack>, got"),
    ],
    ids=["other-project", "too-many-parts", "empty-part", "dot-dot", "space"],
)
def test_stack_name_refuses_other_projects_and_malformed_names(given: str, message: str) -> None:
    with pytest.raises(PromotionError, match=re.escape(f"{message} {given!r}")):
        stack_name(given, "--to")


def test_lock_held_by_another_process_refuses_after_the_wait_naming_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from ops.locking import locked\n"
            f"with locked(Path({str(tmp_path)!r}), 'staging', purpose='promotion dev -> staging'):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        started = time.monotonic()

        with (
            pytest.raises(
                StackLockedError,
                match=rf"stack 'staging' is locked by pid {holder.pid} \(promotion dev -> staging\) since \S+; "
                r"waited 0.3s for it",
            ),
            locked(tmp_path, "staging", purpose="review", wait_seconds=0.3),
        ):
            pass
        assert time.monotonic() - started >= 0.3
    finally:
        holder.kill()
        holder.wait()

    with locked(tmp_path, "staging", purpose="review", wait_seconds=0.3) as mine:
        assert mine.pid == os.getpid()


def test_lock_of_one_stack_leaves_other_stacks_free(tmp_path: Path) -> None:
    with (
        locked(tmp_path, "staging", purpose="promotion dev -> staging"),
        locked(tmp_path, "prod", purpose="promotion staging -> prod", wait_seconds=0),
    ):
        holder = tmp_path / ".state" / "locks" / "Pulumi.staging.yaml.lock.holder"
        assert holder.read_text().startswith(f"pid {os.getpid()} (promotion dev -> staging)")


def test_set_settings_changes_only_the_settings_it_is_given_and_keeps_comments_secrets_and_salt(
    tmp_path: Path,
) -> None:
    (tmp_path / "Pulumi.staging.yaml").write_text(
        "# staging runs a promoted image\n"
        "encryptionsalt: v1:abc\n"
        "config:\n"
        '  hello-world:replicas: "2"\n'
        "  hello-world:image: 127.0.0.1:5000/hello-world@sha256:" + "0" * 64 + "\n"
        "  hello-world:registryPassword:\n"
        "    secure: v1:cipher\n"
        "  other:key: value\n"
    )

    set_settings(
        tmp_path, "staging", {"image": SOURCE_REF, "promotion": {"from": "dev", "at": "2025-01-02T03:04:05+00:00"}}
    )

    assert (tmp_path / "Pulumi.staging.yaml").read_text() == (
        "# staging runs a promoted image\n"
        "encryptionsalt: v1:abc\n"
        "config:\n"
        '  hello-world:replicas: "2"\n'
        f"  hello-world:image: {SOURCE_REF}\n"
        "  hello-world:registryPassword:\n"
        "    secure: v1:cipher\n"
        "  other:key: value\n"
        "  hello-world:promotion:\n"
        "    from: dev\n"
        '    at: "2025-01-02T03:04:05+00:00"\n'
    )
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("prod", json.loads((ROOT / "policy" / "config" / "prod.json").read_text())),
        ("qa", {"all": "mandatory"}),
    ],
    ids=["own-config", "no-config-all-mandatory"],
)
def test_policy_config_is_the_stacks_own_or_every_rule_mandatory(stack: str, expected: dict[str, Any]) -> None:
    assert policy_config(ROOT, stack) == expected


def test_policy_config_refuses_a_name_that_is_not_a_stack() -> None:
    with pytest.raises(StackFileError, match=re.escape("a stack name must be letters, digits, '_', '.' or '-', got")):
        policy_config(ROOT, "../../etc/passwd")


def test_command_line_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--help"])

    assert exited.value.code == 0
    assert "dev -> staging -> prod" in " ".join(capsys.readouterr().out.split())


# --- Promotion as a process: signals, the lock, qualified names, the policy pack --------------------------------------
#
# These run `python -m ops promote` for real, against a stand-in `pulumi` on PATH (FAKE_PULUMI below) that
# answers the Automation API's commands and holds `pulumi up` until it is cancelled, and a stand-in registry
# that serves every digest. No engine, no platform: tests/engine/test_promotion.py runs the real CLI.

FAKE_PULUMI = """
import json, os, signal, sys, time
from pathlib import Path

args = [a for a in sys.argv[1:] if a != "--non-interactive"]
log = Path(os.environ["FAKE_PULUMI_LOG"])

def record(**entry):
    with log.open("a") as handle:
        handle.write(json.dumps(entry) + "\\n")

def flag(name):
    return args[args.index(name) + 1] if name in args else None

def stack_file():
    return Path.cwd() / f"Pulumi.{flag('--stack').split('/')[-1]}.yaml"

def events(kind):
    summary = {"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": {}, "policyPacks": {}}
    with open(flag("--event-log"), "a") as handle:
        handle.write(json.dumps({"sequence": 1, "timestamp": 0, "summaryEvent": summary}) + "\\n")
        handle.write(json.dumps({"sequence": 2, "timestamp": 0, "cancelEvent": {}}) + "\\n")

if args == ["version"]:
    print("v3.200.0")
    sys.exit(0)
def made(stack):  # the backend holds every stack but FAKE_PULUMI_MISSING's, unless `stack init` made it
    inits = [entry["args"] for entry in map(json.loads, log.read_text().splitlines()) if "args" in entry]
    missing = os.environ.get("FAKE_PULUMI_MISSING", "").split()
    return stack not in missing or any(a[:2] == ["stack", "init"] and stack in a for a in inits)

record(args=args)
if args[:2] == ["stack", "select"] and not made(flag("--stack")):
    print(f"error: no stack named '{flag('--stack')}' found", file=sys.stderr)
    sys.exit(255)
if args[:2] == ["stack", "output"]:
    print(json.dumps(json.loads(os.environ["FAKE_PULUMI_OUTPUTS"]).get(flag("--stack"), {})))
elif args[:2] == ["stack", "history"]:
    print("[]")
elif args[:2] == ["config", "set"]:
    with stack_file().open("a") as handle:
        handle.write(f"# config set by pulumi: {args[2:]}\\n")
elif args[0] in ("preview", "up") and "--policy-pack-config" in args:
    record(command=args[0], policy_config=json.loads(Path(flag("--policy-pack-config")).read_text()))
if args[0] == "preview":
    events("preview")
    if flag("--save-plan"):  # what the engine writes, in short
        Path(flag("--save-plan")).write_text(json.dumps({"resourcePlans": {}, "stack": flag("--stack")}))
    if os.environ.get("FAKE_PULUMI_PREVIEW") == "fail":
        print("error: preview failed", file=sys.stderr)
        sys.exit(1)
    print("Previewing update")
elif args[0] == "up":
    if flag("--plan"):
        record(plan=Path(flag("--plan")).read_text())
    def stop(signum, frame):
        record(signal=signal.Signals(signum).name, stack_file=stack_file().read_text())
        time.sleep(1)  # cancelling takes a while
        record(exited=True, stack_file=stack_file().read_text())
        events("up")  # the engine ends its event log, as the Automation API waits for it to
        sys.exit(255)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    record(up_started=True)
    time.sleep(60)
    sys.exit(1)
"""


EVIDENCE_KEY = Ed25519PrivateKey.generate()
"""Signs the evidence the stand-in registry serves; tests trust its public key (``evidence_env``)."""
_EVIDENCE_TAG = re.compile(r"/v2/(?P<repository>.+)/manifests/sha256-(?P<hex>[0-9a-f]{64})\.verified-(?P<stack>.+)")
_BLOBS: dict[str, bytes] = {}


def evidence_env(directory: Path) -> dict[str, str]:
    """The environment that trusts the stand-in registry's evidence: its public key in ``directory``."""
    path = directory / "evidence.pub"
    if not path.exists():
        path.write_bytes(
            EVIDENCE_KEY.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return {"HELLO_EVIDENCE_PUBLIC_KEY_FILE": str(path)}


class _Manifests(http.server.BaseHTTPRequestHandler):
    """Serves every digest, and for each one signed evidence that it passed verification in any stack."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Docker-Content-Digest", self.path.rsplit("/", 1)[-1])
        self.end_headers()

    def do_GET(self) -> None:
        found = _EVIDENCE_TAG.fullmatch(self.path)
        if found is not None:
            image = ImageRef(
                registry=self.headers["Host"], repository=found["repository"], digest=f"sha256:{found['hex']}"
            )
            check = evidence.PassedCheck(image=str(image), url="http://checked/", status=200, body="Hello")
            envelope = evidence.sign(
                evidence.statement(image, found["stack"], check, "abc1234", "2026-01-01T00:00:00+00:00"), EVIDENCE_KEY
            )
            digest = f"sha256:{hashlib.sha256(envelope).hexdigest()}"
            _BLOBS[digest] = envelope
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": evidence.ARTIFACT_TYPE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:" + "4" * 64, "size": 2},
                "layers": [{"mediaType": evidence.ENVELOPE_MEDIA_TYPE, "digest": digest, "size": len(envelope)}],
            }
            self._answer(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
            return
        blob = _BLOBS.get(self.path.rsplit("/", 1)[-1])
        if "/blobs/" in self.path and blob is not None:
            self._answer(blob, "application/octet-stream")
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def registry_serving_any_digest() -> Iterator[str]:
    """A registry on loopback that serves any digest it is asked for; yields its host:port."""
    with serving(_Manifests) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def fake_registry() -> Iterator[str]:
    with registry_serving_any_digest() as address:
        yield address


@dataclass
class Promotion:
    """A project copy whose dev stack runs ``image``, and a stand-in pulumi that logs what it was asked."""

    project: Path
    env: dict[str, str]
    log: Path
    image: str

    def start(self, *args: str, stdin: int = subprocess.DEVNULL) -> OpsProcess:
        return ops_process.start(["promote", *args], cwd=ROOT, env=self.env, stdin=stdin)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return ops_process.run(["promote", *args], cwd=ROOT, env=self.env, timeout=PROCESS_TIMEOUT_SECONDS)

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def wait_for(self, key: str, process: OpsProcess) -> None:
        deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
        while not any(key in entry for entry in self.entries()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"the stand-in pulumi never logged {key}: {self.entries()}"
            time.sleep(0.05)

    def stack_file(self, stack: str = "staging") -> bytes:
        return (self.project / f"Pulumi.{stack}.yaml").read_bytes()


PROCESS_TIMEOUT_SECONDS = 30


@pytest.fixture
def promotion(tmp_path: Path, fake_registry: str) -> Promotion:
    project = tmp_path / "project"
    project.mkdir()
    for path in [ROOT / "Pulumi.yaml", *ROOT.glob("Pulumi.*.yaml")]:
        shutil.copy2(path, project / path.name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(f"#!{sys.executable}\n{FAKE_PULUMI}")
    fake.chmod(0o755)
    install_kubectl(bin_dir)  # prod's Ingress names a class and a Secret, which a promotion to it asks the cluster for
    image = f"{fake_registry}/hello-world@{DIGEST}"
    log = tmp_path / "pulumi.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HELLO_PROJECT_DIR": str(project),
        "FAKE_PULUMI_LOG": str(log),
        "FAKE_PULUMI_OUTPUTS": json.dumps({"dev": {"imageRef": image, "verifiedImageRef": image}}),
        **evidence_env(tmp_path),
    }
    return Promotion(project=project, env=env, log=log, image=image)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["sigterm", "sighup", "sigint"])
def test_promotion_signalled_during_up_cancels_pulumi_waits_for_it_then_restores_the_stack_file(
    promotion: Promotion, signum: signal.Signals
) -> None:
    before = promotion.stack_file()
    process = promotion.start("--from", "dev", "--to", "staging", "--yes")
    promotion.wait_for("up_started", process)

    process.send_signal(signum)
    _, stderr = process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)

    assert process.returncode == 128 + signum, stderr
    cancelled = "pulumi up was cancelled and has exited; the target's settings were put back"
    assert f"error: interrupted by {signum.name}: {cancelled}" in stderr
    cancels = [entry for entry in promotion.entries() if "signal" in entry]
    assert [entry["signal"] for entry in cancels] == ["SIGINT"], "pulumi must get one graceful cancel"
    (exited,) = [entry for entry in promotion.entries() if "exited" in entry]
    assert promotion.image in exited["stack_file"], "the stack file was put back before pulumi had stopped"
    assert promotion.stack_file() == before


def test_promotion_pins_the_image_in_the_tracked_file_only_once_confirmed_and_a_signal_at_the_prompt_changes_nothing(
    promotion: Promotion,
) -> None:
    before = promotion.stack_file()
    terminal, answer_side = os.openpty()  # the prompt needs a terminal to ask on
    try:
        process = promotion.start("--from", "dev", "--to", "staging", stdin=answer_side)
        assert process.stdout is not None
        asked = ""
        while "[y/N]" not in asked:
            assert process.poll() is None, process.communicate()
            asked += process.stdout.read(1)
        # Every other reader of the tracked file (make up, render, git) would take an unconfirmed image for pinned.
        assert promotion.stack_file() == before, "the tracked file records the image only once it is confirmed"
        (preview,) = [entry["args"] for entry in promotion.entries() if entry.get("args", [""])[0] == "preview"]
        previewed = Path(preview[preview.index("--config-file") + 1]).read_text()
        assert promotion.image in previewed, "the preview runs this machine's copy, with the image pinned"

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
    finally:
        os.close(terminal)
        os.close(answer_side)

    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "error: interrupted by SIGTERM: nothing was deployed; the target's settings are as they were" in stderr
    assert not [entry for entry in promotion.entries() if entry.get("args", [""])[0] == "up"]
    assert promotion.stack_file() == before


def test_promotion_waits_for_the_lock_of_a_promotion_in_progress_then_refuses_naming_it(promotion: Promotion) -> None:
    before = promotion.stack_file()
    first = promotion.start("--from", "dev", "--to", "staging", "--yes")
    promotion.wait_for("up_started", first)
    during = promotion.stack_file()

    second = promotion.run("--from", "dev", "--to", "staging", "--yes", "--wait", "0.5")

    assert second.returncode == 1
    assert re.search(
        rf"error: stack 'staging' is locked by pid {first.pid} \(promotion dev -> staging\) since \S+; "
        r"waited 0.5s for it\. Let it finish \(or stop it\) and try again",
        second.stderr,
    ), second.stderr
    assert promotion.stack_file() == during
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
    assert promotion.stack_file() == before


@pytest.mark.parametrize("flags", [(), ("--out-of-chain",)], ids=["in-chain", "out-of-chain"])
def test_promotion_to_a_fully_qualified_stack_restores_that_stacks_file(
    promotion: Promotion, flags: tuple[str, ...]
) -> None:
    before = promotion.stack_file()
    promotion.env["FAKE_PULUMI_PREVIEW"] = "fail"

    result = promotion.run("--from", "dev", "--to", "organization/hello-world/staging", "--yes", *flags)

    assert result.returncode == 1
    assert "error: pulumi failed; the target's settings were restored" in result.stderr
    assert ["stack", "select", "--stack", "organization/hello-world/staging"] in [
        entry["args"] for entry in promotion.entries() if "args" in entry
    ]
    assert promotion.stack_file() == before
    assert sorted(path.name for path in promotion.project.iterdir() if path.is_file()) == sorted(
        ["Pulumi.yaml", *(path.name for path in ROOT.glob("Pulumi.*.yaml"))]
    )


def test_a_first_promotion_makes_the_target_stack_the_backend_lacks_and_previews_it(promotion: Promotion) -> None:
    before = promotion.stack_file()
    promotion.env["FAKE_PULUMI_MISSING"] = "staging"
    promotion.env["FAKE_PULUMI_PREVIEW"] = "fail"

    result = promotion.run("--from", "dev", "--to", "staging", "--yes")

    commands = [entry["args"] for entry in promotion.entries() if "args" in entry]
    (made,) = [index for index, args in enumerate(commands) if args[:2] == ["stack", "init"]]
    assert "staging" in commands[made], commands[made]
    assert any(args[0] == "preview" and "staging" in args for args in commands[made:]), commands
    assert "no stack named 'staging'" not in result.stderr, result.stderr
    assert "error: pulumi failed; the target's settings were restored" in result.stderr, result.stderr
    assert promotion.stack_file() == before


def test_promotion_previews_and_deploys_with_the_policy_pack_at_the_targets_enforcement(promotion: Promotion) -> None:
    process = promotion.start("--from", "dev", "--to", "staging", "--yes")
    promotion.wait_for("up_started", process)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)

    commands = [entry["args"] for entry in promotion.entries() if entry.get("args", [""])[0] in ("preview", "up")]
    assert [args[0] for args in commands] == ["preview", "up"]
    for args in commands:
        assert args[args.index("--policy-pack") + 1] == str(ROOT / "policy")
        assert args[args.index("--policy-pack-config") + 1] == str(ROOT / "policy" / "config" / "staging.json")


def test_promotion_to_a_stack_without_its_own_policy_config_runs_every_rule_mandatory(promotion: Promotion) -> None:
    shutil.copy2(promotion.project / "Pulumi.staging.yaml", promotion.project / "Pulumi.qa.yaml")
    promotion.env["FAKE_PULUMI_PREVIEW"] = "fail"

    promotion.run("--from", "dev", "--to", "qa", "--out-of-chain", "--yes")

    configs = [entry["policy_config"] for entry in promotion.entries() if "policy_config" in entry]
    assert configs == [{"all": "mandatory"}]


def distrusting(promotion: Promotion, tmp_path: Path) -> None:
    """The promotion trusts another key than the one the stand-in registry's evidence is signed with."""
    other = tmp_path / "other.pub"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    promotion.env["HELLO_EVIDENCE_PUBLIC_KEY_FILE"] = str(other)


@pytest.mark.parametrize("digest", [[], ["--digest", OLDER]], ids=["source-image", "rollback-by-digest"])
def test_promotion_refuses_evidence_the_trusted_key_did_not_sign_and_changes_nothing(
    promotion: Promotion, tmp_path: Path, digest: list[str]
) -> None:
    distrusting(promotion, tmp_path)
    before = promotion.stack_file()

    result = promotion.run("--from", "dev", "--to", "staging", "--yes", *digest)

    assert result.returncode == 1, result.stderr
    assert "must be signed by the trusted key" in result.stderr
    assert '--skip-verification "<reason>" (make promote ... REASON="<reason>")' in result.stderr
    assert not [entry for entry in promotion.entries() if entry.get("args", [""])[0] in ("preview", "up")]
    assert promotion.stack_file() == before


def test_promotion_without_trusted_evidence_goes_ahead_only_with_a_reason(promotion: Promotion, tmp_path: Path) -> None:
    distrusting(promotion, tmp_path)

    result = promotion.run(
        "--from", "dev", "--to", "staging", "--digest", OLDER, "--skip-verification", "hotfix, by hand"
    )

    previewed = [entry["args"] for entry in promotion.entries() if entry.get("args", [""])[0] == "preview"]
    assert previewed, result.stderr
    assert "not deploying without a terminal to confirm on" in result.stderr
    assert "Evidence:" not in result.stdout


def test_promotion_names_the_evidence_it_trusted(promotion: Promotion) -> None:
    result = promotion.run("--from", "dev", "--to", "staging")

    assert f"Evidence: {DIGEST} passed verification in stack 'dev'" in result.stdout, result.stdout + result.stderr
    assert f"hello-world:sha256-{'1' * 64}.verified-dev" in result.stdout
