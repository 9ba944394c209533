"""A stack's Ingress served by the local platform's ingress controller (Traefik): HTTPS that a client checks against
the platform's CA, HTTP redirected to HTTPS when the stack asks, and a rolling update through the Ingress that loses
no request.

Needs the full local platform with its ingress controller, which `make test` starts (`make platform`). Deploys a
dev-like stack in namespace hello-world-ingress, node port 31685, repository hello-world-ingress, whose Ingress is
prod's, read from Pulumi.prod.yaml (class traefik, host hello.hello-pulumi.test, the controller's default
certificate, the redirect to HTTPS: off until a test turns it on). Every request goes to loopback. The tests run in
file order.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from ops.ingress_objects import IngressObjectsMissingError, check_ingress_objects
from settings.stack_files import plain_config
from tests.e2e.test_exercise import Load, first_answer, kube_object, set_message
from tests.engine.fixtures import LocalRegistry, Teardowns, building_workspace, local_cluster
from tests.engine.workspace import ROOT, Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]

STACK = "ingress"
NAMESPACE = "hello-world-ingress"
NODE_PORT = 31685
REPOSITORY = "hello-world-ingress"
PROD_INGRESS: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]["hello-world:ingress"]
"""prod's Ingress as its stack file has it: the stack here deploys exactly that, its redirect off until a test asks."""
HOST: str = PROD_INGRESS["host"]
HTTP_ADDRESS = os.environ.get("HELLO_INGRESS_HTTP", "127.0.0.1:8880")
"""Where the local platform's ingress controller takes plain HTTP (tooling/platform/env.sh)."""
HTTPS_ADDRESS = os.environ.get("HELLO_INGRESS_HTTPS", "127.0.0.1:8843")
"""Where it takes HTTPS, with a default certificate from the platform's CA for ``*.hello-pulumi.test``."""
HTTPS_PORT = int(HTTPS_ADDRESS.rpartition(":")[2])
URL = f"https://{HOST}:{HTTPS_PORT}/"
INGRESS = {**PROD_INGRESS, "redirectToHttps": False}
ROLLOUT_TIMEOUT_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 2
LOAD_INTERVAL_SECONDS = 0.02
SERVED_WITHIN_SECONDS = 60
"""The controller sees a new Ingress and its endpoints within seconds; this bounds the wait for it."""


def ca_cert() -> str:
    path = os.environ.get("HELLO_CA_CERT", "/var/lib/hello-pulumi/ca/ca.crt")
    assert os.path.exists(path), f"{path} missing: start the platform with `make platform`"
    return path


def curl(url: str = URL) -> subprocess.CompletedProcess[str]:
    """The request a person makes: the host resolved to the controller, the certificate checked against the
    platform's CA, straight to loopback (a proxy from the environment has no business with this machine)."""
    host_port = url.split("/")[2]
    resolve = f"{host_port}:{HTTPS_ADDRESS.rpartition(':')[0]}"
    return subprocess.run(
        [
            *("curl", "-sS", "--fail-with-body", "--noproxy", "*", "--max-time", str(REQUEST_TIMEOUT_SECONDS)),
            *("--cacert", ca_cert(), "--resolve", resolve, url),
        ],
        capture_output=True,
        text=True,
        timeout=REQUEST_TIMEOUT_SECONDS + 5,
        check=False,
    )


