"""A promotion to a stack with further services moves their one image and keeps their settings as written.

Runs `python -m ops promote` against the stand-in pulumi and kubectl of tests/unit/ops/test_promotion.py.
"""

from __future__ import annotations

import signal

from tests.unit.ops.test_promotion import (  # noqa: F401 - fixtures
    PROCESS_TIMEOUT_SECONDS,
    Promotion,
    fake_registry,
    promotion,
)

SERVICES = (
    "  hello-world:ingress:\n"
    "    enabled: true\n"
    "    host: qa.hello-pulumi.test\n"
    "    className: traefik\n"
    "  # the second variant, on its own path\n"
    "  hello-world:services:\n"
    "    - name: hello-v2\n"
    "      message: Hello World v2\n"
    "      path: /v2\n"
)


def test_promotion_pins_one_image_for_every_service_and_keeps_the_services_as_written(
    promotion: Promotion,  # noqa: F811 - the fixture
) -> None:
    staging = (promotion.project / "Pulumi.staging.yaml").read_text()
    (promotion.project / "Pulumi.qa.yaml").write_text(staging + SERVICES)

    process = promotion.start("--from", "dev", "--to", "qa", "--out-of-chain", "--yes")
    promotion.wait_for("up_started", process)
    during = promotion.stack_file("qa").decode()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)

    assert f"  hello-world:image: {promotion.image}\n" in during
    assert during.count("hello-world:image:") == 1
    assert SERVICES in during
