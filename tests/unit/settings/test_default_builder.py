"""A build section that names no builder builds with docker-build, the default."""

from __future__ import annotations

import json

from tests.conftest import FAKE_DIGEST, Deploy, stack_config, with_password

DOCKER_BUILD_IMAGE = "docker-build:index:Image"
DOCKER_IMAGE = "docker:index/image:Image"


def test_build_without_a_builder_builds_with_docker_build(deploy: Deploy) -> None:
    config = with_password(stack_config("dev"))
    build = {key: value for key, value in json.loads(config["hello-world:build"]).items() if key != "builder"}
    config["hello-world:build"] = json.dumps(build)

    deployed = deploy("dev", config, ("hello-world:registryPassword",))

    image = deployed.one(DOCKER_BUILD_IMAGE)
    assert image.inputs["tags"] == ["127.0.0.1:5000/hello-world:dev"]
    assert image.inputs["push"] is True
    assert not deployed.of_type(DOCKER_IMAGE)
    assert deployed.outputs["imageRef"] == f"127.0.0.1:5000/hello-world@{FAKE_DIGEST}"