def curl_body(url: str = URL) -> str:
    """The body :func:`curl` gets for ``url``; an ``OSError`` for no answer or a status other than 2xx."""
    result = curl(url)
    if result.returncode != 0:
        raise OSError(f"curl exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def curl_eventually(expected: str) -> str:
    """The first body through the Ingress that contains ``expected``."""
    return first_answer(curl_body, URL, lambda body: expected in body, SERVED_WITHIN_SECONDS)


def https_get(context: ssl.SSLContext) -> tuple[int, str]:
    """GET / through the HTTPS entry point, with SNI and Host naming the Ingress's host, the certificate checked."""
    ip, _, port = HTTPS_ADDRESS.rpartition(":")
    with (
        socket.create_connection((ip, int(port)), timeout=REQUEST_TIMEOUT_SECONDS) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        connection = http.client.HTTPConnection(HOST, int(port), timeout=REQUEST_TIMEOUT_SECONDS)
        connection.sock = tls
        connection.request("GET", "/", headers={"Host": f"{HOST}:{port}"})
        response = connection.getresponse()
        return response.status, response.read().decode()


@dataclass(frozen=True)
class Answer:
    status: int
    location: str | None
    body: str


def http_get(host: str = HOST, path: str = "/") -> Answer:
    """GET ``path`` through the controller's plain HTTP entry point, Host naming ``host``; no redirect followed."""
    ip, _, port = HTTP_ADDRESS.rpartition(":")
    connection = http.client.HTTPConnection(ip, int(port), timeout=REQUEST_TIMEOUT_SECONDS)
    try:
        connection.request("GET", path, headers={"Host": f"{host}:{port}"})
        response = connection.getresponse()
        return Answer(response.status, response.headers["Location"], response.read().decode())
    finally:
        connection.close()


def https_body(context: ssl.SSLContext) -> str:
    """One request of the load through the Ingress: its body, or an error for anything but 200."""
    status, body = https_get(context)
    if status != 200:
        raise OSError(f"HTTP {status}: {body[:80]!r}")
    return body


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Workspace]:
    """A dev-like stack behind an Ingress of class traefik, with its own namespace, node port and repository."""
    ingress_class = json.loads(
        subprocess.run(
            ["kubectl", "--kubeconfig", os.environ["HELLO_KUBECONFIG"], "get", "ingressclass", "traefik", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        or "{}"
    )
    assert ingress_class.get("spec", {}).get("controller") == "traefik.io/ingress-controller", (
        "no IngressClass traefik: start the platform's ingress controller with `make platform`"
    )
    workspace = building_workspace(
        tmp_path_factory.mktemp("ingress"),
        STACK,
        registry,
        REPOSITORY,
        namespace=NAMESPACE,
        nodePort=str(NODE_PORT),
        rolloutTimeoutSeconds=str(ROLLOUT_TIMEOUT_SECONDS),
        cluster=local_cluster(),
        verification=json.dumps({"body": "Hello"}),
        ingress=json.dumps(INGRESS),
    )
    yield workspace
    teardowns.destroy(workspace)


def set_ingress(workspace: Workspace, **changes: Any) -> None:
    config = plain_config(workspace.directory, workspace.stack)
    config["hello-world:ingress"] = json.dumps({**INGRESS, **changes})
    workspace.write_config(config)


def test_ingress_serves_hello_world_over_https_with_the_platform_certificate(
    workspace: Workspace, figure: Callable[[str], None]
) -> None:
    workspace.up()

    started = time.monotonic()
    assert curl_eventually("Hello World") == "Hello World\n"
    figure(
        f"ingress: first up {workspace.last_seconds:.1f}s, then served over HTTPS in {time.monotonic() - started:.1f}s"
    )
    ingress = kube_object("ingress", "hello-world", NAMESPACE)
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["tls"] == [{"hosts": [HOST]}]
    assert workspace.outputs()["ingressUrl"] == f"https://{HOST}/"


def test_ingress_certificate_is_refused_without_the_platform_ca(workspace: Workspace) -> None:
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "5", "--resolve", f"{HOST}:{HTTPS_PORT}:127.0.0.1", URL],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        # No SSL_CERT_DIR (env.sh adds the platform's CA to it): only the system's trust store.
        env={key: value for key, value in os.environ.items() if key != "SSL_CERT_DIR"},
    )

    assert result.returncode == 60, result  # curl: the peer's certificate cannot be authenticated


def test_plain_http_is_served_until_the_stack_asks_for_the_redirect(workspace: Workspace) -> None:
    answer = http_get()

    assert answer.status == 200, answer


def test_plain_http_redirects_to_https_when_the_stack_asks(workspace: Workspace) -> None:
    set_ingress(workspace, redirectToHttps=True)
    assert json.loads(plain_config(workspace.directory, STACK)["hello-world:ingress"]) == PROD_INGRESS

    workspace.up()

    answer = first_answer(http_get, f"http://{HOST}/", lambda answer: answer.status != 200, SERVED_WITHIN_SECONDS)
    assert answer.status in (301, 308), answer
    assert answer.location == URL
    assert curl_eventually("Hello World") == "Hello World\n"


def test_rolling_update_through_the_ingress_loses_no_request(
    workspace: Workspace, figure: Callable[[str], None]
) -> None:
    set_message(workspace, "Hello Rolled World")

    context = ssl.create_default_context(cafile=ca_cert())
    with Load(interval_seconds=LOAD_INTERVAL_SECONDS, request=functools.partial(https_body, context)) as load:
        workspace.up()
        # The old pods drain after the up returns: keep the load on until the new version alone answers.
        curl_eventually("Hello Rolled World")
        time.sleep(10)
    result = load.result

    figure(
        f"ingress: rolling update {workspace.last_seconds:.1f}s, {result.sent} HTTPS requests through the Ingress, "
        f"{result.failed} failed"
    )
    assert result.sent > 0
    assert result.failed == 0, result.errors[:5]
    assert {"Hello World\n", "Hello Rolled World\n"} <= result.bodies


def test_a_class_or_secret_the_real_cluster_lacks_is_named_before_anything_runs(workspace: Workspace) -> None:
    # What `make preview`, `make up`, a review and a promotion ask first, put to the platform's own API server.
    settings = {
        "namespace": NAMESPACE,
        "cluster": json.dumps({"kubeconfig": os.environ["HELLO_KUBECONFIG"]}),
        "ingress": json.dumps({**INGRESS, "className": "no-such-class", "tlsSecretName": "no-such-secret"}),
    }
    served = {**settings, "ingress": json.dumps({**INGRESS, "className": "traefik"})}

    with pytest.raises(IngressObjectsMissingError) as raised:
        check_ingress_objects(settings, STACK, workspace.directory, say=pytest.fail)
    check_ingress_objects(served, STACK, workspace.directory, say=pytest.fail)

    problems = str(raised.value).splitlines()[1:]
    assert problems[0] == (
        "  - ingress.className must be an IngressClass of the stack's cluster (it has traefik), got 'no-such-class'"
    )
    assert problems[1].startswith(f"  - ingress.tlsSecretName must be a Secret in namespace {NAMESPACE!r}")
