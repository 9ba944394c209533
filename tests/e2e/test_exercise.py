"""The whole exercise end to end: `pulumi up` on the local cluster, a rolling update under load,
a bad rollout, the optional Ingress, and destroy.

Needs the full local platform (Docker engine, registry, Kubernetes), which `make test`
starts; the tests fail, never skip, when it is missing. The tests run in file order: each
step starts from the state the previous one left, as a person doing the exercise would.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from settings.stack_files import plain_config
from tests.engine.fixtures import LocalRegistry, Teardowns, building_workspace, local_checker_image, local_cluster
from tests.engine.workspace import Workspace, steps_by_op

pytestmark = [pytest.mark.engine, pytest.mark.platform]

T = TypeVar("T")

STACK = "e2e"
NODE_PORT = 31621
NAMESPACE = "hello-world-e2e"
ROLLOUT_TIMEOUT_SECONDS = 20
"""Short, so the failed rollout is reported soon: detection works the same at 20 s as at 300 s."""
URL = f"http://127.0.0.1:{NODE_PORT}/"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
KUBECTL_CACHE = Path(os.environ.get("HELLO_RUN", "/var/lib/hello-pulumi")) / "kube" / "kubectl-cache"
# Bounds of the request loop that runs during the rolling update.
LOAD_MAX_REQUESTS = 20_000
LOAD_MAX_SECONDS = 600
LOAD_INTERVAL_SECONDS = 0.02
REQUEST_TIMEOUT_SECONDS = 2


def get(url: str = URL) -> str:
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
        body: str = response.read().decode()
        return body


def first_answer(
    ask: Callable[[], T], what: str, wanted: Callable[[T], bool] = lambda _: True, within_seconds: float = 30
) -> T:
    """The first answer of ``ask`` that is ``wanted``, asking once a second for at most ``within_seconds``: a new
    route takes a moment (kube-proxy's rules, the ingress controller's watch). An ``OSError`` is an answer not wanted.

    Raises:
        AssertionError: When no wanted answer came in time, naming ``what`` and the last answer.
    """
    deadline = time.monotonic() + within_seconds
    while True:
        try:
            answer = ask()
            if wanted(answer):
                return answer
            last = repr(answer)
        except OSError as error:  # urllib's errors are OSErrors too
            last = repr(error)
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} never answered as wanted within {within_seconds:.0f}s; last answer: {last}")
        time.sleep(1)


def get_eventually(expected: str) -> str:
    """The first body of the node port that contains ``expected``."""
    return first_answer(get, URL, lambda body: expected in body)


def kubectl(*args: str, check: bool = True, stdin: str = "", timeout: int = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # Its own cache dir: kubectl would otherwise write to the user's ~/.kube.
        ["kubectl", "--kubeconfig", os.environ["HELLO_KUBECONFIG"], "--cache-dir", str(KUBECTL_CACHE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def kube_object(kind: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
    return document


def kube_image(namespace: str) -> str:
    """The image the hello-world Deployment of a namespace runs."""
    image: str = kube_object("deployment", "hello-world", namespace)["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    return image


def set_message(workspace: Workspace, message: str, healthy: bool = True) -> None:
    """Rewrites the copy's server.js: a new answer, or a health endpoint that always fails."""
    server = workspace.directory / "app" / "server.js"
    source = (Path(__file__).resolve().parents[2] / "app" / "server.js").read_text()
    source = source.replace("|| 'Hello World'", f"|| {message!r}")
    if not healthy:
        source = source.replace("res.writeHead(shuttingDown ? 503 : 200", "res.writeHead(500")
    server.write_text(source)


@dataclass
class LoadResult:
    sent: int
    failed: int
    seconds: float
    errors: list[str]
    bodies: set[str] = field(default_factory=set)
    """Every distinct body answered: which versions served during the load."""


class Load:
    """A bounded loop of GETs against a node port (or of ``request``, which returns a body or raises), counted, run in
    a thread while a rollout happens."""

    def __init__(
        self,
        url: str = URL,
        interval_seconds: float = LOAD_INTERVAL_SECONDS,
        request: Callable[[], str] | None = None,
    ) -> None:
        self.request = request or (lambda: get(url))
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.result = LoadResult(0, 0, 0.0, [])

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(LOAD_MAX_SECONDS)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set() and self.result.sent < LOAD_MAX_REQUESTS:
            if time.monotonic() - started > LOAD_MAX_SECONDS:
                break
            self.result.sent += 1
            try:
                self.result.bodies.add(self.request())
            except (OSError, http.client.HTTPException) as error:  # urllib's URLError is an OSError
                self.result.failed += 1
                self.result.errors.append(repr(error))
            time.sleep(self.interval_seconds)
        self.result.seconds = time.monotonic() - started


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Workspace]:
    """A dev-like stack on the local cluster, with its own namespace, node port and repository."""
    assert shutil.which("kubectl"), "no kubectl on PATH: run through `make e2e` (it starts the platform)"
    workspace = building_workspace(
        tmp_path_factory.mktemp("e2e"),
        STACK,
        registry,
        "hello-world-e2e",
        nodePort=str(NODE_PORT),
        rolloutTimeoutSeconds=str(ROLLOUT_TIMEOUT_SECONDS),
        cluster=local_cluster(),
        # Every version these tests roll out says "Hello ..."; "Goodbye World" is the one that must fail.
        verification=json.dumps({"body": "Hello"}),
    )
    yield workspace
    # Leave no object behind even when a step failed half-way.
    teardowns.destroy(workspace)


