"""The local platform's network guards, end to end: nothing from a pod or a container has a route
off this machine, and the app's NetworkPolicy is enforced (kube-router).

Needs the full local platform (Docker engine in bridge mode, registry, Kubernetes), which
`make e2e` starts; deploys a dev-like stack and a client pod in a namespace of its own. Sends
packets only to pod, service and node addresses of this cluster: the outside addresses below are
documentation ranges that appear only in route look-ups (`ip route get` sends nothing).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.test_exercise import KUBECTL_CACHE, kube_image, kube_object, kubectl
from tests.engine.fixtures import LocalRegistry, Teardowns, building_workspace, local_cluster
from tests.engine.workspace import Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]

STACK = "network"
NAMESPACE = "hello-world-network"
NODE_PORT = 31641
CLIENT_NAMESPACE = "hello-network-e2e-client"
CLIENT_PORT = 8080
# A second listener started inside an app pod: a port the app's policy does not open.
EXTRA_PORT = 9090
POD_BRIDGE = "hellocni0"
CONTAINER_BRIDGE = "docker0"
NODE_IP = "10.213.0.1"
KUBELET_PORT = 10250
# RFC 5737 documentation addresses: 192.0.2.1 may be on a connected network (it is this VM's
# gateway), 203.0.113.1 is reached by the default route. Only ever looked up, never sent to.
OUTSIDE = ("192.0.2.1", "203.0.113.1")
REFUSED_LOOKUP = ("No route to host", "Network is unreachable")
PROBE_TIMEOUT_MS = 3000
SETTLE_SECONDS = 30

# Run inside a pod: one GET to argv[1]:argv[2] that waits at most argv[3] ms; prints
# "open <status>" or "blocked <reason>".
PROBE = """
const [host, port, timeout] = process.argv.slice(1);
const request = require('http').get({host, port: Number(port), path: '/', timeout: Number(timeout)}, (response) => {
  console.log('open ' + response.statusCode);
  process.exit(0);
});
request.on('timeout', () => { console.log('blocked timeout'); process.exit(0); });
request.on('error', (error) => { console.log('blocked ' + error.code); process.exit(0); });
"""
# Answers every request on port argv[1].
LISTENER = "require('http').createServer((q, s) => s.end('listener\\n')).listen(Number(process.argv[1]));"
# The same, started by `kubectl exec -i`: ends when kubectl closes its standard input, or after 10 minutes.
EXEC_LISTENER = LISTENER + "process.stdin.on('end', () => process.exit(0)).resume(); setTimeout(process.exit, 600000);"


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


def ip_json(*args: str) -> list[dict[str, Any]]:
    result = ip("-j", *args)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def families() -> list[str]:
    """The address families of this kernel (IPv6 can be switched off at boot)."""
    return ["-4", "-6"] if os.path.exists("/proc/net/if_inet6") else ["-4"]


def first_rule_for(family: str, interface: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The one rule for packets arriving on ``interface``, and the other rules ahead of it that match them.

    ``local`` does not count: it only delivers to this machine's own addresses.
    """
    rules = ip_json(family, "rule", "show")
    ours = [rule for rule in rules if rule.get("iif") == interface]
    assert len(ours) == 1, f"expected one `ip {family} rule` for iif {interface}, got {rules}"
    ahead = [
        rule
        for rule in rules
        if rule["priority"] < ours[0]["priority"]
        and rule.get("table") != "local"
        and rule.get("iif", interface) == interface
    ]
    return ours[0], ahead


def refused_lookup(destination: str, source: str, interface: str) -> str:
    """``ip route get`` for a packet from ``source`` arriving on ``interface``: the kernel's refusal, or the route."""
    result = ip("route", "get", destination, "from", source, "iif", interface)
    if result.returncode != 0 and any(reason in result.stderr for reason in REFUSED_LOOKUP):
        return ""
    return (result.stdout + result.stderr).strip()


def kubectl_command(*args: str) -> list[str]:
    # Its own cache dir, as tests.e2e.test_exercise.kubectl: kubectl would otherwise write to ~/.kube.
    return ["kubectl", "--kubeconfig", os.environ["HELLO_KUBECONFIG"], "--cache-dir", str(KUBECTL_CACHE), *args]


@dataclass(frozen=True)
class Target:
    """An address and port, and what it is, for messages."""

    what: str
    host: str
    port: int


