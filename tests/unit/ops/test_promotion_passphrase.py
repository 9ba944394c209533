"""A promotion opens each stack with that stack's own passphrase, as the workflows hand them over."""

from __future__ import annotations

import pytest

from ops.engine import Engine


def test_each_stack_opens_with_its_own_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_STAGING", "staging-secret")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_PROD", "prod-secret")

    staging = Engine().workspace_options("staging")
    prod = Engine().workspace_options("organization/hello-world/prod")

    assert staging.env_vars == {"PULUMI_CONFIG_PASSPHRASE": "staging-secret"}
    assert prod.env_vars == {"PULUMI_CONFIG_PASSPHRASE": "prod-secret"}


def test_without_a_stack_passphrase_the_usual_one_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_DEV", raising=False)

    assert Engine().workspace_options("dev").env_vars is None


def test_a_throwaway_backend_s_own_passphrase_wins_over_the_stack_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_DEV", "dev-secret")

    assert Engine(env={"PULUMI_CONFIG_PASSPHRASE": "throwaway"}).workspace_options("dev").env_vars == {
        "PULUMI_CONFIG_PASSPHRASE": "throwaway"
    }
