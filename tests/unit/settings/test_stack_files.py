"""The one module that finds, reads and guards the stack files."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.stack_copy import write_stack_copy
from settings.local_platform import Platform, local_platform_settings, platform_uses, uses_local_platform
from settings.stack_files import (
    MAX_STACK_FILE_BYTES,
    StackFileError,
    plain_config,
    read_engine_config,
    read_known_settings,
    replace_plain_config,
    restoring,
    set_settings,
    stack_file,
    stack_names,
)
from tests.conftest import ROOT


def test_stack_names_are_read_whole(tmp_path: Path) -> None:
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.eu.prod.yaml"):
        (tmp_path / name).write_text("config: {}\n")

    assert stack_names(tmp_path) == ["dev", "eu.prod"]


def test_restoring_puts_the_bytes_back_even_after_a_failure(tmp_path: Path) -> None:
    path = stack_file(tmp_path, "dev")
    path.write_bytes(b"config:\n  hello-world:replicas: '2'\n")

    def change_then_fail() -> None:
        with restoring(tmp_path, "dev"):
            path.write_text("changed")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        change_then_fail()

    assert path.read_bytes() == b"config:\n  hello-world:replicas: '2'\n"


def test_restoring_unless_success_keeps_a_successful_change(tmp_path: Path) -> None:
    path = stack_file(tmp_path, "dev")
    path.write_text("config: {}\n")

    with restoring(tmp_path, "dev", unless_success=True):
        path.write_text("changed")

    assert path.read_text() == "changed"


def test_replacing_plain_config_keeps_encrypted_values_and_the_salt(tmp_path: Path) -> None:
    path = stack_file(tmp_path, "dev")
    path.write_text("encryptionsalt: v1:abc\nconfig:\n  hello-world:registryPassword:\n    secure: v1:xyz\n")

    replace_plain_config(tmp_path, "dev", {"hello-world:replicas": "2"})

    assert plain_config(tmp_path, "dev") == {"hello-world:replicas": "2"}
    assert "encryptionsalt: v1:abc" in path.read_text()
    assert "secure: v1:xyz" in path.read_text()


TRACKED = '# dev, as the team keeps it\nconfig:\n  hello-world:replicas: "2"\n'


def machine_copy(directory: Path, stack: str = "dev") -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(write_stack_copy(directory, stack).read_text())
    return document


def test_machine_config_is_the_tracked_file_in_a_private_file_under_state(tmp_path: Path) -> None:
    stack_file(tmp_path, "dev").write_text(TRACKED)

    path = write_stack_copy(tmp_path, "dev")

    assert path == tmp_path / ".state" / "stacks" / "Pulumi.dev.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert yaml.safe_load(path.read_text()) == {"config": {"hello-world:replicas": "2"}}
    assert stack_file(tmp_path, "dev").read_text() == TRACKED


def test_machine_config_keeps_this_machines_secrets_and_salt_and_follows_the_tracked_file(tmp_path: Path) -> None:
    stack_file(tmp_path, "dev").write_text(TRACKED)
    path = write_stack_copy(tmp_path, "dev")
    # What `pulumi config set --secret registryPassword --config-file <copy>` leaves in the copy.
    path.write_text(
        'config:\n  hello-world:replicas: "2"\n  hello-world:registryPassword:\n    secure: v1:xyz\n'
        "encryptionsalt: v1:machine\n"
    )
    stack_file(tmp_path, "dev").write_text('config:\n  hello-world:replicas: "3"\n')

    assert machine_copy(tmp_path) == {
        "config": {"hello-world:replicas": "3", "hello-world:registryPassword": {"secure": "v1:xyz"}},
        "encryptionsalt": "v1:machine",
    }


def test_machine_config_drops_its_secrets_when_the_tracked_file_brings_another_salt(tmp_path: Path) -> None:
    stack_file(tmp_path, "dev").write_text(TRACKED)
    write_stack_copy(tmp_path, "dev").write_text(
        "config:\n  hello-world:registryPassword:\n    secure: v1:xyz\nencryptionsalt: v1:machine\n"
    )
    stack_file(tmp_path, "dev").write_text(TRACKED + "encryptionsalt: v1:team\n")

    assert machine_copy(tmp_path) == {"config": {"hello-world:replicas": "2"}, "encryptionsalt": "v1:team"}


def test_machine_config_lets_the_tracked_file_win_for_a_key_both_set(tmp_path: Path) -> None:
    tracked = TRACKED + "  hello-world:registryPassword:\n    secure: v1:team\nencryptionsalt: v1:salt\n"
    stack_file(tmp_path, "dev").write_text(tracked)
    write_stack_copy(tmp_path, "dev").write_text(
        "config:\n  hello-world:registryPassword:\n    secure: v1:old\nencryptionsalt: v1:salt\n"
    )

    assert machine_copy(tmp_path)["config"]["hello-world:registryPassword"] == {"secure": "v1:team"}


def test_machine_config_pins_settings_in_the_copy_only(tmp_path: Path) -> None:
    stack_file(tmp_path, "dev").write_text(TRACKED)

    path = write_stack_copy(tmp_path, "dev", {"image": "r/app@sha256:" + "a" * 64, "promotion": {"from": "dev"}})

    assert yaml.safe_load(path.read_text())["config"] == {
        "hello-world:replicas": "2",
        "hello-world:image": "r/app@sha256:" + "a" * 64,
        "hello-world:promotion": {"from": "dev"},
    }
    assert stack_file(tmp_path, "dev").read_text() == TRACKED


def test_machine_configs_written_at_once_never_collide_and_leave_no_scratch_file(tmp_path: Path) -> None:
    stack_file(tmp_path, "dev").write_text(TRACKED)
    write_stack_copy(tmp_path, "dev")
    failures: list[BaseException] = []

    def write_many() -> None:
        try:
            for _ in range(200):
                write_stack_copy(tmp_path, "dev")
        except BaseException as error:
            failures.append(error)

    writers = [threading.Thread(target=write_many) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)

    assert failures == []
    assert sorted(path.name for path in (tmp_path / ".state" / "stacks").iterdir()) == ["Pulumi.dev.yaml"]
    assert yaml.safe_load((tmp_path / ".state" / "stacks" / "Pulumi.dev.yaml").read_text()) == {
        "config": {"hello-world:replicas": "2"}
    }


def test_machine_config_of_a_missing_stack_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StackFileError, match=r"^Pulumi\.qa\.yaml cannot be read"):
        write_stack_copy(tmp_path, "qa")


PLATFORM = Platform(kubeconfig="/var/lib/hello-pulumi/kube/admin.kubeconfig", registry="127.0.0.1:5000")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, ["it deploys with the local platform's kubeconfig (/var/lib/hello-pulumi/kube/admin.kubeconfig)"]),
        (
            {"cluster": {"kubeconfig": "~/.kube/kind"}, "build": {"registry": "127.0.0.1:5000"}},
            ["it pushes to the local platform's registry (127.0.0.1:5000)"],
        ),
        (
            {"cluster": {"kubeconfig": "/home/me/.kube/eks"}, "image": "127.0.0.1:5000/hello-world@sha256:ab"},
            ["it runs an image from the local platform's registry (127.0.0.1:5000)"],
        ),
        (
            {"cluster": {"kubeconfig": "/home/me/.kube/eks"}, "image": "127.0.0.1:5443/hello-world@sha256:ab"},
            ["it runs an image from the local platform's token registry (127.0.0.1:5443)"],
        ),
        ({"cluster": {"kubeconfig": "/home/me/.kube/eks"}, "build": {"registry": "ghcr.io"}}, []),
        ({"cluster": {"kubeconfig": "kind.kubeconfig"}, "image": "docker.io/me/hello@sha256:ab"}, []),
    ],
    ids=[
        "defaults",
        "pushes-to-local-registry",
        "runs-local-image",
        "runs-token-registry-image",
        "own-cluster-and-registry",
        "relative-kubeconfig",
    ],
)
def test_platform_uses_names_what_needs_the_local_platform(
    tmp_path: Path, settings: dict[str, Any], expected: list[str]
) -> None:
    assert platform_uses(settings, PLATFORM, tmp_path) == expected


def test_platform_uses_sees_the_platform_kubeconfig_behind_another_path(tmp_path: Path) -> None:
    platform_kubeconfig = tmp_path / "admin.kubeconfig"
    platform_kubeconfig.write_text("")
    (tmp_path / "link").symlink_to(platform_kubeconfig)
    platform = Platform(kubeconfig=str(platform_kubeconfig), registry="127.0.0.1:5000")

    assert platform_uses({"cluster": {"kubeconfig": "link"}}, platform, tmp_path) == [
        "it deploys with the local platform's kubeconfig (link)"
    ]


def test_platform_from_environment_reads_the_platform_locations() -> None:
    environ = {"HELLO_KUBECONFIG": "/tmp/k", "HELLO_REGISTRY": "127.0.0.1:5999"}

    assert Platform.from_environment(environ) == Platform(kubeconfig="/tmp/k", registry="127.0.0.1:5999")
    assert Platform.from_environment({}) == PLATFORM


LOCAL_BASE = "127.0.0.1:5000/hello-pulumi/node-base@sha256:" + "12" * 32
"""What tooling/platform/base-image.sh records: the platform's Node base image, pinned by the digest served here."""


