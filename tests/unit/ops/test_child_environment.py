"""Each pulumi process gets only what its own stack needs: its own passphrase, no other stack's, and never the
registry password that only this process's digest checks use.

The promotion runs as a process against the stand-in pulumi of tests/unit/ops/test_promotion.py, taught to record the
passphrases and registry variables it was started with; no engine, no platform.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ops.engine import child_environment
from tests.unit.ops.test_promotion import FAKE_PULUMI, Promotion, fake_registry, promotion  # noqa: F401 - fixtures

PASSPHRASES = {
    "PULUMI_CONFIG_PASSPHRASE_DEV": "dev-passphrase",
    "PULUMI_CONFIG_PASSPHRASE_STAGING": "staging-passphrase",
    "PULUMI_CONFIG_PASSPHRASE_PROD": "prod-passphrase",
}
REGISTRY_PASSWORD = "registry-password-for-our-checks"
# The stand-in pulumi notes, with each command, every variable that holds a passphrase or a registry credential.
FAKE_PULUMI_RECORDING_ENV = FAKE_PULUMI.replace(
    "record(args=args)\n",
    "record(args=args, env={k: v for k, v in os.environ.items() if 'PASSPHRASE' in k or k.startswith('REGISTRY_')})\n",
)


@pytest.fixture
def recorded_promotion(promotion: Promotion) -> Promotion:  # noqa: F811
    fake = Path(promotion.env["PATH"].split(":", 1)[0]) / "pulumi"
    taught = fake.read_text().replace(FAKE_PULUMI, FAKE_PULUMI_RECORDING_ENV)
    assert taught != fake.read_text(), "the stand-in pulumi of tests/unit/ops/test_promotion.py changed"
    fake.write_text(taught)
    promotion.env.update(PASSPHRASES)
    promotion.env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    promotion.env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(promotion.project / "passphrase")
    promotion.env["REGISTRY_USERNAME"] = "hello"
    promotion.env["REGISTRY_PASSWORD"] = REGISTRY_PASSWORD
    return promotion


def stack_of(args: list[str]) -> str | None:
    return args[args.index("--stack") + 1].split("/")[-1] if "--stack" in args else None


def test_each_pulumi_command_of_a_promotion_gets_only_its_own_stacks_passphrase(recorded_promotion: Promotion) -> None:
    recorded_promotion.run("--from", "dev", "--to", "staging")  # stops after the preview: no terminal to confirm on

    commands: list[dict[str, Any]] = [entry for entry in recorded_promotion.entries() if "env" in entry]
    stacks = {stack_of(entry["args"]) for entry in commands}
    assert {"dev", "staging"} <= stacks, json.dumps(commands)
    for entry in commands:
        stack, env = stack_of(entry["args"]), entry["env"]
        assert not [key for key in env if key in PASSPHRASES], f"{entry['args']} got another stack's passphrase"
        assert "REGISTRY_PASSWORD" not in env, f"{entry['args']} got the registry password"
        if stack is not None:
            assert env.get("PULUMI_CONFIG_PASSPHRASE") == PASSPHRASES[f"PULUMI_CONFIG_PASSPHRASE_{stack.upper()}"]
        assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == recorded_promotion.env["PULUMI_CONFIG_PASSPHRASE_FILE"]


def test_child_environment_keeps_the_local_passphrase_file_and_drops_stack_passphrases_and_our_password() -> None:
    environ = {
        **PASSPHRASES,
        "PULUMI_CONFIG_PASSPHRASE_EU_PROD": "p",
        "PULUMI_CONFIG_PASSPHRASE_FILE": "/state/passphrase",
        "PULUMI_CONFIG_PASSPHRASE": "the-usual-one",
        "REGISTRY_PASSWORD": REGISTRY_PASSWORD,
        "REGISTRY_USERNAME": "hello",
        "PATH": "/usr/bin",
    }

    assert child_environment(environ) == {
        "PULUMI_CONFIG_PASSPHRASE_FILE": "/state/passphrase",
        "PULUMI_CONFIG_PASSPHRASE": "the-usual-one",
        "REGISTRY_USERNAME": "hello",
        "PATH": "/usr/bin",
    }