def probe(namespace: str, pod: str, target: Target) -> str:
    """One bounded GET from inside ``pod`` to ``target``: ``open <status>`` or ``blocked <reason>``."""
    timeout = str(PROBE_TIMEOUT_MS)
    result = kubectl(
        "exec", "-n", namespace, pod, "--", "node", "-e", PROBE, target.host, str(target.port), timeout, check=False
    )
    assert result.returncode == 0, f"kubectl exec in {namespace}/{pod} failed: {result.stderr}"
    return result.stdout.strip()


def settled(ask: Callable[[], str], open_: bool) -> str:
    """The first answer of ``ask`` that is ``open`` (or ``blocked``), or its last after SETTLE_SECONDS.

    Policies apply a moment after a pod or a policy appears, so each answer is polled for.
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        answer = ask()
        if answer.startswith("open" if open_ else "blocked") or time.monotonic() > deadline:
            return answer
        time.sleep(1)


def from_pod(namespace: str, pod: str, target: Target, open_: bool) -> str:
    """The settled answer of a probe from inside ``pod``."""
    return settled(lambda: probe(namespace, pod, target), open_)


def host_get(target: Target) -> str:
    """One GET from this machine (which may always reach its own pods): ``open <status>`` or ``blocked``."""
    try:
        with urllib.request.urlopen(f"http://{target.host}:{target.port}/", timeout=PROBE_TIMEOUT_MS / 1000) as r:
            return f"open {r.status}"
    except urllib.error.HTTPError as error:
        return f"open {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"blocked {error!r}"


@dataclass(frozen=True)
class App:
    """The deployed stack's pods and Service, and the client pod in another namespace."""

    pods: dict[str, str]
    """Pod name -> IP of the app's pods."""
    service_ip: str
    container_port: int
    client_pod: str
    client_ip: str


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Workspace]:
    """A dev-like stack on the local cluster, deployed once for the module."""
    workspace = building_workspace(
        tmp_path_factory.mktemp("network"),
        STACK,
        registry,
        "hello-world-network",
        nodePort=str(NODE_PORT),
        cluster=local_cluster(),
    )
    try:
        workspace.up()
        yield workspace
    finally:
        teardowns.destroy(workspace)


def client_manifest(image: str) -> str:
    """A namespace of the "restricted" Pod Security level and a pod that answers on CLIENT_PORT."""
    restricted = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CLIENT_NAMESPACE, "labels": restricted}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": CLIENT_NAMESPACE, "labels": {"app.kubernetes.io/name": "client"}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["node", "-e", LISTENER, str(CLIENT_PORT)],
                    "ports": [{"name": "http", "containerPort": CLIENT_PORT}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [namespace, pod]})