def test_platform_from_environment_reads_the_pinned_base_image_the_platform_recorded(tmp_path: Path) -> None:
    recorded = tmp_path / "pinned"
    recorded.write_text(f"{LOCAL_BASE}\n")

    assert Platform.from_environment({"HELLO_BASE_IMAGE_PINNED_FILE": str(recorded)}).pinned_base_image == LOCAL_BASE
    assert Platform.from_environment({"HELLO_BASE_IMAGE_PINNED_FILE": str(tmp_path / "none")}).pinned_base_image is None


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, {"verification": {"checkerImage": LOCAL_BASE}}),
        ({"verification": {"body": "Hi"}}, {"verification": {"body": "Hi", "checkerImage": LOCAL_BASE}}),
        ({"verification": '{"body": "Hi"}'}, {"verification": {"body": "Hi", "checkerImage": LOCAL_BASE}}),
        ({"verification": {"checkerImage": "ghcr.io/me/node@sha256:" + "ab" * 32}}, {}),
        ({"cluster": {"kubeconfig": "/home/me/.kube/eks"}, "build": {"registry": "ghcr.io"}}, {}),
    ],
    ids=["defaults", "keeps-the-check", "check-as-json", "own-checker", "not-on-the-platform"],
)
def test_local_platform_settings_fill_in_the_checker_image_only_for_a_local_stack_without_one(
    tmp_path: Path, settings: dict[str, Any], expected: dict[str, Any]
) -> None:
    platform = Platform(kubeconfig=PLATFORM.kubeconfig, registry=PLATFORM.registry, pinned_base_image=LOCAL_BASE)

    assert local_platform_settings(settings, platform, tmp_path) == expected
    assert local_platform_settings(settings, PLATFORM, tmp_path) == {}  # nothing recorded: nothing filled in