def test_up_deploys_all_replicas_that_answer_hello_world(workspace: Workspace, figure: Callable[[str], None]) -> None:
    workspace.up()

    figure(f"e2e: first pulumi up (build, push, rollout): {workspace.last_seconds:.1f}s")
    deployment = kube_object("deployment", "hello-world")
    assert deployment["status"]["readyReplicas"] == deployment["spec"]["replicas"] == 2
    assert "pulumi.com/skipAwait" not in deployment["metadata"].get("annotations", {})
    assert get_eventually("Hello World") == "Hello World\n"
    assert workspace.outputs()["nodePort"] == NODE_PORT


def test_up_verifies_the_image_inside_the_cluster(workspace: Workspace) -> None:
    outputs = workspace.outputs()

    assert outputs["verifiedImageRef"] == outputs["imageRef"]
    assert outputs["verifiedAt"].endswith("Z")
    jobs = json.loads(kubectl("get", "jobs", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    assert [job["status"].get("succeeded") for job in jobs] == [1]
    (container,) = jobs[0]["spec"]["template"]["spec"]["containers"]
    # The check runs from the platform's Node base image, never from the image under test.
    assert container["image"] == local_checker_image()
    assert {"name": "IMAGE_UNDER_TEST", "value": outputs["imageRef"]} in container["env"]


def test_namespace_refuses_a_pod_that_breaks_the_restricted_standard(workspace: Workspace) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unconfined", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "app", "image": workspace.outputs()["imageRef"]}]},
    }

    # A server-side dry run goes through admission, Pod Security included, and creates nothing.
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)

    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr, result.stderr


def test_changed_app_rolls_out_as_an_update_without_dropping_requests(
    workspace: Workspace, figure: Callable[[str], None]
) -> None:
    set_message(workspace, "Hello Rolled World")

    preview = steps_by_op(workspace.preview_json())
    assert (DEPLOYMENT, "hello-world-deployment") in preview.get("update", set())
    # Only the verification Job is replaced: a new image gets a new check.
    replaced = {step for op, steps in preview.items() if "replace" in op or op == "delete" for step in steps}
    assert replaced == {("kubernetes:batch/v1:Job", "hello-world-verify")}

    with Load() as load:
        workspace.up()
    rollout_seconds = workspace.last_seconds
    result = load.result

    figure(f"e2e: rolling update {rollout_seconds:.1f}s, {result.sent} requests during it, {result.failed} failed")
    assert result.sent > 0
    assert result.failed == 0, result.errors[:5]
    assert get_eventually("Hello Rolled World") == "Hello Rolled World\n"


def test_rollout_restart_drops_no_request(workspace: Workspace, figure: Callable[[str], None]) -> None:
    with Load() as load:
        kubectl("rollout", "restart", "deployment/hello-world", "-n", NAMESPACE)
        kubectl("rollout", "status", "deployment/hello-world", "-n", NAMESPACE, "--timeout=180s", timeout=200)
    result = load.result

    figure(f"e2e: rollout restart, {result.sent} requests during it, {result.failed} failed")
    assert result.sent > 0
    assert result.failed == 0, result.errors[:5]


def ready_pods() -> list[str]:
    pods = json.loads(
        kubectl("get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=hello-world", "-o", "json").stdout
    )
    return sorted(
        pod["metadata"]["name"]
        for pod in pods["items"]
        if "deletionTimestamp" not in pod["metadata"]
        and any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    )


def evict(pod: str) -> bool:
    """Asks the Eviction API to evict ``pod``; False when the disruption budget refuses it for now."""
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": NAMESPACE}}
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction"
    result = kubectl("create", "--raw", path, "-f", "-", stdin=json.dumps(eviction), check=False)
    if result.returncode != 0 and "disruption budget" not in result.stderr:
        raise AssertionError(result.stderr)
    return result.returncode == 0


