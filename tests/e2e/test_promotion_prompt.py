"""A promotion waiting at its prompt holds its target: an up of the target meanwhile never deploys the digest that
is still unconfirmed, and once the promotion is declined the target keeps its old digest.

Needs the full local platform, which `make test` starts. dev and staging in namespaces prompt-dev and
prompt-staging, node ports 31711 and 31712, repository hello-world-prompt. The promotion answers on a
pseudo-terminal (it asks only a terminal), its output read from a pipe.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import yaml

from tests.e2e.test_exercise import kube_image, set_message
from tests.e2e.test_promote_verified import CHECK
from tests.e2e.test_promotion import Chain, deployed, make_chain
from tests.engine.fixtures import LocalRegistry, Teardowns
from tests.engine.workspace import ROOT

pytestmark = [pytest.mark.engine, pytest.mark.platform]

PROMPT_SECONDS = 600
"""How long the promotion may take to reach its prompt (it checks evidence and the registry, then previews)."""
UP_WAITS_SECONDS = 3
"""How long the up runs against the held lock before the promotion is declined: well within the lock's 30 s."""
RUN_TIMEOUT_SECONDS = 900


@dataclass
class Output:
    """Everything a process wrote to a pipe, gathered by a thread as it comes."""

    chunks: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def gather(self, stream: int) -> threading.Thread:
        def read() -> None:
            while data := os.read(stream, 4096):
                self.chunks.append(data.decode(errors="replace"))

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Chain]:
    """dev and staging deployed with the same image; then dev deployed with a newer one, verified."""
    chain = make_chain(tmp_path_factory.mktemp("prompt"), registry, "prompt", 31711, verification=CHECK)
    with deployed(chain, teardowns, promoted=True) as made:
        set_message(made.dev, "Hello Newer World")
        made.up(made.dev)
        yield made


def staging_image(chain: Chain) -> str:
    image: str = yaml.safe_load(chain.staging_file())["config"]["hello-world:image"]
    return image


def ops_up(chain: Chain) -> subprocess.Popen[str]:
    """``python -m ops up staging`` (what `make up STACK=staging` runs), started in the background."""
    env = {**chain.staging.env, "HELLO_PROJECT_DIR": str(chain.staging.directory)}
    return subprocess.Popen(
        [sys.executable, "-m", "ops", "up", "staging"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_an_up_during_a_promotions_prompt_then_a_decline_leaves_the_target_on_its_old_digest(
    chain: Chain, figure: Callable[[str], None]
) -> None:
    old, new = chain.staging.outputs()["imageRef"], chain.dev.outputs()["imageRef"]
    assert old != new
    assert kube_image("prompt-staging") == old == staging_image(chain)
    tracked = chain.staging_file()
    terminal, answers = pty.openpty()
    reader, writer = os.pipe()
    env = {
        **chain.dev.env,
        "HELLO_PROJECT_DIR": str(chain.dev.directory),
        "REGISTRY_USERNAME": chain.registry.username,
        "REGISTRY_PASSWORD": chain.registry.password,
    }
    promotion = subprocess.Popen(
        [sys.executable, "-m", "ops", "promote", "--from", "dev", "--to", "staging"],
        cwd=ROOT,
        env=env,
        stdin=answers,
        stdout=writer,
        stderr=writer,
    )
    os.close(writer)
    output = Output()
    gathering = output.gather(reader)
    try:
        deadline = time.monotonic() + PROMPT_SECONDS
        while "[y/N]" not in output.text and promotion.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "[y/N]" in output.text, output.text

        up = ops_up(chain)
        up_started = time.monotonic()
        time.sleep(UP_WAITS_SECONDS)
        assert up.poll() is None, "the up must wait for the promotion's lock"
        os.write(terminal, b"n\n")
        declined = promotion.wait(RUN_TIMEOUT_SECONDS)
        up_output, _ = up.communicate(timeout=RUN_TIMEOUT_SECONDS)
        up_seconds = time.monotonic() - up_started
    finally:
        if promotion.poll() is None:
            promotion.kill()
        os.close(terminal)
        os.close(answers)
    gathering.join(10)

    waited = "gave up on the lock" if "is locked by" in up_output else "waited for the lock, then deployed"
    figure(f"promotion prompt e2e: an up started at the prompt {waited}, exit {up.returncode} after {up_seconds:.1f}s")
    assert declined == 1, output.text
    assert "declined; nothing was deployed" in output.text, output.text
    # The up waited for the lock, then deployed what the tracked file holds (or gave up naming the promotion).
    assert up.returncode == 0 or "is locked by" in up_output, up_output
    assert new not in up_output, up_output
    assert kube_image("prompt-staging") == old
    assert chain.staging.outputs()["imageRef"] == old
    assert chain.staging_file() == tracked
    assert staging_image(chain) == old

    again = chain.up(chain.staging)

    assert new not in again.stdout + again.stderr
    assert kube_image("prompt-staging") == old
    assert chain.staging.outputs()["imageRef"] == old
