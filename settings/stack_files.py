"""The stack files, ``Pulumi.<stack>.yaml``: the one module that finds, reads, writes, locks and guards them.

It also says which policy config a stack is checked with, since that is a per-stack file too.
Light on purpose (PyYAML only), so that `delivery/` and shell scripts can use it without the program.
Usage: python -m settings.stack_files build-registry STACK   (prints the registry a stack pushes to, if any)
       python -m settings.stack_files policy-config STACK    (prints the policy pack config the stack runs with)
       python -m settings.stack_files needs-platform STACK   (prints yes or no: does the stack use the local platform)
       python -m settings.stack_files machine-config STACK   (writes this machine's stack file copy, prints its path)
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from settings import PROJECT

_PREFIX = f"{PROJECT}:"
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
"""A stack's own name, as Pulumi allows it (the last part of ``org/project/stack``)."""
LOCK_DIR = Path(".state") / "locks"
"""Where, under the project, the stacks' lock files live (``.state/`` is ignored by git)."""
LOCK_WAIT_SECONDS = 30.0
"""How long :func:`locked` waits for another holder by default."""
LOCK_POLL_SECONDS = 0.1
POLICY_PACK_DIR = "policy"
"""The policy pack's folder, relative to the project."""
MANDATORY_POLICY_CONFIG: dict[str, Any] = {"all": "mandatory"}
"""The policy config of a stack without its own ``policy/config/<stack>.json``: every rule mandatory."""
MACHINE_DIR = Path(".state") / "stacks"
"""Where, under the project, this machine's copies of the stack files live (see :func:`machine_config`)."""
SECRETS_KEYS = ("encryptionsalt", "encryptedkey", "secretsprovider")
"""A stack file's top-level keys that say how its secrets are encrypted."""
PLATFORM_KUBECONFIG = "/var/lib/hello-pulumi/kube/admin.kubeconfig"
"""The local platform's admin kubeconfig (``$HELLO_KUBECONFIG``), the default ``cluster.kubeconfig``."""
PLATFORM_REGISTRY = "127.0.0.1:5000"
"""The local platform's registry (``$HELLO_REGISTRY``)."""


class StackFileError(Exception):
    """A stack file is missing, is not YAML, or does not hold a ``config`` mapping."""


class StackLockedError(Exception):
    """Another process holds the stack's lock and did not let go in time."""


def stack_file(directory: Path, stack: str) -> Path:
    return directory / f"Pulumi.{stack}.yaml"


def stack_names(directory: Path) -> list[str]:
    """Every stack with a file, its name read whole (``Pulumi.eu.prod.yaml`` is stack ``eu.prod``)."""
    return sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in directory.glob("Pulumi.?*.yaml"))


def read_engine_config(directory: Path, stack: str) -> dict[str, Any]:
    """A stack file's ``config`` as written: namespaced keys, objects as mappings, secrets as ``{secure: ...}``.

    Raises:
        StackFileError: Naming the file and what is wrong with it.
    """
    path = stack_file(directory, stack)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise StackFileError(f"{path.name} cannot be read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{path.name} must be YAML, got an error {_where(error)}") from None
    if not isinstance(document, dict):
        raise StackFileError(f"{path.name} must be a mapping with a config key, got a {type(document).__name__}")
    config = document.get("config", {})
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: config must be a mapping of settings, got a {type(config).__name__}")
    return config


def _where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    return f"at line {mark.line + 1}, column {mark.column + 1}" if mark else "while parsing"


def read_settings(directory: Path, stack: str) -> dict[str, Any]:
    """The project's settings of one stack file, keys without the ``hello-world:`` prefix."""
    config = read_engine_config(directory, stack)
    return {key.removeprefix(_PREFIX): value for key, value in config.items() if key.startswith(_PREFIX)}


def read_stack_files(
    directory: Path, on_error: Callable[[str], None] = lambda problem: None
) -> dict[str, dict[str, Any]]:
    """The settings of every stack file that can be read; what is wrong with the others goes to ``on_error``."""
    stacks = {}
    for name in stack_names(directory):
        try:
            stacks[name] = read_settings(directory, name)
        except StackFileError as error:
            on_error(str(error))
    return stacks