@pytest.fixture(scope="module")
def app(workspace: Workspace) -> Iterator[App]:
    """The app's pods and Service, and a client pod (the app's own image) in CLIENT_NAMESPACE."""
    deployment = kube_object("deployment", "hello-world", NAMESPACE)
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    pods = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json").stdout)["items"]
    running = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods if p["status"].get("podIP")}
    assert running, f"no app pod with an IP in {NAMESPACE}"
    container_port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    service_ip = kube_object("service", "hello-world", NAMESPACE)["spec"]["clusterIP"]

    subprocess.run(
        kubectl_command("apply", "-f", "-"),
        input=client_manifest(kube_image(NAMESPACE)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    try:
        kubectl("wait", "-n", CLIENT_NAMESPACE, "--for=condition=Ready", "pod/client", "--timeout=120s")
        client_ip = kube_object("pod", "client", CLIENT_NAMESPACE)["status"]["podIP"]
        yield App(running, service_ip, container_port, "client", client_ip)
    finally:
        kubectl("delete", "namespace", CLIENT_NAMESPACE, "--wait=false", check=False)


@pytest.fixture
def extra_listener(app: App) -> Iterator[Target]:
    """A listener on EXTRA_PORT inside the first app pod, for as long as the test runs."""
    pod, pod_ip = next(iter(app.pods.items()))
    command = kubectl_command("exec", "-i", "-n", NAMESPACE, pod, "--", "node", "-e", EXEC_LISTENER, str(EXTRA_PORT))
    listener = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = Target(f"app pod {pod}, port {EXTRA_PORT} (not http)", pod_ip, EXTRA_PORT)
    try:
        # This machine may always reach its own pods: the listener answers it once it is up.
        answer = settled(lambda: host_get(target), open_=True)
        assert answer.startswith("open"), f"{target.what} never answered this machine: {answer}"
        yield target
    finally:
        assert listener.stdin is not None
        listener.stdin.close()
        try:
            listener.wait(timeout=10)
        except subprocess.TimeoutExpired:
            listener.kill()


@pytest.mark.parametrize("family", families())
def test_pod_bridge_is_routed_first_by_a_table_with_no_way_out(family: str) -> None:
    rule, ahead = first_rule_for(family, POD_BRIDGE)

    assert ahead == [], f"rules consulted before the pod bridge's own: {ahead}"
    assert rule.get("table") not in (None, "main", "default", "local"), rule
    routes = ip_json(family, "route", "show", "table", rule["table"])
    assert [r.get("type") for r in routes if r["dst"] == "default"] == ["unreachable"], routes
    assert [r for r in routes if r.get("type") != "unreachable" and r.get("dev") != POD_BRIDGE] == [], routes


def test_pods_have_no_route_off_the_machine(app: App) -> None:
    for pod_ip in app.pods.values():
        for outside in OUTSIDE:
            assert ip("route", "get", outside).returncode == 0, f"this machine itself has no route to {outside}"
            assert refused_lookup(outside, pod_ip, POD_BRIDGE) == "", f"pod {pod_ip} -> {outside}"
        # Pods still reach each other.
        assert f"dev {POD_BRIDGE}" in refused_lookup(app.client_ip, pod_ip, POD_BRIDGE)


@pytest.mark.parametrize("family", families())
def test_container_bridge_is_refused_first(family: str) -> None:
    rule, ahead = first_rule_for(family, CONTAINER_BRIDGE)

    assert ahead == [], f"rules consulted before the container bridge's own: {ahead}"
    assert rule.get("action") == "unreachable", rule


def test_containers_have_no_route_off_the_machine() -> None:
    addresses = ip_json("-4", "addr", "show", "dev", CONTAINER_BRIDGE)
    assert addresses, f"no {CONTAINER_BRIDGE}: the platform's Docker engine runs in bridge mode by default"
    (address,) = [a for a in addresses[0]["addr_info"] if a["family"] == "inet"]
    bridge = ipaddress.ip_interface(f"{address['local']}/{address['prefixlen']}")
    container = str(next(host for host in bridge.network.hosts() if host != bridge.ip))

    for outside in OUTSIDE:
        assert refused_lookup(outside, container, CONTAINER_BRIDGE) == "", f"container {container} -> {outside}"


def test_other_namespace_reaches_the_app_on_http_only(app: App, extra_listener: Target) -> None:
    pod_ip = extra_listener.host
    http = Target("app pod, http", pod_ip, app.container_port)
    service = Target("app Service", app.service_ip, 80)

    assert from_pod(CLIENT_NAMESPACE, app.client_pod, http, open_=True) == "open 200"
    assert from_pod(CLIENT_NAMESPACE, app.client_pod, service, open_=True) == "open 200"
    answer = from_pod(CLIENT_NAMESPACE, app.client_pod, extra_listener, open_=False)
    assert answer.startswith("blocked"), f"{extra_listener.what} from {CLIENT_NAMESPACE}: {answer}"


def test_app_pods_cannot_open_connections(app: App) -> None:
    targets = [
        Target("client pod in another namespace", app.client_ip, CLIENT_PORT),
        Target("this node's kubelet", NODE_IP, KUBELET_PORT),
    ]

    for target in targets:
        # A pod with no egress policy reaches each one: it answers pods.
        assert from_pod(CLIENT_NAMESPACE, app.client_pod, target, open_=True).startswith("open"), target.what
        for pod in app.pods:
            answer = from_pod(NAMESPACE, pod, target, open_=False)
            assert answer.startswith("blocked"), f"app pod {pod} -> {target.what}: {answer}"


def test_app_pods_cannot_open_connections_to_each_other(app: App) -> None:
    assert len(app.pods) >= 2, "needs two replicas"
    (first, _), (_, other_ip) = list(app.pods.items())[:2]
    other = Target("another app pod, http", other_ip, app.container_port)

    assert from_pod(CLIENT_NAMESPACE, app.client_pod, other, open_=True) == "open 200"
    answer = from_pod(NAMESPACE, first, other, open_=False)
    assert answer.startswith("blocked"), f"app pod {first} -> {other.what}: {answer}"
