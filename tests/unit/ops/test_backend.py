"""ops/backend.py: the state folder, the passphrase and a file backend are made on first use, private to their owner."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ops.backend import file_backend_folder, prepare


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def environment(tmp_path: Path, state: Path, backend_url: str, passphrase_from: str) -> dict[str, str]:
    environ = {"HOME": str(tmp_path / "home"), "HELLO_STATE": str(state), "PULUMI_BACKEND_URL": backend_url}
    if passphrase_from == "environment":
        environ["PULUMI_CONFIG_PASSPHRASE"] = "from-the-environment"
    else:
        environ["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(state / "passphrase")
    return environ


@pytest.mark.parametrize("passphrase_from", ["environment", "file"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing-0755"])
def test_the_state_folder_and_a_backend_in_it_are_0700(tmp_path: Path, passphrase_from: str, existing: bool) -> None:
    state = tmp_path / "state" / "hello-pulumi"
    backend = state / "backend"
    if existing:
        backend.mkdir(parents=True)
        for folder in (state, backend):
            folder.chmod(0o755)

    prepare(environment(tmp_path, state, f"file://{backend}", passphrase_from))

    assert {"state": mode(state), "backend": mode(backend)} == {"state": "0o700", "backend": "0o700"}


def test_a_new_backend_folder_elsewhere_is_made_0700_and_an_existing_one_is_left_as_it_is(tmp_path: Path) -> None:
    state = tmp_path / "state"
    new, existing = tmp_path / "new" / "backend", tmp_path / "shared"
    existing.mkdir()
    existing.chmod(0o1777)  # a /tmp-like folder: its sticky bit and mode are not ours to change

    prepare(environment(tmp_path, state, f"file://{new}", "environment"))
    prepare(environment(tmp_path, state, f"file://{existing}", "environment"))

    assert (mode(new), mode(existing)) == ("0o700", "0o1777")


def test_a_backend_in_the_home_folder_makes_pulumis_folder_private_and_leaves_home_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".pulumi").mkdir(parents=True)
    (home / ".pulumi").chmod(0o755)
    home.chmod(0o755)

    prepare(environment(tmp_path, tmp_path / "state", "file://~", "environment"))

    assert {"home": mode(home), ".pulumi": mode(home / ".pulumi")} == {"home": "0o755", ".pulumi": "0o700"}


def test_the_passphrase_file_is_made_once_private_and_kept_afterwards(tmp_path: Path) -> None:
    state = tmp_path / "state"
    environ = environment(tmp_path, state, f"file://{state / 'backend'}", "file")

    prepare(environ)
    first = (state / "passphrase").read_text()
    prepare(environ)

    assert mode(state / "passphrase") == "0o600"
    assert len(first.strip()) >= 32
    assert (state / "passphrase").read_text() == first


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///srv/state?no_legacy=1", "/srv/state"),
        ("file://~", "{home}"),
        ("file://~/state", "{home}/state"),
        ("s3://bucket/state", None),
        ("", None),
    ],
    ids=["path-and-query", "home", "under-home", "another-backend", "none"],
)
def test_file_backend_folder_reads_pulumis_file_urls(tmp_path: Path, url: str, expected: str | None) -> None:
    found = file_backend_folder({"PULUMI_BACKEND_URL": url, "HOME": str(tmp_path)})

    assert found == (None if expected is None else Path(expected.format(home=tmp_path)))