def as_engine_values(config: Mapping[str, Any]) -> dict[str, str]:
    """Config values as the engine passes them to a program: text, objects as JSON."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def plain_config(directory: Path, stack: str) -> dict[str, Any]:
    """The stack file's config without its encrypted values, which only this machine's passphrase opens."""
    return {key: value for key, value in read_engine_config(directory, stack).items() if not _encrypted(value)}


def _encrypted(value: Any) -> bool:
    return isinstance(value, dict) and "secure" in value


def replace_plain_config(directory: Path, stack: str, config: Mapping[str, Any]) -> None:
    """Replaces the stack's plain config, keeping its encrypted values and its other keys (the salt)."""
    path = stack_file(directory, stack)
    document = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    encrypted = {key: value for key, value in (document.get("config") or {}).items() if _encrypted(value)}
    document["config"] = {**dict(config), **encrypted}
    _write_atomically(path, yaml.safe_dump(document, sort_keys=False).encode())


@contextmanager
def kept_as_is(directory: Path, stack: str, *, unless_success: bool = False) -> Iterator[None]:
    """Puts the stack file's bytes back afterwards (or only on failure, with ``unless_success``).

    Restoring the bytes is what "nothing changed" means: secrets' ciphertext and salt included.
    """
    path = stack_file(directory, stack)
    before = path.read_bytes() if path.exists() else None
    try:
        yield
    except BaseException:
        _restore(path, before)
        raise
    if not unless_success:
        _restore(path, before)


def _restore(path: Path, before: bytes | None) -> None:
    if before is None:
        path.unlink(missing_ok=True)
    else:
        _write_atomically(path, before)


def _write_atomically(path: Path, content: bytes) -> None:
    """A reader sees the old file or the new one, never half of one."""
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_bytes(content)
    scratch.replace(path)


def set_settings(directory: Path, stack: str, settings: Mapping[str, Any]) -> None:
    """Sets project settings (keys without the ``hello-world:`` prefix) in a stack file, in one step.

    Everything else stays: the other settings, encrypted values, the salt and the file's leading comment.
    Values are written as Pulumi writes them (text, objects as mappings).

    Raises:
        StackFileError: When the file is missing or broken.
    """
    config = read_engine_config(directory, stack)
    path = stack_file(directory, stack)
    text = path.read_text()
    document = yaml.safe_load(text)
    document["config"] = {**config, **{_PREFIX + key: value for key, value in settings.items()}}
    body = yaml.dump(document, Dumper=_StackFileDumper, sort_keys=False, width=2**16, allow_unicode=True)
    _write_atomically(path, (_leading_comment(text) + body).encode())


def _leading_comment(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


class _StackFileDumper(yaml.SafeDumper):
    """Quotes as Pulumi does (``"2"``), so that a rewritten stack file differs only where a value changed."""

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        return '"' if style == "'" else style


@dataclass(frozen=True)
class LockHolder:
    """Who holds a stack's lock, written into the lock file for whoever waits."""

    pid: int
    purpose: str
    since: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.purpose}) since {self.since}"


def lock_file(directory: Path, stack: str) -> Path:
    return directory / LOCK_DIR / f"Pulumi.{stack}.yaml.lock"


