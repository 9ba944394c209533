"""A promotion opens each stack with that stack's own passphrase, as the workflows hand them over."""

from __future__ import annotations

import pytest

from delivery.promote import StackName, options_for


def test_each_stack_opens_with_its_own_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_STAGING", "staging-secret")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_PROD", "prod-secret")

    staging = options_for(StackName("staging", "staging"), None)
    prod = options_for(StackName("organization/hello-world/prod", "prod"), None)

    assert staging.env_vars == {"PULUMI_CONFIG_PASSPHRASE": "staging-secret"}
    assert prod.env_vars == {"PULUMI_CONFIG_PASSPHRASE": "prod-secret"}


def test_without_a_stack_passphrase_the_usual_one_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_DEV", raising=False)

    assert options_for(StackName("dev", "dev"), None).env_vars is None
