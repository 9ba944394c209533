"""ops/deploy.py and ops/stack_copy.py: what a preview or an up of a stack prepares before pulumi runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from ops.policy_config import MANDATORY_POLICY_CONFIG, policy_config
from ops.program_copy import copy_program
from ops.review_gate import Fingerprint, plan_file, review_file, save
from ops.stack_copy import local_password_to_set, remember_password, stack_copy_file, write_stack_copy
from settings.local_platform import uses_local_platform
from tests import ops_process
from tests.conftest import ROOT
from tests.unit.ops.stand_in_kubectl import install_kubectl
from tests.unit.ops.test_promotion import fake_registry  # noqa: F401 - a fixture

LOCAL_REGISTRY = "127.0.0.1:5000"
BUILDS_LOCALLY = {"hello-world:build": {"registry": LOCAL_REGISTRY, "username": "hello"}}
OTHER_CLUSTER = {
    "hello-world:image": "registry.example.com/hello-world@sha256:" + "ab" * 32,
    "hello-world:cluster": {"kubeconfig": "/elsewhere/kubeconfig"},
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: hello-world\nruntime: python\n")
    (tmp_path / "policy" / "config").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def platform(tmp_path: Path) -> dict[str, str]:
    password_file = tmp_path / "registry-password"
    password_file.write_text("generated-password")
    return {
        "HELLO_REGISTRY": LOCAL_REGISTRY,
        "HELLO_REGISTRY_PASSWORD_FILE": str(password_file),
        "HELLO_KUBECONFIG": "/var/lib/hello-pulumi/kube/admin.kubeconfig",
    }


def write_stack(project: Path, stack: str, config: Mapping[str, object]) -> None:
    (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": dict(config)}))


def store_password(project: Path, stack: str, ciphertext: str) -> Path:
    """What `pulumi config set --secret registryPassword` leaves in this machine's copy."""
    copy = stack_copy_file(project, stack)
    document = yaml.safe_load(copy.read_text())
    document["config"]["hello-world:registryPassword"] = {"secure": ciphertext}
    copy.write_text(yaml.safe_dump(document))
    return copy


def test_a_local_stack_gets_a_private_copy_its_policy_config_and_the_local_password(
    project: Path, platform: dict[str, str]
) -> None:
    write_stack(project, "dev", BUILDS_LOCALLY)
    (project / "policy" / "config" / "dev.json").write_text('{"all": "advisory"}')

    copy = write_stack_copy(project, "dev")

    assert copy == stack_copy_file(project, "dev")
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    assert policy_config(project, "dev") == {"all": "advisory"}
    assert local_password_to_set(project, "dev", {"build": BUILDS_LOCALLY["hello-world:build"]}, copy, platform)
    assert uses_local_platform(project, "dev", platform)


def test_a_stack_elsewhere_without_its_own_policy_config_is_held_to_every_rule(
    project: Path, platform: dict[str, str]
) -> None:
    write_stack(project, "qa", OTHER_CLUSTER)

    copy = write_stack_copy(project, "qa")

    assert policy_config(project, "qa") == MANDATORY_POLICY_CONFIG
    assert not local_password_to_set(project, "qa", {"image": OTHER_CLUSTER["hello-world:image"]}, copy, platform)
    assert uses_local_platform(project, "qa", platform) == []


@pytest.fixture
def remembered(project: Path, platform: dict[str, str]) -> Path:
    """dev builds into the local registry; its copy holds a password that `make up` stored and remembered."""
    write_stack(project, "dev", BUILDS_LOCALLY)
    write_stack_copy(project, "dev")
    copy = store_password(project, "dev", "v1:first-ciphertext")
    remember_password(project, "dev", copy, Path(platform["HELLO_REGISTRY_PASSWORD_FILE"]))
    return copy


