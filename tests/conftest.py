"""Pytest harness: Pulumi mocks that run the real program and record every resource it registers."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import runpy
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from settings.stack_files import as_engine_values, read_engine_config  # noqa: E402

# The real-engine fixtures (CLI, throwaway workspaces, registry) serve tests/engine and tests/e2e.
pytest_plugins = ["tests.engine.fixtures"]

FAKE_DIGEST = "sha256:" + "ab" * 32
CLUSTER_CHOSEN_NODE_PORT = 30999
CLUSTER_IP = "10.215.0.99"
CHECK_TARGET_IP = "10.215.0.98"
"""The address the cluster gives the Service the verification Job asks (each Service gets its own)."""
VERIFIED_AT = "2026-11-27T10:00:00Z"
# Pulumi's marker for a secret value on the wire (sdk/go/common/resource/sig).
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
PASSWORD = "s3cret-registry-password"


@dataclass
class Registered:
    """One resource as the engine would receive it."""

    type: str
    name: str
    inputs: dict[str, Any]
    """Inputs with secrets unwrapped, camelCase keys as the engine sees them."""
    wire: dict[str, Any]
    """Inputs as serialized on the wire, where a secret is still wrapped in its marker."""


@dataclass
class Deployed:
    """What one run of the program registered and exported."""

    resources: list[Registered]
    outputs: dict[str, Any]

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registered:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
        return found[0]

    def named(self, type_: str, name: str) -> Registered:
        found = [r for r in self.of_type(type_) if r.name == name]
        assert len(found) == 1, f"expected one {type_} named {name}, got {[r.name for r in self.of_type(type_)]}"
        return found[0]


class _Mocks(pulumi.runtime.Mocks):
    """Fills the outputs that providers compute, the way they would."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "docker:index/image:Image":
            repository = args.inputs["imageName"].rsplit(":", 1)[0]
            outputs["repoDigest"] = f"{repository}@{FAKE_DIGEST}"
        elif args.typ == "docker-build:index:Image":
            outputs["digest"] = FAKE_DIGEST
        elif args.typ == "kubernetes:core/v1:Service":
            address = CHECK_TARGET_IP if args.name.endswith("-verify-target") else CLUSTER_IP
            outputs["spec"] = {**outputs["spec"], "clusterIP": address}
            for port in outputs["spec"]["ports"]:
                port.setdefault("nodePort", CLUSTER_CHOSEN_NODE_PORT)
        elif args.typ == "kubernetes:batch/v1:Job":
            # What the provider's Job await reports once the Job has completed.
            outputs["status"] = {"succeeded": 1, "completionTime": VERIFIED_AT}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class _RecordingMonitor(pulumi.runtime.mocks.MockMonitor):  # type: ignore[misc]
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.registered.append(
                Registered(
                    type=request.type,
                    name=request.name,
                    inputs=pulumi.runtime.rpc.deserialize_properties(request.object),
                    wire=json_format.MessageToDict(request.object),
                )
            )
        return response


def start_mocks(stack: str) -> _RecordingMonitor:
    """Fresh Pulumi mocks for project hello-world and ``stack``, recording what is registered."""
    pulumi.runtime.settings.reset_options()
    monitor = _RecordingMonitor(_Mocks())
    pulumi.runtime.set_mocks(monitor.mocks, project="hello-world", stack=stack, preview=False, monitor=monitor)
    return monitor


@pytest.fixture
def recorded() -> Iterator[Deployed]:
    """Mocks for building components directly in a test; ``recorded.resources`` fills as they register."""
    monitor = start_mocks("test")
    yield Deployed(resources=monitor.registered, outputs={})
    pulumi.runtime.settings.reset_options()


class Deploy:
    """Runs __main__.py under mocks with a stack's config, as `pulumi up` would run it."""

    def __init__(self) -> None:
        self.registered: list[Registered] = []
        """Resources of the last run, kept even when the program failed."""

    def __call__(self, stack: str, config: Mapping[str, str], secret_keys: tuple[str, ...] = ()) -> Deployed:
        monitor = start_mocks(stack)
        self.registered = monitor.registered
        pulumi.runtime.set_all_config(dict(config), list(secret_keys))
        # The engine hands a program its config in these variables; the program lists its keys from them.
        os.environ["PULUMI_CONFIG"] = json.dumps(dict(config))
        os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(secret_keys))
        captured: dict[str, Any] = {}

        @pulumi.runtime.test
        def program() -> pulumi.Output[None]:
            before = os.getcwd()
            os.chdir(ROOT)  # as `pulumi up` runs it: app/ is relative to the project
            try:
                runpy.run_path(str(ROOT / "__main__.py"), run_name="__pulumi_program__")
            finally:
                os.chdir(before)
            exports = pulumi.runtime.settings.get_root_resource().outputs  # type: ignore[union-attr]
            names = list(exports)
            return pulumi.Output.all(*exports.values()).apply(
                lambda values: captured.update(zip(names, values, strict=True))
            )

        program()
        return Deployed(resources=monitor.registered, outputs=captured)


@pytest.fixture
def deploy() -> Iterator[Deploy]:
    """A fresh :class:`Deploy`; Pulumi's process-global runtime state is reset after the test."""
    yield Deploy()
    os.environ.pop("PULUMI_CONFIG", None)
    os.environ.pop("PULUMI_CONFIG_SECRET_KEYS", None)
    pulumi.runtime.set_all_config({}, [])
    pulumi.runtime.settings.reset_options()


FIGURES: list[str] = []
"""Measurements the tests took (rollout times, request counts), gathered from every worker for the run's summary."""
FIGURE = "figure"
"""The name under which a test's report carries a figure: pytest-xdist sends reports, not module globals."""


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Records a measured figure for the run's closing summary."""
    return lambda text: request.node.user_properties.append((FIGURE, text))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Every phase's report carries the test's properties so far; the teardown's has them all.
    if report.when == "teardown":
        FIGURES.extend(str(text) for name, text in report.user_properties if name == FIGURE)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def stack_config(stack: str) -> dict[str, str]:
    """A stack file's config as the engine passes it: namespaced keys, objects as JSON."""
    return as_engine_values(read_engine_config(ROOT, stack))


def with_password(config: Mapping[str, str]) -> dict[str, str]:
    """The config after `pulumi config set --secret registryPassword ...`."""
    return {**config, "hello-world:registryPassword": PASSWORD}


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"Hello World")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """``handler`` served on a loopback port of its own, in a thread, for the ``with`` block; yields the port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def service_port() -> Iterator[int]:
    """A stand-in for the service on its node port: `make up` asks it for its answer."""
    with serving(_Hello) as port:
        yield port


LONGEST_FILES_FIRST = (
    "tests/e2e/test_rollback.py",
    "tests/e2e/test_exercise.py",
    "tests/unit/tooling/test_bench.py",
    "tests/e2e/test_team.py",
    "tests/e2e/test_promote_verified.py",
    "tests/e2e/test_rollback_promotion.py",
    "tests/e2e/test_promotion.py",
    "tests/e2e/test_outside_cluster.py",
    "tests/e2e/test_promotion_prompt.py",
    "tests/engine/test_render.py",
    "tests/e2e/test_token_registry.py",
    "tests/e2e/test_clean_tree.py",
)
"""The real layer's longest files (`--durations=0`, 2026-12-06), longest first. `make test` gives each file to one
worker in this order (`--no-loadscope-reorder`: else pytest-xdist orders files by their count of tests, and the
bench's one test, 130 s, ran alone at the end); the short files then fill the gaps."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: every file keeps its tests' order, which the files that share a stack rely on.
    rank = {path: index for index, path in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))
