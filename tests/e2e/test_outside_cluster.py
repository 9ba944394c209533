"""A stack that reaches the cluster and the registry as a user's own would be reached, with the platform's
start step unavailable: `make up` must neither need nor start the local platform for it.

What the test sets up, as an outside cluster's admin and registry would give them:
- a namespace, and in it a ServiceAccount bound to a Role with the least rights a deploy needs; its token
  (TokenRequest API, `kubectl create token`) in a kubeconfig of its own: never the admin's credentials;
- a second registry (Debian's docker-registry) on 127.0.0.1:5001 with credentials of its own, which
  containerd has not been told about, holding two fresh builds of the app (a label unique to each build
  makes its digest new, so no node has it cached);
- a copy of the project with the stack file `Pulumi.outside.yaml` naming all of this, and the registry
  password as the secret setting `imagePullPassword`.

It deploys the first build with the pull secret (pods pull, run, answer on the node port), then the second
build without it (its pods cannot pull; the first build keeps answering), then destroys. Needs the local
platform's cluster and Docker engine, which `make test` starts; the stack's own `make up` and `make destroy`
run with HELLO_PLATFORM_UNAVAILABLE=1, so they fail at once if they try to start the platform.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.workspace import ROOT, copy_checkout

pytestmark = [pytest.mark.engine, pytest.mark.platform]

STACK = "outside"
NAMESPACE = "hello-world-outside"
NODE_PORT = 31677
URL = f"http://127.0.0.1:{NODE_PORT}/"
REGISTRY_ADDRESS = "127.0.0.1:5001"
REGISTRY_USER = "outsider"
REPOSITORY = "outside/hello-world"
SERVICE_ACCOUNT = "deployer"
TOKEN_DURATION = "2h"
COMMAND_TIMEOUT_SECONDS = 900
REGISTRY_START_SECONDS = 30
# Bounds of the request loop against the node port.
REQUESTS = 20
REQUEST_TIMEOUT_SECONDS = 2
LOOP_MAX_SECONDS = 60
PULL_FAILURE_WAIT_SECONDS = 60
KUBECTL_CACHE = Path(os.environ.get("HELLO_RUN", "/var/lib/hello-pulumi")) / "kube" / "kubectl-cache"

# The least a deploy of this program needs inside its namespace: the kinds it creates, and reading what
# Pulumi watches to tell a rollout's progress (pods, ReplicaSets, endpoints, events, claims). Nothing outside it.
DEPLOY_ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "hello-world-deployer", "namespace": NAMESPACE},
    "rules": [
        {
            "apiGroups": [""],
            "resources": ["secrets", "services"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        # Pulumi's rollout await watches PersistentVolumeClaims too; without that right it waits forever.
        {
            "apiGroups": [""],
            "resources": ["pods", "endpoints", "events", "persistentvolumeclaims"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["networkpolicies"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        {
            "apiGroups": ["policy"],
            "resources": ["poddisruptionbudgets"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    ],
}


def kubectl(
    *args: str, kubeconfig: str | None = None, stdin: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    """kubectl as the cluster's admin, unless another kubeconfig is given."""
    result = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            kubeconfig or os.environ["HELLO_KUBECONFIG"],
            "--cache-dir",
            str(KUBECTL_CACHE),
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def docker(*args: str, env: dict[str, str], stdin: str = "") -> str:
    result = subprocess.run(
        ["docker", *args], input=stdin, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"docker {args[0]} exited {result.returncode}: {result.stderr}"
    return result.stdout


def port_is_free(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


@dataclass(frozen=True)
class SecondRegistry:
    """A registry the cluster was not told about, and its credentials."""

    address: str
    username: str
    password: str


@pytest.fixture(scope="module")
def second_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondRegistry]:
    """Debian's docker-registry on 127.0.0.1:5001 with htpasswd credentials of its own, in a folder of its own."""
    for command in ("docker-registry", "htpasswd"):
        assert shutil.which(command), f"no {command}: the platform installs it (`make platform`)"
    assert port_is_free(REGISTRY_ADDRESS), f"{REGISTRY_ADDRESS} is taken: stop what serves it"
    folder = tmp_path_factory.mktemp("second-registry")
    password = secrets.token_urlsafe(24)
    htpasswd = folder / "htpasswd"
    # The password on standard input: an argument would show in ps.
    subprocess.run(["htpasswd", "-B", "-c", "-i", str(htpasswd), REGISTRY_USER], input=password, text=True, check=True)
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(folder / "data")}},
        "http": {"addr": REGISTRY_ADDRESS, "secret": secrets.token_hex(16)},
        "auth": {"htpasswd": {"realm": "second", "path": str(htpasswd)}},
    }
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    log = (folder / "registry.log").open("w")
    process = subprocess.Popen(
        ["docker-registry", "serve", str(folder / "config.yml")], stdout=log, stderr=log, start_new_session=True
    )
    try:
        deadline = time.monotonic() + REGISTRY_START_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"http://{REGISTRY_ADDRESS}/v2/", timeout=2)
            except urllib.error.HTTPError as error:
                if error.code == 401:
                    break
            except OSError:
                pass
            assert process.poll() is None, (folder / "registry.log").read_text()
            assert time.monotonic() < deadline, f"the second registry never answered on {REGISTRY_ADDRESS}"
            time.sleep(0.2)
        yield SecondRegistry(REGISTRY_ADDRESS, REGISTRY_USER, password)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


