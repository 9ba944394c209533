"""Records real previews for the review golden tests: `pulumi preview --json` and the engine's events.

The review reads the events (ops/review_summary.py); the JSON is kept beside them, so that a test can
hold the two to the same summary.

Run with the platform up (`make platform`): `make recordings`. It deploys a throwaway
stack on the local cluster, previews real changes against it, then destroys it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.engine.fixtures import LocalRegistry, local_registry
from tests.engine.workspace import ROOT, Workspace

HERE = Path(__file__).resolve().parent
REPOSITORY = "hello-world-review"
NODE_PORT = 31641
POLICY = ["--policy-pack", str(ROOT / "policy")]


def record(workspace: Workspace, name: str, policy_config: str) -> None:
    workspace.env["PULUMI_DEBUG_COMMANDS"] = "true"  # unhides --event-log, as the Automation API does
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "events.jsonl"
        result = workspace.pulumi(
            "preview",
            "--json",
            "--event-log",
            str(log),
            *POLICY,
            "--policy-pack-config",
            str(ROOT / "policy" / "config" / policy_config),
            check=False,
        )
        if not log.exists():
            raise RuntimeError(f"preview wrote no event log:\n{result.stdout}\n{result.stderr}")
        events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    recording = {
        "preview": json.loads(result.stdout),
        "policyEvents": [e for e in events if "policyEvent" in e],
        "events": events,
    }
    (HERE / f"{name}.json").write_text(json.dumps(recording, indent=2, sort_keys=True) + "\n")
    print(f"recorded {name}")


def push_variant(registry: LocalRegistry, tag: str) -> str:
    """Builds app/ answering "Hello World <tag>" and pushes it with the docker CLI; returns its digest."""
    with tempfile.TemporaryDirectory() as scratch:
        context, config = Path(scratch) / "app", Path(scratch) / "docker-config"
        shutil.copytree(ROOT / "app", context)
        server = context / "server.js"
        server.write_text(server.read_text().replace("'Hello World'", f"'Hello World {tag}'"))
        env = {**os.environ, "DOCKER_HOST": f"unix://{os.environ['HELLO_DOCKER_SOCK']}", "DOCKER_CONFIG": str(config)}
        reference = f"{registry.client.address}/{REPOSITORY}:{tag}"
        commands = [
            ["docker", "login", registry.client.address, "-u", registry.username, "--password-stdin"],
            [
                "docker",
                "build",
                "-q",
                "--build-arg",
                f"BASE_IMAGE={os.environ['HELLO_BASE_IMAGE']}",
                "-t",
                reference,
                ".",
            ],
            ["docker", "push", "-q", reference],
        ]
        for command in commands:
            subprocess.run(command, cwd=context, env=env, input=registry.password, text=True, check=True)
    digest = registry.client.served_digest(REPOSITORY, tag)
    assert digest is not None, f"{reference} was pushed but is not served"
    return digest


def main() -> int:
    registry = local_registry()
    digests = [push_variant(registry, tag) for tag in ("v1", "v2")]
    image = f"{registry.client.address}/{REPOSITORY}@{{}}"
    base: dict[str, Any] = {
        "hello-world:namespace": "review-staging",
        "hello-world:nodePort": NODE_PORT,
        "hello-world:replicas": 2,
        "hello-world:cluster": {"kubeconfig": os.environ["HELLO_KUBECONFIG"]},
    }
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Workspace.create(Path(scratch), "staging", {**base, "hello-world:image": image.format(digests[0])})
        try:
            record(workspace, "create-staging", "staging.json")
            workspace.up()
            workspace.write_config({**base, "hello-world:image": image.format(digests[1])})
            record(workspace, "update-image", "staging.json")
            workspace.write_config({**base, "hello-world:image": image.format(digests[0]), "hello-world:replicas": 1})
            record(workspace, "policy-violation", "dev.json")
            workspace.write_config(
                {**base, "hello-world:image": image.format(digests[0]), "hello-world:namespace": "review-moved"}
            )
            record(workspace, "replace-namespace", "staging.json")
        finally:
            workspace.pulumi("destroy", "--yes", "--skip-preview", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
