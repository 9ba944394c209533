"""Promotion's own rules, without an engine: the chain, the reference to pin, the command line."""

from __future__ import annotations

import re

import pytest

from delivery.promote import PromotionError, Request, candidate, check_chain, parse_args

DIGEST = "sha256:" + "1" * 64
OLDER = "sha256:" + "2" * 64
SOURCE_REF = f"127.0.0.1:5000/hello-world@{DIGEST}"


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
    request = parse_args(["--from", "dev", "--to", "prod", "--digest", OLDER, "--yes", "--out-of-chain"])

    assert request == Request(source="dev", target="prod", digest=OLDER, out_of_chain=True, yes=True)


def test_command_line_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--help"])

    assert exited.value.code == 0
    assert "dev -> staging -> prod" in " ".join(capsys.readouterr().out.split())