def test_evictions_one_pod_after_another_drop_no_request(workspace: Workspace, figure: Callable[[str], None]) -> None:
    replicas = kube_object("deployment", "hello-world")["spec"]["replicas"]
    fewest_ready = replicas
    refused = 0
    with Load() as load:
        for pod in ready_pods():
            deadline = time.monotonic() + 180
            while not evict(pod):
                refused += 1
                assert time.monotonic() < deadline, f"the budget never let {pod} go"
                fewest_ready = min(fewest_ready, len(ready_pods()))
                time.sleep(1)
            while len(ready_pods()) < replicas and time.monotonic() < deadline:
                fewest_ready = min(fewest_ready, len(ready_pods()))
                time.sleep(0.5)
    result = load.result

    figure(
        f"e2e: {replicas} evictions one after another: {result.sent} requests, {result.failed} failed, "
        f"at least {fewest_ready} of {replicas} pods ready throughout, {refused} evictions held back by the budget"
    )
    assert result.failed == 0, result.errors[:5]
    assert fewest_ready >= replicas - 1


def test_abrupt_pod_deletion_is_measured(workspace: Workspace, figure: Callable[[str], None]) -> None:
    (victim, *_) = ready_pods()
    with Load() as load:
        kubectl("delete", "pod", victim, "-n", NAMESPACE, "--grace-period=0", "--force")
        kubectl("rollout", "status", "deployment/hello-world", "-n", NAMESPACE, "--timeout=180s", timeout=200)
        time.sleep(5)
    result = load.result

    # No drain is possible when a pod is killed outright: the figure is reported, not hidden.
    figure(f"e2e: one pod deleted abruptly: {result.sent} requests, {result.failed} failed")
    assert result.sent > 0
    assert len(ready_pods()) == kube_object("deployment", "hello-world")["spec"]["replicas"]


def test_second_up_reports_no_changes(workspace: Workspace, figure: Callable[[str], None]) -> None:
    workspace.pulumi("preview", "--expect-no-changes")
    figure(f"e2e: no-op pulumi preview of the dev-like stack: {workspace.last_seconds:.1f}s")
    workspace.up("--expect-no-changes")


def test_bad_rollout_fails_clearly_and_old_pods_keep_answering(
    workspace: Workspace, figure: Callable[[str], None]
) -> None:
    set_message(workspace, "Hello Broken World", healthy=False)

    result = workspace.up(check=False)

    output = result.stdout + result.stderr
    figure(
        f"e2e: failed rollout reported after {workspace.last_seconds:.1f}s "
        f"(rolloutTimeoutSeconds {ROLLOUT_TIMEOUT_SECONDS})"
    )
    assert result.returncode != 0
    assert "hello-world-deployment" in output
    assert "timed out" in output.lower() or "not ready" in output.lower() or "failed" in output.lower(), output
    for _ in range(10):
        assert get() == "Hello Rolled World\n"


def test_failed_verification_fails_up_and_names_the_check(workspace: Workspace, figure: Callable[[str], None]) -> None:
    verified = workspace.outputs()["verifiedImageRef"]
    set_message(workspace, "Goodbye World")

    result = workspace.up(check=False)

    output = result.stdout + result.stderr
    figure(f"e2e: failed verification reported after {workspace.last_seconds:.1f}s")
    assert result.returncode != 0
    assert "hello-world-verify" in output, output
    assert workspace.outputs()["verifiedImageRef"] == verified


def test_enabled_ingress_is_created_with_host_path_and_class(workspace: Workspace) -> None:
    set_message(workspace, "Hello Rolled World")
    config = {
        **workspace_config(workspace),
        "hello-world:ingress": {
            "enabled": True,
            "host": "hello.e2e.local",
            "path": "/hello",
            "className": "nginx",
        },
    }
    workspace.write_config(config)

    workspace.up()

    ingress = kube_object("ingress", "hello-world")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "hello.e2e.local"
    assert rule["http"]["paths"][0]["path"] == "/hello"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "hello-world",
        "port": {"number": 80},
    }
    assert workspace.outputs()["ingressUrl"] == "http://hello.e2e.local/hello"
    assert get() == "Hello Rolled World\n"


def test_destroy_leaves_nothing_in_the_cluster(workspace: Workspace) -> None:
    workspace.pulumi("destroy", "--yes", "--skip-preview")

    result = kubectl("get", "namespace", NAMESPACE, check=False)
    assert result.returncode != 0
    assert "NotFound" in result.stderr
    leftovers = kubectl("get", "all,ingress", "-A", "-l", "app.kubernetes.io/instance=e2e", "-o", "name").stdout
    assert leftovers.strip() == ""


def workspace_config(workspace: Workspace) -> dict[str, Any]:
    return plain_config(workspace.directory, workspace.stack)