@contextmanager
def locked(
    directory: Path, stack: str, *, purpose: str, wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[LockHolder]:
    """Holds the stack's lock (``flock`` on a lock file under ``.state/locks``) for the block.

    Everything that changes a stack file for a while (a promotion, a review) takes it, so that two
    of them never interleave their changes and restores. The kernel releases it when the holder
    exits, however it exits.

    Args:
        purpose: What the holder does, shown to whoever waits, such as ``promotion dev -> staging``.
        wait_seconds: How long to wait for another holder before giving up.

    Raises:
        StackLockedError: Naming the holder, when it keeps the lock past ``wait_seconds``.
    """
    path = lock_file(directory, stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while not _try_lock(descriptor):
            if time.monotonic() >= deadline:
                other = os.pread(descriptor, 4096, 0).decode(errors="replace").strip() or "another process"
                raise StackLockedError(
                    f"stack {stack!r} is locked by {other}; waited {wait_seconds:g}s for it. "
                    f"Let it finish (or stop it) and try again; the lock file is {path}"
                )
            time.sleep(LOCK_POLL_SECONDS)
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
        holder = LockHolder(pid=os.getpid(), purpose=purpose, since=now)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{holder}\n".encode(), 0)
        try:
            yield holder
        finally:
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return False
        raise
    return True


def machine_config_file(directory: Path, stack: str) -> Path:
    return directory / MACHINE_DIR / f"Pulumi.{stack}.yaml"


def machine_config(directory: Path, stack: str) -> Path:
    """Writes this machine's copy of a stack file and returns its path, for ``pulumi --config-file``.

    The tracked ``Pulumi.<stack>.yaml`` says what the stack is; what belongs to one machine (secrets
    encrypted with its passphrase, and the salt they need) stays in the copy under ``.state/stacks``,
    which git ignores, so that deploying never changes a tracked file. The copy is the tracked file
    with this machine's secrets for keys the tracked file does not set. It is written anew on every
    call, so a change to the tracked file always reaches it; plain settings belong in the tracked file.
    When the tracked file has its own secrets setup (a salt, a KMS key) that differs from the copy's,
    the copy's secrets were encrypted under another key and are dropped.

    Raises:
        StackFileError: When the tracked file is missing or broken.
    """
    tracked_config = read_engine_config(directory, stack)
    tracked = yaml.safe_load(stack_file(directory, stack).read_text()) or {}
    path = machine_config_file(directory, stack)
    machine: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            loaded = None  # a broken copy is only this machine's: it is written anew
        machine = loaded if isinstance(loaded, dict) else {}
    machine_setup = {key: machine[key] for key in SECRETS_KEYS if key in machine}
    tracked_setup = {key: tracked[key] for key in SECRETS_KEYS if key in tracked}
    same_key = all(machine_setup.get(key, value) == value for key, value in tracked_setup.items())
    machine_config_values = machine.get("config") if isinstance(machine.get("config"), dict) else {}
    own_secrets = {
        key: value
        for key, value in (machine_config_values or {}).items()
        if _encrypted(value) and key not in tracked_config and same_key
    }
    document = {key: value for key, value in tracked.items() if key not in SECRETS_KEYS and key != "config"}
    document["config"] = {**tracked_config, **own_secrets}
    document.update({**(machine_setup if same_key else {}), **tracked_setup})
    body = yaml.dump(document, Dumper=_StackFileDumper, sort_keys=False, width=2**16, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(stat.S_IRWXU)
    _write_privately(path, body.encode())
    return path


def _write_privately(path: Path, content: bytes) -> None:
    """Like :func:`_write_atomically`, readable by the owner only (0600) from the first byte."""
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.unlink(missing_ok=True)
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    scratch.replace(path)


@dataclass(frozen=True)
class Platform:
    """Where the local platform's cluster and registry are (``tooling/platform/env.sh``)."""

    kubeconfig: str = PLATFORM_KUBECONFIG
    registry: str = PLATFORM_REGISTRY

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Platform:
        return cls(
            kubeconfig=environ.get("HELLO_KUBECONFIG") or PLATFORM_KUBECONFIG,
            registry=environ.get("HELLO_REGISTRY") or PLATFORM_REGISTRY,
        )


def platform_uses(settings: Mapping[str, Any], platform: Platform, directory: Path) -> list[str]:
    """What in a stack's settings uses the local platform; empty when the stack needs none of it.

    A stack uses it when it deploys with the platform's kubeconfig (the default ``cluster.kubeconfig``),
    pushes to the platform's registry (``build.registry``), or runs an image from it (``image``).
    Values that are not what the settings expect count as the defaults: the program refuses them anyway.
    """
    uses = []
    cluster = settings.get("cluster")
    kubeconfig = cluster.get("kubeconfig") if isinstance(cluster, dict) else None
    kubeconfig = kubeconfig if isinstance(kubeconfig, str) and kubeconfig else PLATFORM_KUBECONFIG
    if _same_file(kubeconfig, platform.kubeconfig, directory) or _same_file(kubeconfig, PLATFORM_KUBECONFIG, directory):
        uses.append(f"it deploys with the local platform's kubeconfig ({kubeconfig})")
    build = settings.get("build")
    if isinstance(build, dict) and build.get("registry") == platform.registry:
        uses.append(f"it pushes to the local platform's registry ({platform.registry})")
    image = settings.get("image")
    if isinstance(image, str) and image.split("/", 1)[0] == platform.registry:
        uses.append(f"it runs an image from the local platform's registry ({platform.registry})")
    return uses


def _same_file(path: str, other: str, directory: Path) -> bool:
    def resolved(value: str) -> str:
        return os.path.realpath(directory / os.path.expanduser(value))

    return resolved(path) == resolved(other)


def policy_config(project: Path, stack: str) -> dict[str, Any]:
    """The policy pack's config for a stack: its ``policy/config/<stack>.json``, else every rule mandatory.

    A stack nobody wrote enforcement levels for is held to every rule, never to none.

    Raises:
        StackFileError: When ``stack`` is not a stack name, or its policy config is not a JSON object.
    """
    if not STACK_NAME.fullmatch(stack) or stack.startswith("."):
        raise StackFileError(f"a stack name must be letters, digits, '_', '.' or '-', got {stack!r}")
    path = project / POLICY_PACK_DIR / "config" / f"{stack}.json"
    if not path.exists():
        return dict(MANDATORY_POLICY_CONFIG)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StackFileError(f"{path} must be a JSON policy config, got an error: {error}") from None
    if not isinstance(config, dict):
        raise StackFileError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


@dataclass(frozen=True)
class PolicyRun:
    """The policy pack and the config file one stack's preview or update runs it with."""

    pack: Path
    config: Path

    @property
    def flags(self) -> list[str]:
        """The ``pulumi preview``/``up`` flags."""
        return ["--policy-pack", str(self.pack), "--policy-pack-config", str(self.config)]


@contextmanager
def policy_run(project: Path, stack: str) -> Iterator[PolicyRun]:
    """The pack and the stack's config (:func:`policy_config`) as files, for the length of the block.

    Raises:
        StackFileError: As :func:`policy_config`.
    """
    pack = project / POLICY_PACK_DIR
    own = pack / "config" / f"{stack}.json"
    config = policy_config(project, stack)
    if own.exists():
        yield PolicyRun(pack=pack, config=own)
        return
    with tempfile.TemporaryDirectory(prefix="policy-config-") as scratch:
        written = Path(scratch) / f"{stack}.json"
        written.write_text(json.dumps(config))
        yield PolicyRun(pack=pack, config=written)


COMMANDS = ("build-registry", "policy-config", "needs-platform", "machine-config")


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in COMMANDS:
        print(f"usage: python -m settings.stack_files {'|'.join(COMMANDS)} STACK", file=sys.stderr)
        return 2
    command, stack = argv
    if command == "policy-config":
        try:
            print(json.dumps(policy_config(Path.cwd(), stack), indent=2))
        except StackFileError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    if stack not in stack_names(Path.cwd()):
        print(f"error: STACK must be one of {', '.join(stack_names(Path.cwd()))}, got {stack!r}", file=sys.stderr)
        return 2
    try:
        if command == "machine-config":
            print(machine_config(Path.cwd(), stack))
            return 0
        settings = read_settings(Path.cwd(), stack)
    except StackFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if command == "needs-platform":
        uses = platform_uses(settings, Platform.from_environment(), Path.cwd())
        # The answer on stdout for scripts, the reason on stderr for people.
        print("yes" if uses else "no")
        reason = "; ".join(uses) if uses else "it names another cluster and registry"
        print(f"stack {stack} {'needs' if uses else 'does not need'} the local platform: {reason}", file=sys.stderr)
        return 0
    build = settings.get("build")
    if isinstance(build, dict) and isinstance(build.get("registry"), str):
        print(build["registry"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