def test_the_password_is_kept_once_remembered_and_set_again_when_either_side_changes(
    project: Path, platform: dict[str, str], remembered: Path
) -> None:
    copy = remembered
    password_file = Path(platform["HELLO_REGISTRY_PASSWORD_FILE"])

    def to_set() -> bool:
        return local_password_to_set(project, "dev", {"build": BUILDS_LOCALLY["hello-world:build"]}, copy, platform)

    assert not to_set()
    store_password(project, "dev", "v1:another-ciphertext")
    assert to_set()
    remember_password(project, "dev", copy, password_file)
    assert not to_set()
    # The platform writes a new password: a new file, or new times on the old one.
    os.utime(password_file, ns=(1, 1))
    assert to_set()


def test_the_remembered_password_holds_nothing_derived_from_the_password(project: Path, remembered: Path) -> None:
    marks = list((project / ".state" / "stacks").glob("*.registry-password.json"))

    assert len(marks) == 1
    assert "generated-password" not in marks[0].read_text()


@pytest.mark.parametrize(
    ("settings", "environment"),
    [
        ({"build": {"registry": "registry.example.com", "username": "u"}}, {}),
        ({"image": "127.0.0.1:5000/hello-world@sha256:" + "ab" * 32}, {}),
        ({"build": {"registry": LOCAL_REGISTRY, "username": "u"}}, {"HELLO_REGISTRY_PASSWORD_FILE": "/nonexistent"}),
    ],
    ids=["another-registry", "no-build", "no-password-file"],
)
def test_no_password_is_set_for_a_stack_that_does_not_push_to_the_local_registry(
    project: Path, platform: dict[str, str], settings: dict[str, object], environment: dict[str, str]
) -> None:
    copy = project / "copy.yaml"
    copy.write_text("config: {}\n")

    assert not local_password_to_set(project, "dev", settings, copy, {**platform, **environment})


