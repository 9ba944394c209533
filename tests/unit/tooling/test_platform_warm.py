"""The warm path of `make preview` / `make up` skips work only where the answer is provably the same.

unchanged.sh (a file's identity stands in for re-reading it) and cluster/up.sh's certificate check are
run by bash against real files and real `openssl` certificates in a temporary folder; build.sh runs
with a stand-in `pulumi` that records its arguments; the Makefile is asked with `make -n`. Nothing here
needs root, the platform or the engine.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

PLATFORM = ROOT / "tooling" / "platform"
UNCHANGED = PLATFORM / "unchanged.sh"
CLUSTER_UP = PLATFORM / "cluster" / "up.sh"
DAY = 86400


def bash(script: str, *args: str, settle: int | None = None) -> subprocess.CompletedProcess[str]:
    """SCRIPT in bash with unchanged.sh sourced; SETTLE overrides how old a change must be to be recorded."""
    prelude = f'set -euo pipefail\nsource "{UNCHANGED}"\n'
    if settle is not None:
        prelude += f"UNCHANGED_SETTLE_SECONDS={settle}\n"
    return subprocess.run(
        ["bash", "-c", prelude + script, "bash", *args], capture_output=True, text=True, timeout=60, check=False
    )


def holds(stamp: Path, *files: Path) -> bool:
    return bash('unchanged_since "$@"', str(stamp), *map(str, files)).returncode == 0


def record(stamp: Path, *files: Path, settle: int | None = -60) -> None:
    result = bash('record_unchanged "$@"', str(stamp), *map(str, files), settle=settle)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two files checked equal, and the stamp that records them."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"same content")
    second.write_bytes(b"same content")
    stamp = tmp_path / "stamp"
    record(stamp, first, second)
    # The kernel's change time is coarse: later writes in these tests must fall in a later tick.
    time.sleep(0.05)
    return stamp, first, second


def test_unchanged_since_holds_while_the_files_are_untouched(pair: tuple[Path, Path, Path]) -> None:
    stamp, first, second = pair

    assert holds(stamp, first, second)
    assert holds(stamp, first, second)  # reading them changes nothing


def test_unchanged_since_notices_a_same_size_rewrite_with_the_old_modification_time(
    pair: tuple[Path, Path, Path],
) -> None:
    stamp, first, second = pair
    before = second.stat()

    second.write_bytes(b"SAME CONTENT")
    os.utime(second, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert second.stat().st_size == before.st_size
    assert second.stat().st_mtime_ns == before.st_mtime_ns
    assert not holds(stamp, first, second)


def test_unchanged_since_notices_a_file_replaced_by_another(pair: tuple[Path, Path, Path], tmp_path: Path) -> None:
    stamp, first, second = pair
    other = tmp_path / "other"
    other.write_bytes(b"same content")
    os.utime(other, ns=(second.stat().st_atime_ns, second.stat().st_mtime_ns))

    other.replace(second)

    assert not holds(stamp, first, second)


def test_unchanged_since_notices_a_missing_file(pair: tuple[Path, Path, Path]) -> None:
    stamp, first, second = pair

    second.unlink()

    assert not holds(stamp, first, second)


def test_unchanged_since_is_false_without_a_record(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")

    assert not holds(tmp_path / "no-stamp", file)


def test_record_unchanged_keeps_no_record_of_a_file_changed_just_now(pair: tuple[Path, Path, Path]) -> None:
    stamp, first, second = pair
    second.write_bytes(b"same content")  # changed this second: a write in the same tick could hide

    record(stamp, first, second, settle=None)

    assert not stamp.exists()
    assert not holds(stamp, first, second)


# --- cluster/up.sh: lasts_a_day, the certificate check --------------------------------------


def certificate(path: Path, days: int) -> None:
    """A self-signed certificate valid for DAYS days from now."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(path.with_suffix(".key")), "-out", str(path), "-subj", "/CN=warm-test", "-days", str(days)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip


def cluster_up_function(name: str) -> str:
    """The definition of NAME in cluster/up.sh, which runs its main when sourced."""
    result = subprocess.run(["sed", "-n", f"/^{name}()/,/^}}/p", str(CLUSTER_UP)], capture_output=True, text=True)
    assert result.stdout.startswith(f"{name}()"), f"cluster/up.sh defines no {name}()"
    return result.stdout


def lasts_a_day(crt: Path) -> bool:
    answer = bash(cluster_up_function("lasts_a_day") + 'lasts_a_day "$1"', str(crt), settle=-60)
    assert answer.returncode in (0, 1), answer.stderr
    return answer.returncode == 0


def openssl_says_it_lasts_a_day(crt: Path) -> bool:
    checked = subprocess.run(["openssl", "x509", "-in", str(crt), "-noout", "-checkend", str(DAY)], capture_output=True)
    return checked.returncode == 0


