"""A failed promotion rolls its target back, with the real engine, registry and cluster, under a counted
request loop: dev and staging in namespaces rbpromo-dev and rbpromo-staging, node ports 31662 and 31663.

Apart from tests/e2e/test_rollback.py so that the two files' stacks roll out side by side under `make test`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.test_exercise import Load, kube_image, set_message
from tests.e2e.test_promotion import Chain, deployed, make_chain
from tests.e2e.test_rollback import LOAD_INTERVAL_SECONDS, NODE_PORT, ROLLOUT_TIMEOUT_SECONDS
from tests.engine.fixtures import LocalRegistry, Teardowns

pytestmark = [pytest.mark.engine, pytest.mark.platform]


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Chain]:
    """dev and staging (namespaces rbpromo-dev, rbpromo-staging), staging running dev's good, verified image."""
    settings = {"verification": json.dumps({"body": "Hello"}), "rolloutTimeoutSeconds": str(ROLLOUT_TIMEOUT_SECONDS)}
    chain = make_chain(tmp_path_factory.mktemp("rollback-promotion"), registry, "rbpromo", NODE_PORT + 1, **settings)
    with deployed(chain, teardowns, promoted=True) as made:
        yield made


def test_failed_promotion_rolls_the_target_back_without_dropping_requests(
    chain: Chain, figure: Callable[[str], None]
) -> None:
    good = chain.staging.outputs()["verifiedImageRef"]
    set_message(chain.dev, "Hello Broken World", healthy=False)
    failed = chain.dev.up(check=False)
    assert failed.returncode != 0, f"dev's rollout must fail for this test:\n{failed.stdout}\n{failed.stderr}"
    broken = kube_image("rbpromo-dev")
    assert broken != good
    before = chain.staging_file()

    with Load(f"http://127.0.0.1:{NODE_PORT + 2}/", LOAD_INTERVAL_SECONDS) as load:
        started = time.monotonic()
        digest, reason = broken.split("@")[1], "a broken build, to test the rollback"
        result = chain.promote(
            "--from", "dev", "--to", "staging", "--yes", "--digest", digest, "--skip-verification", reason
        )
        seconds = time.monotonic() - started

    print(result.stderr)
    figure(
        f"rollback e2e: failed promotion and its rollback took {seconds:.1f}s; "
        f"{load.result.sent} requests, {load.result.failed} failed"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"rolled back to {good}" in result.stderr, result.stderr
    assert result.stderr.rstrip().endswith("it runs now; the target's settings were restored"), result.stderr
    assert load.result.sent > 0
    assert load.result.failed == 0, load.result.errors[:5]
    assert kube_image("rbpromo-staging") == good
    assert chain.staging.outputs()["imageRef"] == good
    assert chain.staging_file() == before