@dataclass(frozen=True)
class PrivateImages:
    """Two builds of the app in the second registry, by digest: new to every node, so each must be pulled."""

    first: str
    second: str
    checker: str
    """The platform's Node base image, pushed there too: the verification Job's image, pulled with the same secret."""


@pytest.fixture(scope="module")
def private_images(second_registry: SecondRegistry, tmp_path_factory: pytest.TempPathFactory) -> PrivateImages:
    docker_config = tmp_path_factory.mktemp("docker-config")  # credentials never reach ~/.docker
    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{os.environ['HELLO_DOCKER_SOCK']}",
        "DOCKER_CONFIG": str(docker_config),
    }
    docker(
        "login", second_registry.address, "--username", second_registry.username, "--password-stdin",
        env=env, stdin=second_registry.password,
    )  # fmt: skip
    return PrivateImages(
        push_app(second_registry, env), push_app(second_registry, env), push_checker(second_registry, env)
    )


def push_checker(second_registry: SecondRegistry, env: dict[str, str]) -> str:
    """The platform's Node base image pushed to the second registry, as a user's own checker image; by digest."""
    tag = f"{second_registry.address}/node-checker:{secrets.token_hex(8)}"
    docker("tag", os.environ.get("HELLO_BASE_IMAGE", "hello-pulumi/node-base:local"), tag, env=env)
    docker("push", "--quiet", tag, env=env)
    # The base image is served by the platform's registry too: its digests there and here are both listed.
    listed = docker("inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", tag, env=env).split()
    docker("rmi", tag, env=env)
    (digest,) = [name for name in listed if name.startswith(f"{second_registry.address}/node-checker@sha256:")]
    return digest


def push_app(second_registry: SecondRegistry, env: dict[str, str]) -> str:
    """The app built on the platform's Node base and pushed to the second registry; its reference by digest.

    A label unique to the build makes its digest one that no node can have cached.
    """
    run = secrets.token_hex(8)
    tag = f"{second_registry.address}/{REPOSITORY}:{run}"
    base = os.environ.get("HELLO_BASE_IMAGE", "hello-pulumi/node-base:local")
    docker(
        "build", "--quiet", "--build-arg", f"BASE_IMAGE={base}", "--label", f"org.example.test-run={run}",
        "--tag", tag, str(ROOT / "app"), env=env,
    )  # fmt: skip
    docker("push", "--quiet", tag, env=env)
    digest = docker("inspect", "--format", "{{index .RepoDigests 0}}", tag, env=env).strip()
    docker("rmi", tag, env=env)
    assert digest.startswith(f"{second_registry.address}/{REPOSITORY}@sha256:"), digest
    return digest


