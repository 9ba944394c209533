"""Several services behind one Ingress, end to end: a stack with two further services, each answering its own
message, deployed on the local cluster, each checked by its own Job, and reached through the platform's ingress
controller by host and by path.

Needs the full local platform with its ingress controller (Traefik, IngressClass `traefik`, on
``HELLO_INGRESS_HTTP`` and ``HELLO_INGRESS_HTTPS``), which `make test` starts; the tests fail, never skip, when it
is missing. They run in file order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from settings.stack_files import plain_config
from tests.e2e.test_exercise import kubectl
from tests.engine.fixtures import LocalRegistry, Teardowns, building_workspace, local_cluster
from tests.engine.workspace import Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]

STACK = "services"
NODE_PORT = 31697
NAMESPACE = "hello-world-services"
REPOSITORY = "hello-world-services"
CONTROLLER_HTTP = os.environ.get("HELLO_INGRESS_HTTP", "127.0.0.1:8880")
"""Where the local platform's ingress controller takes plain HTTP (tooling/platform/env.sh)."""
CONTROLLER_HTTPS = os.environ.get("HELLO_INGRESS_HTTPS", "127.0.0.1:8843")
"""Where it takes HTTPS, with a default certificate from the platform's CA for ``*.hello-pulumi.test``."""
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


def through_controller(host: str, path: str) -> str:
    """The body the controller answers for ``host`` and ``path``, as a client resolving ``host`` to it gets it."""
    request = urllib.request.Request(f"http://{CONTROLLER_HTTP}{path}", headers={"Host": host})
    # Straight to loopback: a proxy from the environment has no business with this machine's controller.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        body: str = response.read().decode()
        return body


def eventually(host: str, path: str, expected: str, attempts: int = 30) -> str:
    """The controller's answer once it is ``expected``: it picks a new Ingress up within a few seconds."""
    body = ""
    for _ in range(attempts):
        try:
            body = through_controller(host, path)
            if body == expected:
                return body
        except (urllib.error.URLError, OSError) as error:
            body = repr(error)
        time.sleep(1)
    return body


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
    answers = {(host, path): eventually(host, path, expected) for host, path, expected in ROUTES}

    assert answers == {(host, path): expected for host, path, expected in ROUTES}


def test_a_host_the_ingress_does_not_route_is_not_answered_by_any_service(workspace: Workspace) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        through_controller("nobody.hello-pulumi.test", "/")

    assert raised.value.code == 404


def over_https(url: str) -> subprocess.CompletedProcess[str]:
    """``url`` asked of the controller's HTTPS port as a client resolving its host there, checked against the CA."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    address, _, port = CONTROLLER_HTTPS.rpartition(":")
    return subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--noproxy",
            "*",
            "--cacert",
            os.environ["HELLO_CA_CERT"],
            "--resolve",
            f"{host}:{port}:{address}",
            f"https://{host}:{port}{parts.path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_with_the_controllers_certificate_every_service_url_answers_over_verified_https(workspace: Workspace) -> None:
    ingress = {"enabled": True, "host": MAIN_HOST, "className": "traefik", "controllerCertificate": True}
    workspace.write_config({**plain_config(workspace.directory, workspace.stack), "hello-world:ingress": ingress})

    workspace.up()

    urls = workspace.outputs()["serviceUrls"]
    assert sorted(urls.values()) == sorted(f"https://{host}{path}" for host, path in URL_PATHS)
    expected = {"hello-world": "Hello World\n", "hello-v2": "Hello World v2\n", "hello-beta": "Hello Beta\n"}
    answers = {}
    for name, url in urls.items():
        for _ in range(30):  # the controller picks the TLS entry up within seconds
            result = over_https(url)
            if result.returncode == 0 and result.stdout == expected[name]:
                break
            time.sleep(1)
        answers[name] = result.stdout if result.returncode == 0 else result.stderr
    assert answers == expected
