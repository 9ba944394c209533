"""This machine's copy of a stack file (``.state/stacks/Pulumi.<stack>.yaml``), which pulumi reads.

The tracked ``Pulumi.<stack>.yaml`` says what the stack is; what belongs to one machine (secrets
encrypted with its passphrase, and the salt they need) stays in the copy, which git ignores, so that
deploying never changes a tracked file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from settings import PROJECT
from settings.local_platform import Platform, local_platform_settings
from settings.stack_files import (
    SECRETS_KEYS,
    StackFileError,
    dump_yaml,
    is_encrypted,
    load_yaml,
    project_settings,
    read_engine_config,
    stack_file,
    write_atomically,
)

COPY_DIR = Path(".state") / "stacks"
"""Where, under the project, this machine's copies of the stack files live."""


def stack_copy_file(directory: Path, stack: str) -> Path:
    return directory / COPY_DIR / f"Pulumi.{stack}.yaml"


def write_stack_copy(
    directory: Path, stack: str, pinned: Mapping[str, Any] | None = None, environ: Mapping[str, str] = os.environ
) -> Path:
    """Writes this machine's copy of a stack file and returns its path, for ``pulumi --config-file``.

    The tracked ``Pulumi.<stack>.yaml`` says what the stack is; what belongs to one machine (secrets
    encrypted with its passphrase, and the salt they need) stays in the copy under ``.state/stacks``,
    which git ignores, so that deploying never changes a tracked file. The copy is the tracked file
    with this machine's secrets for keys the tracked file does not set. It is written anew on every
    call, so a change to the tracked file always reaches it; plain settings belong in the tracked file.
    When the tracked file has its own secrets setup (a salt, a KMS key) that differs from the copy's,
    the copy's secrets were encrypted under another key and are dropped. ``pinned`` settings (keys without
    the project prefix, as :func:`set_settings` takes them) override the tracked file's in the copy only:
    a promotion previews what it would pin before anyone has confirmed it. A stack on the local platform gets
    the values that differ per machine (the verification's checker image, ``settings.local_platform``), unless
    its tracked file sets them.

    Raises:
        StackFileError: When the tracked file is missing or broken.
    """
    tracked_config = read_engine_config(directory, stack)
    tracked = load_yaml(stack_file(directory, stack)) or {}
    path = stack_copy_file(directory, stack)
    machine: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = load_yaml(path)
        except StackFileError:
            loaded = None  # a broken copy is only this machine's: it is written anew
        machine = loaded if isinstance(loaded, dict) else {}
    machine_setup = {key: machine[key] for key in SECRETS_KEYS if key in machine}
    tracked_setup = {key: tracked[key] for key in SECRETS_KEYS if key in tracked}
    same_key = all(machine_setup.get(key, value) == value for key, value in tracked_setup.items())
    copy_config = machine.get("config") if isinstance(machine.get("config"), dict) else {}
    own_secrets = {
        key: value
        for key, value in (copy_config or {}).items()
        if is_encrypted(value) and key not in tracked_config and same_key
    }
    document = {key: value for key, value in tracked.items() if key not in SECRETS_KEYS and key != "config"}
    local = local_platform_settings(project_settings(tracked_config), Platform.from_environment(environ), directory)
    overrides = {f"{PROJECT}:{key}": value for key, value in {**local, **(pinned or {})}.items()}
    document["config"] = {**tracked_config, **overrides, **own_secrets}
    document.update({**(machine_setup if same_key else {}), **tracked_setup})
    body = dump_yaml(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(stat.S_IRWXU)
    write_atomically(path, body.encode(), private=True)
    return path


PASSWORD_KEY = "hello-world:registryPassword"


def _password_mark(directory: Path, stack: str) -> Path:
    return directory / COPY_DIR / f"{stack}.registry-password.json"


def _stored_state(config_file: Path, password_file: Path) -> dict[str, object] | None:
    """What says the copy holds the password as the password file has it now; no password-derived value.

    The ciphertext changes whenever the password is set again; the password file's identity and times
    change whenever the platform writes a new one. ``None`` when the copy holds no password.
    """
    document = load_yaml(config_file) or {}
    config = document.get("config") if isinstance(document, dict) else None
    stored = config.get(PASSWORD_KEY) if isinstance(config, dict) else None
    if not isinstance(stored, dict) or not isinstance(stored.get("secure"), str):
        return None
    status = password_file.stat()
    return {
        "ciphertext_sha256": hashlib.sha256(stored["secure"].encode()).hexdigest(),
        "password_file": [status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns],
    }


def local_password_to_set(
    directory: Path, stack: str, settings: Mapping[str, object], config_file: Path, environ: Mapping[str, str]
) -> bool:
    """Whether the stack pushes to the local registry and its copy lacks that registry's current password."""
    build = settings.get("build")
    registry, password_file = environ.get("HELLO_REGISTRY"), environ.get("HELLO_REGISTRY_PASSWORD_FILE")
    if not isinstance(build, dict) or registry is None or build.get("registry") != registry:
        return False
    if password_file is None or not os.access(password_file, os.R_OK):
        return False
    mark = _password_mark(directory, stack)
    try:
        remembered = json.loads(mark.read_text())
    except (OSError, ValueError):
        return True
    return bool(remembered != _stored_state(config_file, Path(password_file)))


def remember_password(directory: Path, stack: str, config_file: Path, password_file: Path) -> None:
    state = _stored_state(config_file, password_file)
    if state is not None:
        _password_mark(directory, stack).write_text(json.dumps(state))
