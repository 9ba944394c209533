"""Two machines, one team: two checkouts with their own homes share a stack on the platform's S3 state store.

Each checkout is a copy of the project with its own HOME, Pulumi home and `.state/` (nothing shared but the
team's passphrase, the state store's credentials and the evidence keys, as a team's secret store holds them). A
deploys one dev-like stack to the shared backend, B previews it with no changes, reads its secrets and promotes
it to staging, which A then sees as it is; then both run `up` at once: exactly one holds the backend's lock,
the other fails at once naming the holder, and the cluster matches the state; a SIGKILLed run's lock is named
as stale. Needs the local platform with its state store (`make platform`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from ops import evidence
from ops.stack_copy import stack_copy_file
from settings.stack_files import plain_config, read_settings, set_settings
from tests.e2e.test_exercise import kube_image
from tests.engine.workspace import COMMAND_TIMEOUT_SECONDS, copy_checkout

pytestmark = [pytest.mark.engine, pytest.mark.platform]

NODE_PORT = "31693"
NAMESPACE = "hello-world-team"
STAGING_NODE_PORT = "31694"
STAGING_NAMESPACE = "hello-world-team-staging"
REPOSITORY = "hello-world-team"
LOCK_WAIT_SECONDS = 60


def state_store_env() -> dict[str, str]:
    """The state store's address and credentials, as a team member's environment holds them (never argv)."""
    credentials = Path(os.environ["HELLO_STATE_STORE_CREDENTIALS"])
    assert credentials.exists(), f"{credentials} missing: start the platform with `make platform`"
    found = dict(line.split("=", 1) for line in credentials.read_text().splitlines() if "=" in line)
    return {**found, "AWS_REGION": os.environ["HELLO_STATE_STORE_REGION"]}


@dataclass
class Checkout:
    """One machine's checkout of the project, with a home of its own."""

    directory: Path
    env: dict[str, str] = field(repr=False)
    """Holds the state store's secret key and the team's passphrase: never shown in a failure."""

    def start(self, command: str, *args: str) -> subprocess.Popen[str]:
        """``python -m ops COMMAND ARGS`` (default: the dev stack) in this checkout."""
        return subprocess.Popen(
            [sys.executable, "-m", "ops", command, *(args or ("dev",))],
            cwd=self.directory,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def ops(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        process = self.start(command, *args)
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def pulumi(self, *args: str, stack: str = "dev") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pulumi", *args, "--stack", stack, "--non-interactive"],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )


def checkout(base: Path, backend_url: str, passphrase: str) -> Checkout:
    directory = base / "project"
    copy_checkout(directory)
    build = read_settings(directory, "dev")["build"]
    set_settings(
        directory, "dev", {"nodePort": NODE_PORT, "namespace": NAMESPACE, "build": {**build, "repository": REPOSITORY}}
    )
    set_settings(directory, "staging", {"nodePort": STAGING_NODE_PORT, "namespace": STAGING_NAMESPACE})
    home = base / "home"
    pulumi_home = home / ".pulumi"
    pulumi_home.mkdir(parents=True)
    (pulumi_home / "plugins").symlink_to(Path(os.environ.get("PULUMI_HOME", Path.home() / ".pulumi")) / "plugins")
    env = {
        **os.environ,
        **state_store_env(),
        "HOME": str(home),
        "PULUMI_HOME": str(pulumi_home),
        "HELLO_STATE": str(home / ".local" / "state" / "hello-pulumi"),
        "PULUMI_BACKEND_URL": backend_url,
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "DOCKER_HOST": f"unix://{os.environ['HELLO_DOCKER_SOCK']}",
        # The team's evidence keys, the same files on both machines: what A's deploy signs, B's promotion trusts.
        evidence.KEY_VARIABLE: os.environ[evidence.KEY_VARIABLE],
        evidence.PUBLIC_KEY_VARIABLE: os.environ[evidence.PUBLIC_KEY_VARIABLE],
    }
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    return Checkout(directory, env)


@dataclass
class Team:
    a: Checkout
    b: Checkout
    store: Path
    """The team's prefix in the state store's posix folder, where the tests look at locks and backups."""

    @property
    def locks(self) -> Path:
        return self.store / ".pulumi" / "locks"

    @property
    def stacks(self) -> Path:
        """Where the state store keeps the project's checkpoints, one ``<stack>.json`` each."""
        return self.store / ".pulumi" / "stacks" / "hello-world"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, pulumi_cli: str) -> Iterator[Team]:
    base = tmp_path_factory.mktemp("team")
    prefix = f"team-{secrets.token_hex(4)}"
    url = os.environ["HELLO_STATE_STORE_URL"].replace("?", f"/{prefix}?", 1)
    passphrase = secrets.token_urlsafe(24)
    made = Team(
        checkout(base / "a", url, passphrase),
        checkout(base / "b", url, passphrase),
        Path(os.environ["HELLO_RUN"]) / "state-store" / "data" / os.environ["HELLO_STATE_BUCKET"] / prefix,
    )
    up = made.a.ops("up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield made
    finally:
        # B's promotion made staging; a stack that was never made has nothing to destroy.
        staging = made.a.ops("destroy", "staging") if (made.stacks / "staging.json").exists() else None
        destroy = made.a.ops("destroy")
        # The team's prefix goes with it (older versions of its objects stay in the store's versions folder).
        shutil.rmtree(made.store, ignore_errors=True)
        assert destroy.returncode == 0, destroy.stdout + destroy.stderr
        assert staging is None or staging.returncode == 0, staging.stdout + staging.stderr


def test_b_previews_a_s_deploy_with_no_changes(team: Team) -> None:
    preview = team.b.ops("preview")

    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "14 unchanged" in preview.stdout, preview.stdout


def test_each_machine_keeps_its_own_salt_and_no_tracked_file_changes(team: Team) -> None:
    """The checkpoint carries its own secrets provider state (salt included): the passphrase alone is shared."""

    def salt(checkout: Checkout) -> str:
        found: str = yaml.safe_load(stack_copy_file(checkout.directory, "dev").read_text())["encryptionsalt"]
        return found

    assert salt(team.b) != salt(team.a)
    for checkout in (team.a, team.b):
        assert "encryptionsalt" not in (checkout.directory / "Pulumi.dev.yaml").read_text()


def test_b_reads_the_secrets_a_deployed(team: Team) -> None:
    password = Path(os.environ["HELLO_REGISTRY_PASSWORD_FILE"]).read_text().strip()

    exported = team.b.pulumi("stack", "export", "--show-secrets")

    assert exported.returncode == 0, exported.stderr
    assert password in exported.stdout, "B could not decrypt the registry password A deployed with"


def test_b_promotes_a_s_dev_to_staging_with_the_evidence_a_s_deploy_signed_and_a_sees_it(team: Team) -> None:
    dev_image = json.loads(team.a.pulumi("stack", "output", "--json").stdout)["imageRef"]

    promoted = team.b.ops("promote", "--from", "dev", "--to", "staging", "--yes")
    # A team shares the promoted stack file through git: A pulls what B committed.
    shutil.copy2(team.b.directory / "Pulumi.staging.yaml", team.a.directory / "Pulumi.staging.yaml")
    preview = team.a.ops("preview", "staging")
    exported = team.a.pulumi("stack", "export", "--show-secrets", stack="staging")

    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert f"Evidence: {dev_image.split('@')[1]} passed verification in stack 'dev'" in promoted.stdout
    assert kube_image(STAGING_NAMESPACE) == dev_image
    assert plain_config(team.b.directory, "staging")["hello-world:image"] == dev_image
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert re.search(r"\n\s+\d+ unchanged\n", preview.stdout), preview.stdout
    assert not re.search(r"to (create|update|delete|replace)", preview.stdout), preview.stdout
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["deployment"]["resources"], "A read no resources of B's staging"


def ciphertexts(exported: str) -> set[str]:
    """Every secret's ciphertext in a ``pulumi stack export``: each writer encrypts anew, with a nonce of its own."""
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("ciphertext"), str):
                found.add(value["ciphertext"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(exported))
    return found


def lock_files(locks: Path) -> set[Path]:
    """The lock files the state store's folder holds: a released one stays there as an old version, hidden from S3."""
    return set(locks.rglob("*.json")) if locks.exists() else set()


def wait_for_lock(locks: Path, before: set[Path]) -> Path:
    """The lock file an update took after ``before`` was listed (each lock has a file of its own)."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while time.monotonic() < deadline:
        if new := lock_files(locks) - before:
            (found,) = new
            return found
        time.sleep(0.1)
    raise AssertionError(f"no lock appeared under {locks} in {LOCK_WAIT_SECONDS}s")


def test_two_ups_at_once_one_proceeds_and_the_other_names_the_lock_holder(team: Team) -> None:
    # An edit of the app: A's up builds, rolls out and verifies it, so it holds the lock for seconds, not the
    # second or so a no-op up takes (B's up could otherwise start after it ended).
    server = team.a.directory / "app" / "server.js"
    server.write_text(server.read_text() + "\n// an edit that takes a build and a rollout\n")
    before = lock_files(team.locks)
    first = team.a.start("up")
    lock = wait_for_lock(team.locks, before)
    holder = json.loads(lock.read_text())

    second = team.b.ops("up")
    stdout, stderr = first.communicate(timeout=COMMAND_TIMEOUT_SECONDS)

    assert first.returncode == 0, stdout + stderr
    assert second.returncode == 1, second.stdout + second.stderr
    assert "error: stack 'dev' is locked by another update: " in second.stderr, second.stderr
    assert f"(pid {holder['pid']})" in second.stderr
    assert "wait for it to end and run again" in second.stderr
    assert "pulumi cancel --stack dev --yes" in second.stderr
    assert "roll back" not in second.stderr
    exported = team.a.pulumi("stack", "export")
    assert exported.returncode == 0, exported.stderr
    # Nothing half-written: the state names the image A's up built, the cluster runs it, and a refresh finds
    # nothing the cluster holds otherwise, from either checkout (B's app/ lacks A's edit: code, not drift).
    (stack,) = [r for r in json.loads(exported.stdout)["deployment"]["resources"] if r["type"] == "pulumi:pulumi:Stack"]
    assert kube_image(NAMESPACE) == stack["outputs"]["imageRef"]
    for checkout in (team.a, team.b):
        drift = checkout.ops("drift")
        assert drift.returncode == 0, drift.stdout + drift.stderr


def test_a_killed_run_s_lock_is_named_stale_with_the_command_that_clears_it(team: Team) -> None:
    before = lock_files(team.locks)
    killed = team.a.start("up")
    holder = json.loads(wait_for_lock(team.locks, before).read_text())
    # pulumi runs in a process group of its own (ops/engine.py): a machine that dies takes both.
    os.kill(holder["pid"], signal.SIGKILL)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)

    after = team.b.ops("up")
    cancel = team.b.pulumi("cancel", "--yes")
    written_by_a = ciphertexts(team.a.pulumi("stack", "export").stdout)
    again = team.b.ops("up")
    written_by_b = ciphertexts(team.a.pulumi("stack", "export").stdout)
    read_by_a = team.a.pulumi("stack", "export", "--show-secrets")

    assert after.returncode == 1, after.stdout + after.stderr
    assert "the lock is stale, left by a run that was killed" in after.stderr, after.stderr
    assert "pulumi cancel --stack dev --yes" in after.stderr
    assert cancel.returncode == 0, cancel.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    # B's up encrypted the state's secrets anew, and A decrypts them: the passphrase is all the machines share.
    assert written_by_b, "the state holds no secret"
    assert not written_by_b & written_by_a, "B's up left A's ciphertexts: it wrote no secret of its own"
    assert read_by_a.returncode == 0, read_by_a.stderr
    password = Path(os.environ["HELLO_REGISTRY_PASSWORD_FILE"]).read_text().strip()
    assert password in read_by_a.stdout, "A could not decrypt the registry password B's up wrote"


def test_an_earlier_checkpoint_is_restored_from_pulumi_s_own_backups(team: Team, tmp_path: Path) -> None:
    backups = sorted((team.store / ".pulumi" / "backups" / "hello-world" / "dev").glob("dev.*.json"))
    earlier = json.loads(backups[-2].read_text())["checkpoint"]["latest"]
    restore = tmp_path / "restore.json"
    restore.write_text(json.dumps({"version": 3, "deployment": earlier}))

    imported = team.b.pulumi("stack", "import", "--file", str(restore))
    exported = team.b.pulumi("stack", "export")
    drift = team.b.ops("drift")

    assert len(backups) >= 2, backups
    assert imported.returncode == 0, imported.stderr
    resources = json.loads(exported.stdout)["deployment"]["resources"]
    assert [r["urn"] for r in resources] == [r["urn"] for r in earlier["resources"]]
    assert drift.returncode in (0, 4), drift.stdout + drift.stderr
