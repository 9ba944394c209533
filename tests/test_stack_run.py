"""delivery/stack_run.py: what stack.sh learns in one call before it runs pulumi on a stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from delivery.stack_run import local_password_to_set, prepare, remember_password
from settings.stack_files import MANDATORY_POLICY_CONFIG, machine_config_file
from tests.conftest import ROOT

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
    copy = machine_config_file(project, stack)
    document = yaml.safe_load(copy.read_text())
    document["config"]["hello-world:registryPassword"] = {"secure": ciphertext}
    copy.write_text(yaml.safe_dump(document))
    return copy


def test_prepare_says_where_the_copy_is_and_writes_the_policy_config(project: Path, platform: dict[str, str]) -> None:
    write_stack(project, "dev", BUILDS_LOCALLY)
    (project / "policy" / "config" / "dev.json").write_text('{"all": "advisory"}')
    policy_out = project / "policy-out.json"

    lines = prepare(project, "dev", policy_out, platform)

    assert lines == [str(machine_config_file(project, "dev")), "set", "yes"]
    assert json.loads(policy_out.read_text()) == {"all": "advisory"}
    assert oct(machine_config_file(project, "dev").stat().st_mode & 0o777) == "0o600"


def test_prepare_holds_a_stack_without_its_own_policy_config_to_every_rule(
    project: Path, platform: dict[str, str]
) -> None:
    write_stack(project, "qa", OTHER_CLUSTER)
    policy_out = project / "policy-out.json"

    lines = prepare(project, "qa", policy_out, platform)

    assert lines[1:] == ["keep", "no"]
    assert json.loads(policy_out.read_text()) == MANDATORY_POLICY_CONFIG


@pytest.fixture
def remembered(project: Path, platform: dict[str, str]) -> Path:
    """dev builds into the local registry; its copy holds a password that stack.sh stored and remembered."""
    write_stack(project, "dev", BUILDS_LOCALLY)
    prepare(project, "dev", project / "policy-out.json", platform)
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


def test_prepare_names_the_stacks_there_are_for_an_unknown_one(project: Path) -> None:
    write_stack(project, "dev", BUILDS_LOCALLY)
    result = subprocess.run(
        [sys.executable, "-m", "delivery.stack_run", "prepare", "nope", str(project / "out.json")],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: STACK must be one of dev, got 'nope'\n"
    assert not (project / "out.json").exists()