def kept(crt: Path) -> Path:
    return crt.with_name(f".{crt.name}.not-after")


@pytest.mark.parametrize(("days", "lasts"), [(2, True), (1, False)], ids=["two-days", "one-day"])
def test_lasts_a_day_answers_as_openssl_checkend_first_and_from_the_kept_date(
    tmp_path: Path, days: int, lasts: bool
) -> None:
    crt = tmp_path / "leaf.crt"
    certificate(crt, days)

    assert openssl_says_it_lasts_a_day(crt) is lasts
    assert lasts_a_day(crt) is lasts
    if lasts:
        assert kept(crt).exists()
    assert lasts_a_day(crt) is lasts


def test_lasts_a_day_notices_a_certificate_replaced_in_place(tmp_path: Path) -> None:
    crt = tmp_path / "leaf.crt"
    certificate(crt, 2)
    assert lasts_a_day(crt)
    time.sleep(0.05)

    certificate(crt, 1)

    assert not lasts_a_day(crt)


@pytest.mark.parametrize(("seconds_left", "lasts"), [(DAY + 120, True), (DAY - 120, False)], ids=["after", "before"])
def test_lasts_a_day_compares_the_kept_date_with_the_time_of_each_run(
    tmp_path: Path, seconds_left: int, lasts: bool
) -> None:
    """The kept date is the certificate's; the day is counted from now, on every run."""
    crt = tmp_path / "leaf.crt"
    certificate(crt, 2)
    assert lasts_a_day(crt)

    kept(crt).write_text(f"{int(time.time()) + seconds_left}\n")

    assert lasts_a_day(crt) is lasts


@pytest.mark.parametrize("kept_date", [None, "garbage\n"], ids=["gone", "garbage"])
def test_lasts_a_day_asks_openssl_again_when_the_kept_date_is_unusable(tmp_path: Path, kept_date: str | None) -> None:
    crt = tmp_path / "leaf.crt"
    certificate(crt, 1)
    assert not lasts_a_day(crt)
    kept(crt).write_text(f"{int(time.time()) + 30 * DAY}\n")  # a kept date that would say it lasts
    record(tmp_path / ".leaf.crt.not-after.identity", crt)
    assert lasts_a_day(crt)  # the kept date answers while the certificate is unchanged

    if kept_date is None:
        kept(crt).unlink()
    else:
        kept(crt).write_text(kept_date)

    assert not lasts_a_day(crt)


def test_lasts_a_day_refuses_a_file_that_is_no_certificate(tmp_path: Path) -> None:
    crt = tmp_path / "leaf.crt"
    crt.write_text("not a certificate\n")

    assert not lasts_a_day(crt)
    assert not kept(crt).exists()


# --- cluster/up.sh: write_file, the configuration files -----------------------------------


def write_file(file: Path, content: str, mode: str = "600") -> None:
    result = bash(
        cluster_up_function("write_file") + 'write_file "$1" "$2" < <(printf %s "$3")', str(file), mode, content
    )
    assert result.returncode == 0, result.stderr


def test_write_file_writes_a_new_file_with_its_mode_and_every_byte(tmp_path: Path) -> None:
    file = tmp_path / "config"
    content = "  indented \\ $HOME `x`\n\n\ttab\n"

    write_file(file, content)

    assert file.read_text() == content
    assert oct(file.stat().st_mode & 0o777) == "0o600"


def test_write_file_leaves_a_file_with_the_same_content_untouched(tmp_path: Path) -> None:
    file = tmp_path / "config"
    write_file(file, "a: 1\n")
    before = file.stat()
    time.sleep(0.05)

    write_file(file, "a: 1\n")

    after = file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert after.st_ctime_ns == before.st_ctime_ns


@pytest.mark.parametrize("old", ["a: 2\n", "a: 1", "a: 1\n\n"], ids=["other-value", "one-newline-less", "one-more"])
def test_write_file_replaces_a_file_that_differs_even_in_a_newline(tmp_path: Path, old: str) -> None:
    file = tmp_path / "config"
    file.write_text(old)

    write_file(file, "a: 1\n")

    assert file.read_text() == "a: 1\n"


# --- build.sh ready and the Makefile -------------------------------------------------------


@pytest.mark.parametrize(
    ("goals", "command"),
    [(["tools"], "tooling/toolchain/build.sh all"), (["preview"], "tooling/toolchain/build.sh ready")],
    ids=["tools-asked-for", "tools-as-a-prerequisite"],
)
def test_make_runs_the_version_listing_only_when_tools_is_asked_for(goals: list[str], command: str) -> None:
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), *goals],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if "tooling/toolchain/build.sh" in line] == [command]