@pytest.mark.parametrize("command", ["preview", "up", "destroy", "refresh"])
def test_an_unknown_stack_is_refused_naming_the_stacks_there_are_before_anything_runs(
    project: Path, command: str
) -> None:
    write_stack(project, "dev", BUILDS_LOCALLY)
    result = ops_process.run(
        [command, "nope"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HELLO_PROJECT_DIR": str(project), "PATH": "/nonexistent"},
    )

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: STACK must be one of dev, got 'nope'\n"
    assert not (project / ".state").exists()


OPS_FAKE_PULUMI = """
import json, os, signal, sys, time
from pathlib import Path

args = [a for a in sys.argv[1:] if a != "--non-interactive"]
if args == ["version"]:
    print("v3.200.0")
    sys.exit(0)
config = Path(args[args.index("--policy-pack-config") + 1]) if "--policy-pack-config" in args else None
entry = {"args": args, "policy_config": json.loads(config.read_text()) if config else None}
if "--config-file" in args:
    entry["config_file"] = Path(args[args.index("--config-file") + 1]).read_text()
if "--plan" in args:
    entry["plan"] = Path(args[args.index("--plan") + 1]).read_text()
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\\n")
if os.environ.get("FAKE_OPEN_FAILS") and args[:2] in (["stack", "select"], ["stack", "init"]):
    print("error: unable to open state directory", file=sys.stderr)
    sys.exit(1)
if "--event-log" in args:  # the Automation API reads the engine's events, and waits for the summary
    stack = {"type": "pulumi:pulumi:Stack", "outputs": {"nodePort": int(os.environ["FAKE_NODE_PORT"])}}
    if os.environ.get("FAKE_SERVICE_URLS"):
        stack["outputs"]["serviceUrls"] = json.loads(os.environ["FAKE_SERVICE_URLS"])
    outputs = {"metadata": {"op": "same", "type": stack["type"], "new": stack, "provider": ""}}
    summary = {"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": {}, "policyPacks": {}}
    with open(args[args.index("--event-log") + 1], "a") as events:
        events.write(json.dumps({"sequence": 1, "timestamp": 0, "resOutputsEvent": outputs}) + "\\n")
        events.write(json.dumps({"sequence": 2, "timestamp": 0, "summaryEvent": summary}) + "\\n")
        events.write(json.dumps({"sequence": 3, "timestamp": 0, "cancelEvent": {}}) + "\\n")
if args[0] == "up" and os.environ.get("FAKE_UP_SECONDS"):
    def stop(signum, frame):
        with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
            log.write(json.dumps({"args": ["signal"], "signal": signal.Signals(signum).name}) + "\\n")
        sys.exit(255)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print("Updating (qa):", flush=True)
    time.sleep(float(os.environ["FAKE_UP_SECONDS"]))
    sys.exit(1)
"""


def ops_project(
    tmp_path: Path, stack: str, service_port: int = 0, registry: str = "127.0.0.1:5000"
) -> tuple[Path, dict[str, str], Path]:
    """A project copy whose `python -m ops` runs a stand-in pulumi: the project, the environment, the log.

    Its stack runs prod's image, in ``registry`` (a preview or up asks that registry for it first).
    """
    project = copy_program(tmp_path / "project", ROOT)
    shutil.copytree(ROOT / "policy", project / "policy", ignore=shutil.ignore_patterns("__pycache__"))
    prod = (ROOT / "Pulumi.prod.yaml").read_text()
    (project / f"Pulumi.{stack}.yaml").write_text(prod.replace("127.0.0.1:5000/", f"{registry}/"))
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\n{OPS_FAKE_PULUMI}")
    install_kubectl(fake.parent)  # prod's Ingress names a class and a Secret, which a preview asks the cluster for
    fake.chmod(0o755)
    log = tmp_path / "pulumi.log"
    env = {
        **os.environ,
        "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "HELLO_PROJECT_DIR": str(project),
        "FAKE_PULUMI_LOG": str(log),
        "FAKE_NODE_PORT": str(service_port),
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "unused",
        "HELLO_REGISTRY": "127.0.0.1:5000",
        "HELLO_REGISTRY_PASSWORD_FILE": str(tmp_path / "no-password"),
    }
    return project, env, log


def test_a_stop_signal_during_an_up_cancels_pulumi_once_waits_for_it_and_does_not_roll_back(
    tmp_path: Path,
    fake_registry: str,  # noqa: F811 - the fixture
) -> None:
    _, env, log = ops_project(tmp_path, "qa", registry=fake_registry)
    with ops_process.start(["up", "qa"], cwd=ROOT, env={**env, "FAKE_UP_SECONDS": "30"}) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "Updating (qa):\n"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)

    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "error: interrupted by SIGINT: pulumi up was cancelled and has exited; not rolling back" in stderr
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["signal"] for entry in entries if entry["args"] == ["signal"]] == ["SIGINT"]
    assert not [entry for entry in entries if entry["args"][:2] == ["stack", "export"]], "no rollback was looked at"


def test_a_stack_pulumi_cannot_open_is_a_failure_quoting_pulumi_and_nothing_runs(tmp_path: Path) -> None:
    _, env, log = ops_project(tmp_path, "qa")

    result = ops_process.run(["preview", "qa"], cwd=ROOT, env={**env, "FAKE_OPEN_FAILS": "1"})

    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: pulumi could not open stack 'qa', so nothing ran:\n")
    assert "unable to open state directory" in result.stderr
    assert "preview" not in [json.loads(line)["args"][0] for line in log.read_text().splitlines()]


