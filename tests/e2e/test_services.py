"""Several services behind one Ingress, end to end: a stack with two further services, each answering its own
message, deployed on the local cluster, each checked by its own Job, and reached through the platform's ingress
controller by host and by path.

Needs the full local platform with its ingress controller (Traefik, IngressClass `traefik`, on
``HELLO_INGRESS_HTTP`` and ``HELLO_INGRESS_HTTPS``), which `make test` starts; the tests fail, never skip, when it
is missing. They run in file order.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from settings.stack_files import plain_config
from tests.e2e.test_exercise import first_answer, kubectl
from tests.e2e.test_ingress import HTTPS_PORT, curl_body, http_get
from tests.engine.fixtures import LocalRegistry, Teardowns, building_workspace, local_cluster
from tests.engine.workspace import Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]

STACK = "services"
NODE_PORT = 31697
NAMESPACE = "hello-world-services"
REPOSITORY = "hello-world-services"
MAIN_HOST = "services.hello-pulumi.test"
BETA_HOST = "beta-services.hello-pulumi.test"
SERVICES = [
    {"name": "hello-v2", "message": "Hello World v2", "path": "/v2"},
    {"name": "hello-beta", "message": "Hello Beta", "host": BETA_HOST, "replicas": "1"},
]
URL_PATHS = [(MAIN_HOST, "/"), (MAIN_HOST, "/v2"), (BETA_HOST, "/")]
ROUTES = [
    (MAIN_HOST, "/", "Hello World\n"),
    (MAIN_HOST, "/v2", "Hello World v2\n"),
    (MAIN_HOST, "/v2/deeper", "Hello World v2\n"),
    (BETA_HOST, "/", "Hello Beta\n"),
]
"""Host, path, and the answer of the service that must serve it. Not ``/v2x``: the Ingress spec matches a Prefix path
by whole segments, so it belongs to ``/``, but Traefik 3.6 matches it as a string prefix and sends it to ``/v2``."""


def on_controller(url: str) -> str:
    """An HTTPS ``url`` (default port) at the port where this machine's ingress controller takes HTTPS."""
    parts = urlsplit(url)
    return f"https://{parts.hostname}:{HTTPS_PORT}{parts.path}"


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Workspace]:
    """A building stack with the main service and two further ones, on its own namespace, node port and repository."""
    assert shutil.which("kubectl"), "no kubectl on PATH: run through `make e2e` (it starts the platform)"
    workspace = building_workspace(
        tmp_path_factory.mktemp("services"),
        STACK,
        registry,
        REPOSITORY,
        namespace=NAMESPACE,
        nodePort=str(NODE_PORT),
        cluster=local_cluster(),
        ingress=json.dumps({"enabled": True, "host": MAIN_HOST, "className": "traefik"}),
        services=json.dumps(SERVICES),
    )
    yield workspace
    teardowns.destroy(workspace)


def test_up_runs_every_service_and_checks_each_on_its_own_answer(workspace: Workspace) -> None:
    workspace.up()

    deployments = json.loads(kubectl("get", "deployments", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    ready = {d["metadata"]["name"]: d["status"].get("readyReplicas") for d in deployments}
    assert ready == {"hello-world": 2, "hello-v2": 2, "hello-beta": 1}
    jobs = json.loads(kubectl("get", "jobs", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    expected = {job["metadata"]["labels"]["app.kubernetes.io/name"]: job["status"].get("succeeded") for job in jobs}
    assert expected == {"hello-world-verify": 1, "hello-v2-verify": 1, "hello-beta-verify": 1}
    outputs = workspace.outputs()
    assert outputs["verifiedImageRef"] == outputs["imageRef"]
    assert outputs["serviceUrls"] == {
        "hello-world": f"http://{MAIN_HOST}/",
        "hello-v2": f"http://{MAIN_HOST}/v2",
        "hello-beta": f"http://{BETA_HOST}/",
    }


def test_the_controller_routes_each_host_and_path_to_its_service(workspace: Workspace) -> None:
    # One Ingress holds every route, so the controller takes them up together: the first 200 is the route's answer.
    answers = {
        (host, path): first_answer(
            functools.partial(http_get, host, path), f"http://{host}{path}", lambda answer: answer.status == 200
        ).body
        for host, path, _ in ROUTES
    }

    assert answers == {(host, path): expected for host, path, expected in ROUTES}


def test_a_host_the_ingress_does_not_route_is_not_answered_by_any_service(workspace: Workspace) -> None:
    answer = http_get("nobody.hello-pulumi.test", "/")

    assert answer.status == 404, answer


def test_with_the_controllers_certificate_every_service_url_answers_over_verified_https(workspace: Workspace) -> None:
    ingress = {"enabled": True, "host": MAIN_HOST, "className": "traefik", "controllerCertificate": True}
    workspace.write_config({**plain_config(workspace.directory, workspace.stack), "hello-world:ingress": ingress})

    workspace.up()

    urls = workspace.outputs()["serviceUrls"]
    assert sorted(urls.values()) == sorted(f"https://{host}{path}" for host, path in URL_PATHS)
    expected = {"hello-world": "Hello World\n", "hello-v2": "Hello World v2\n", "hello-beta": "Hello Beta\n"}
    # The controller takes the TLS entry up within seconds; until then it answers 404 there.
    answers = {name: first_answer(functools.partial(curl_body, on_controller(url)), url) for name, url in urls.items()}
    assert answers == expected