def test_the_machine_copy_of_a_local_stack_runs_its_check_from_the_platform_base_image_and_git_sees_nothing(
    tmp_path: Path,
) -> None:
    tracked = stack_file(tmp_path, "dev")
    tracked.write_text(TRACKED)
    before = tracked.read_bytes()
    recorded = tmp_path / "pinned"
    recorded.write_text(f"{LOCAL_BASE}\n")

    copy = write_stack_copy(tmp_path, "dev", environ={"HELLO_BASE_IMAGE_PINNED_FILE": str(recorded)})

    config = yaml.safe_load(copy.read_text())["config"]
    assert config["hello-world:verification"] == {"checkerImage": LOCAL_BASE}
    assert tracked.read_bytes() == before
    plain = yaml.safe_load(write_stack_copy(tmp_path, "dev", environ={}).read_text())["config"]
    assert "hello-world:verification" not in plain


OUTSIDE = """config:
  hello-world:cluster:
    kubeconfig: /home/me/.kube/config
    context: kind-hello
  hello-world:build:
    registry: ghcr.io
    username: me
"""


def needs_platform(directory: Path, stack: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HELLO_")}
    return subprocess.run(
        [sys.executable, "-m", "ops", "needs-platform", stack],
        cwd=directory,
        env={**env, "PYTHONPATH": str(ROOT), "HELLO_PROJECT_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("stack", "answer"), [("dev", "yes"), ("staging", "yes"), ("prod", "yes"), ("outside", "no")], ids=str
)
def test_needs_platform_answers_for_the_projects_stacks_and_an_outside_one(
    tmp_path: Path, stack: str, answer: str
) -> None:
    for name in stack_names(ROOT):
        shutil.copy2(stack_file(ROOT, name), tmp_path)
    stack_file(tmp_path, "outside").write_text(OUTSIDE)

    result = needs_platform(tmp_path, stack)

    assert (result.returncode, result.stdout) == (0, f"{answer}\n")
    assert result.stderr.startswith(f"stack {stack} {'needs' if answer == 'yes' else 'does not need'} the local")


def test_needs_platform_of_an_unknown_stack_is_an_error_naming_the_stacks(tmp_path: Path) -> None:
    stack_file(tmp_path, "dev").write_text(TRACKED)

    result = needs_platform(tmp_path, "nope")

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: STACK must be one of dev, got 'nope'\n"


ALIAS_BOMB = "\n".join(
    ["config:", '  hello-world:a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    + [f"  hello-world:{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 10)}]" for n in range(9)]
)
"""About 600 bytes that expand to 10^10 strings: a billion laughs."""


@pytest.mark.parametrize(
    "read",
    [
        lambda d: read_engine_config(d, "qa"),
        lambda d: read_known_settings(d, "qa"),
        lambda d: plain_config(d, "qa"),
        lambda d: write_stack_copy(d, "qa"),
        lambda d: set_settings(d, "qa", {"replicas": "3"}),
        lambda d: uses_local_platform(d, "qa"),
    ],
    ids=["engine-config", "known-settings", "plain-config", "machine-copy", "set-settings", "needs-platform"],
)
def test_a_yaml_alias_bomb_is_refused_quickly_naming_the_file_and_changes_nothing(
    tmp_path: Path, read: Callable[[Path], object]
) -> None:
    stack_file(tmp_path, "qa").write_text(ALIAS_BOMB)
    started = time.monotonic()

    with pytest.raises(
        StackFileError, match=r"^Pulumi\.qa\.yaml must be YAML without aliases \(\*name\), got one at line 3, column"
    ):
        read(tmp_path)

    assert time.monotonic() - started < 2
    assert stack_file(tmp_path, "qa").read_text() == ALIAS_BOMB
    assert not (tmp_path / ".state").exists()


def test_a_stack_file_too_large_to_be_one_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = stack_file(tmp_path, "qa")
    path.write_text("config:\n  hello-world:replicas: '2'\n" + "#" * MAX_STACK_FILE_BYTES)

    with pytest.raises(
        StackFileError,
        match=rf"^Pulumi\.qa\.yaml must be at most {MAX_STACK_FILE_BYTES} bytes, got {path.stat().st_size}$",
    ):
        read_engine_config(tmp_path, "qa")


@pytest.mark.parametrize(
    "content", ["# only a comment\n", "", "---\n# nothing else\n"], ids=["comment", "empty", "bare-document"]
)
def test_a_stack_file_with_no_settings_reads_as_none_and_refuses_a_write_naming_the_file(
    tmp_path: Path, content: str
) -> None:
    path = stack_file(tmp_path, "qa")
    path.write_text(content)

    assert read_engine_config(tmp_path, "qa") == {}
    assert plain_config(tmp_path, "qa") == {}
    assert yaml.safe_load(write_stack_copy(tmp_path, "qa").read_text()) == {"config": {}}
    with pytest.raises(
        StackFileError,
        match=r"^Pulumi\.qa\.yaml must be a mapping with a config key to set settings in, got no document$",
    ):
        set_settings(tmp_path, "qa", {"replicas": "3"})
    assert path.read_text() == content


def test_a_stack_file_that_is_not_utf8_is_refused_naming_the_offset(tmp_path: Path) -> None:
    stack_file(tmp_path, "qa").write_bytes(b"config:\n  hello-world:replicas: \xff\n")

    with pytest.raises(
        StackFileError, match=r"^Pulumi\.qa\.yaml must be UTF-8 text, got a byte that is not UTF-8 at offset 32$"
    ):
        read_engine_config(tmp_path, "qa")