def test_a_preview_that_waited_for_a_promotion_s_lock_runs_with_what_the_promotion_pinned(
    tmp_path: Path,
    fake_registry: str,  # noqa: F811 - the fixture
) -> None:
    project, env, log = ops_project(tmp_path, "qa", registry=fake_registry)
    tracked = project / "Pulumi.qa.yaml"
    pinned = f"{fake_registry}/hello-world@sha256:" + "7" * 64
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from ops.locking import locked\n"
            f"with locked(Path({str(project)!r}), 'qa', purpose='promotion dev -> qa'):\n"
            "    print('held', flush=True); sys.stdin.readline()\n"
            f"    from settings.stack_files import set_settings; set_settings(Path({str(project)!r}), 'qa', "
            f"{{'image': {pinned!r}}})",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline() == "held\n"
        preview = ops_process.start(["preview", "qa"], cwd=ROOT, env=env)
        # The preview waits for the promotion's lock before it writes its copy; the promotion pins and lets go.
        time.sleep(1.5)
        assert preview.poll() is None, "the preview must wait for the promotion's lock"
        assert not stack_copy_file(project, "qa").exists(), "nothing is written before the lock is held"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.wait(30) == 0
        _, stderr = preview.communicate(timeout=60)
    finally:
        holder.kill()

    assert preview.returncode == 0, stderr
    assert pinned in tracked.read_text()
    (ran,) = [json.loads(line) for line in log.read_text().splitlines() if json.loads(line)["args"][0] == "preview"]
    assert pinned in ran["config_file"]


def test_an_up_reads_nothing_back_and_says_where_the_service_answers_from_the_engines_events(
    tmp_path: Path,
    service_port: int,
    fake_registry: str,  # noqa: F811 - the fixture
) -> None:
    _, env, log = ops_project(tmp_path, "qa", service_port, registry=fake_registry)

    result = ops_process.run(["up", "qa"], cwd=ROOT, env=env)

    assert result.returncode == 0, result.stderr
    assert f"The service answers at http://127.0.0.1:{service_port}/:\nHello World\n" in result.stdout
    commands = [json.loads(line)["args"][:2] for line in log.read_text().splitlines()]
    assert commands[-1][0] == "up", commands  # no `stack output` and no `stack history` after it


def test_an_up_of_a_stack_with_services_says_where_each_answers_through_the_ingress(
    tmp_path: Path,
    service_port: int,
    fake_registry: str,  # noqa: F811 - the fixture
) -> None:
    _, env, _ = ops_project(tmp_path, "qa", service_port, registry=fake_registry)
    urls = {"hello-world": "https://hello.hello-pulumi.test/", "hello-v2": "https://hello.hello-pulumi.test/v2"}

    result = subprocess.run(
        [sys.executable, "-m", "ops", "up", "qa"],
        env={**env, "FAKE_SERVICE_URLS": json.dumps(urls)},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(
        "Through the Ingress:\n"
        "  hello-world: https://hello.hello-pulumi.test/\n"
        "  hello-v2: https://hello.hello-pulumi.test/v2\n"
    )


def test_an_up_held_to_a_review_runs_pulumi_up_with_the_reviewed_update_plan(
    tmp_path: Path,
    service_port: int,
    fake_registry: str,  # noqa: F811 - the fixture
) -> None:
    _, env, log = ops_project(tmp_path, "qa", service_port, registry=fake_registry)
    reviews = tmp_path / "review"
    reviews.mkdir()
    plan_file(reviews, "qa").write_text('{"resourcePlans": {}}')
    reviewed = Fingerprint(stack="qa", changes={}, build_context=None, plan=sha256_of(plan_file(reviews, "qa")))
    save(review_file(reviews, "qa"), reviewed, "summary")

    result = ops_process.run(["up", "qa", f"--reviewed={review_file(reviews, 'qa')}"], cwd=ROOT, env=env)

    assert result.returncode == 0, result.stderr
    (up,) = [entry for entry in map(json.loads, log.read_text().splitlines()) if entry["args"][0] == "up"]
    plan = up["args"][up["args"].index("--plan") + 1]
    assert up["plan"] == '{"resourcePlans": {}}'
    assert Path(plan).parent != reviews, "the up runs the copy that was checked, not the saved file"
    assert not Path(plan).exists(), "the checked copy lives as long as the up"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