@pytest.fixture(scope="module")
def outside_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A namespace with a deploy account whose rights end at it, and a kubeconfig holding only its token."""
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "hello-world-deployer", "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": DEPLOY_ROLE["metadata"]["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
    }
    assert kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0, f"{NAMESPACE} exists already"
    kubectl("create", "-f", "-", stdin=json.dumps(namespace))
    try:
        for document in (account, DEPLOY_ROLE, binding):
            kubectl("create", "-f", "-", stdin=json.dumps(document))
        token = kubectl("create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE, "--duration", TOKEN_DURATION).stdout
        admin = yaml.safe_load(Path(os.environ["HELLO_KUBECONFIG"]).read_text())
        cluster = admin["clusters"][0]["cluster"]
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "outside", "cluster": cluster}],
            "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token.strip()}}],
            "contexts": [
                {"name": "outside", "context": {"cluster": "outside", "user": SERVICE_ACCOUNT, "namespace": NAMESPACE}}
            ],
            "current-context": "outside",
        }
        path = tmp_path_factory.mktemp("outside-kube") / "kubeconfig"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(kubeconfig))
        yield path
    finally:
        kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=120s", check=False)


@dataclass
class Project:
    """A copy of the project, as a user's checkout, whose stacks live in a backend of their own."""

    directory: Path
    env: dict[str, str]

    def make(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return self._run(["make", "--no-print-directory", *args], stdin)

    def ops(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``python -m ops ARGS`` in the copy, as `make` runs it."""
        return self._run([sys.executable, "-m", "ops", *args], stdin)

    def pulumi(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(["pulumi", *args, "--stack", STACK, "--non-interactive"], "")

    def _run(self, command: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=self.directory,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )

    def write_stack(self, settings: dict[str, Any]) -> None:
        config = {f"hello-world:{key}": value for key, value in settings.items()}
        (self.directory / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))


@pytest.fixture(scope="module")
def project(
    pulumi_cli: str,
    tmp_path_factory: pytest.TempPathFactory,
    outside_kubeconfig: Path,
    private_images: PrivateImages,
    second_registry: SecondRegistry,
) -> Iterator[Project]:
    base = tmp_path_factory.mktemp("outside-project")
    directory = base / "project"
    copy_checkout(directory)
    home = base / "pulumi-home"
    home.mkdir()
    (home / "plugins").symlink_to(Path(os.environ.get("PULUMI_HOME", Path.home() / ".pulumi")) / "plugins")
    env = {
        **os.environ,
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{base / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": secrets.token_hex(16),
        "HELLO_STATE": str(base / "state"),
        # The step that starts the local platform must not be needed: it fails at once if it is run.
        "HELLO_PLATFORM_UNAVAILABLE": "1",
    }
    for name in ("PULUMI_CONFIG_PASSPHRASE_FILE", "DOCKER_HOST", "KUBECONFIG", "REGISTRY_PASSWORD"):
        env.pop(name, None)
    made = Project(directory=directory, env=env)
    made.write_stack(
        {
            "namespace": NAMESPACE,
            "replicas": "2",
            "nodePort": str(NODE_PORT),
            "rolloutTimeoutSeconds": "120",
            "image": private_images.first,
            "imagePull": {"username": second_registry.username},
            "cluster": {"kubeconfig": str(outside_kubeconfig), "createNamespace": False},
            # Not the local platform's stack: nothing fills in its checker image, which it names itself.
            "verification": {"checkerImage": private_images.checker},
        }
    )
    secret = made.ops("secret", STACK, "imagePullPassword", stdin=second_registry.password)
    assert secret.returncode == 0, secret.stdout + secret.stderr
    yield made
    destroyed = made.make("destroy", f"STACK={STACK}")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr


def pods() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(
        kubectl("get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=hello-world", "-o", "json").stdout
    )["items"]
    return found


def answers(expected: str) -> int:
    """How many of a bounded loop of requests to the node port answered ``expected``."""
    answered = 0
    started = time.monotonic()
    for _ in range(REQUESTS):
        if time.monotonic() - started > LOOP_MAX_SECONDS:
            break
        try:
            with urllib.request.urlopen(URL, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                answered += expected in response.read().decode()
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    return answered


def test_deploy_with_the_pull_secret_pulls_runs_and_answers(
    project: Project, private_images: PrivateImages, figure: Callable[[str], None]
) -> None:
    started = time.monotonic()
    up = project.make("up", f"STACK={STACK}")
    seconds = time.monotonic() - started

    assert up.returncode == 0, up.stdout + up.stderr
    # Not the local platform: make up does not guess a node's address, it names the port.
    assert f"listens on node port {NODE_PORT} of every node" in up.stdout.splitlines()[-1], up.stdout
    figure(f"outside cluster: make up with a pull secret, the platform's start step unavailable: {seconds:.0f} s")
    running = pods()
    assert len(running) == 2
    assert all(pod["spec"]["imagePullSecrets"] == [{"name": "hello-world-pull"}] for pod in running)
    digest = private_images.first.split("@", 1)[1]
    statuses = [status for pod in running for status in pod["status"]["containerStatuses"]]
    assert all(status["ready"] and status["imageID"].endswith(digest) for status in statuses), statuses
    assert answers("Hello World") == REQUESTS


def test_pull_password_is_nowhere_in_plaintext(project: Project, second_registry: SecondRegistry) -> None:
    exported = project.pulumi("stack", "export")
    outputs = project.pulumi("stack", "output", "--json")
    backend = Path(project.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    on_disk = [*(project.directory / ".state").rglob("*"), *backend.rglob("*")]
    machine = [path.read_text(errors="replace") for path in on_disk if path.is_file()]
    tracked = (project.directory / f"Pulumi.{STACK}.yaml").read_text()

    assert exported.returncode == 0, exported.stderr
    assert "kubernetes.io/dockerconfigjson" in exported.stdout
    encoded = base64.b64encode(second_registry.password.encode()).decode()
    assert len(machine) > 2, on_disk  # this machine's stack file copy, the checkpoint and its backup at least
    for text in (exported.stdout, outputs.stdout, tracked, *machine):
        assert second_registry.password not in text
        assert encoded not in text
    assert "imagePullPassword" not in tracked


def test_deploy_without_the_pull_secret_cannot_pull_a_new_image(
    project: Project, private_images: PrivateImages
) -> None:
    """The same stack, without `imagePull`, moved to a second build of the same registry: no node has it."""
    stack_file = project.directory / f"Pulumi.{STACK}.yaml"
    config = yaml.safe_load(stack_file.read_text())["config"]
    config.pop("hello-world:imagePull")
    config["hello-world:image"] = private_images.second
    config["hello-world:rolloutTimeoutSeconds"] = "20"
    stack_file.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    removed = project.ops("secret", STACK, "imagePullPassword", "--remove")
    assert removed.returncode == 0, removed.stderr

    up = project.make("up", f"STACK={STACK}", "ARGS=--no-rollback")

    assert up.returncode != 0, up.stdout
    digest = private_images.second.split("@", 1)[1]
    new = [pod for pod in pods() if pod["spec"]["containers"][0]["image"].endswith(digest)]
    reasons = {
        status.get("state", {}).get("waiting", {}).get("reason")
        for pod in new
        for status in pod["status"].get("containerStatuses", [])
    }
    assert new, pods()
    assert reasons <= {"ErrImagePull", "ImagePullBackOff"}, reasons
    assert reasons, reasons
    events = kubectl("get", "events", "-n", NAMESPACE, "--field-selector", "reason=Failed", "-o", "json").stdout
    assert "401 Unauthorized" in events or "authorization failed" in events, events
    # The rollout never takes a pod away before a new one is ready: the first build still answers.
    assert answers("Hello World") == REQUESTS


def test_deploy_account_cannot_reach_beyond_its_namespace(outside_kubeconfig: Path) -> None:
    beyond = [
        ("create", "namespaces"),
        ("list", "secrets", "--namespace", "default"),
        ("create", "deployments", "--namespace", "default"),
        ("list", "nodes"),
        ("create", "roles", "--namespace", NAMESPACE),
    ]
    for args in beyond:
        answer = kubectl("auth", "can-i", *args, kubeconfig=str(outside_kubeconfig), check=False)
        assert answer.stdout.strip() == "no", (args, answer.stdout, answer.stderr)
    allowed = kubectl("auth", "can-i", "create", "deployments", kubeconfig=str(outside_kubeconfig))
    assert allowed.stdout.strip() == "yes"
