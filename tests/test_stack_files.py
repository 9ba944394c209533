"""The one module that finds, reads and guards the stack files."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings.stack_files import kept_as_is, plain_config, replace_plain_config, stack_file, stack_names


def test_stack_names_are_read_whole(tmp_path: Path) -> None:
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.eu.prod.yaml"):
        (tmp_path / name).write_text("config: {}\n")

    assert stack_names(tmp_path) == ["dev", "eu.prod"]


def test_kept_as_is_puts_the_bytes_back_even_after_a_failure(tmp_path: Path) -> None:
    path = stack_file(tmp_path, "dev")
    path.write_bytes(b"config:\n  hello-world:replicas: '2'\n")

    def change_then_fail() -> None:
        with kept_as_is(tmp_path, "dev"):
            path.write_text("changed")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        change_then_fail()

    assert path.read_bytes() == b"config:\n  hello-world:replicas: '2'\n"


def test_kept_as_is_unless_success_keeps_a_successful_change(tmp_path: Path) -> None:
    path = stack_file(tmp_path, "dev")
    path.write_text("config: {}\n")

    with kept_as_is(tmp_path, "dev", unless_success=True):
        path.write_text("changed")

    assert path.read_text() == "changed"


def test_replacing_plain_config_keeps_encrypted_values_and_the_salt(tmp_path: Path) -> None:
    path = stack_file(tmp_path, "dev")
    path.write_text("encryptionsalt: v1:abc\nconfig:\n  hello-world:registryPassword:\n    secure: v1:xyz\n")

    replace_plain_config(tmp_path, "dev", {"hello-world:replicas": "2"})

    assert plain_config(tmp_path, "dev") == {"hello-world:replicas": "2"}
    assert "encryptionsalt: v1:abc" in path.read_text()
    assert "secure: v1:xyz" in path.read_text()
