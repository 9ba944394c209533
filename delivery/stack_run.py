"""What `tooling/scripts/stack.sh` needs before it runs pulumi on a stack, found in one process.

Usage: python -m delivery.stack_run prepare STACK POLICY_CONFIG_FILE
           writes the stack's policy config to POLICY_CONFIG_FILE, then prints three lines:
           this machine's copy of the stack file (``--config-file``); ``set`` when the local registry's
           password must be stored in it, else ``keep``; ``yes`` when the stack uses the local platform.
       python -m delivery.stack_run remember-password STACK
           records that the copy now holds the local registry's password (after ``pulumi config set``).

Each pulumi call costs a CLI start and each Python call an interpreter start: stack.sh used to spend
about 0.9 s on them before every preview. Reading the stack files once here, and asking pulumi for the
stored password only when it may have changed, leaves about 0.1 s (``make bench`` measures it).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from settings.stack_files import (
    MACHINE_DIR,
    Platform,
    StackFileError,
    machine_config,
    machine_config_file,
    platform_uses,
    policy_config,
    read_settings,
    stack_names,
)

PASSWORD_KEY = "hello-world:registryPassword"


def _password_mark(directory: Path, stack: str) -> Path:
    return directory / MACHINE_DIR / f"{stack}.registry-password.json"


def _stored_state(config_file: Path, password_file: Path) -> dict[str, object] | None:
    """What says the copy holds the password as the password file has it now; no password-derived value.

    The ciphertext changes whenever the password is set again; the password file's identity and times
    change whenever the platform writes a new one. ``None`` when the copy holds no password.
    """
    document = yaml.safe_load(config_file.read_text()) or {}
    stored = (document.get("config") or {}).get(PASSWORD_KEY)
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


def prepare(directory: Path, stack: str, policy_out: Path, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The three lines ``prepare`` prints (see the module's usage); writes the policy config to ``policy_out``.

    Raises:
        StackFileError: When the stack has no file, or its file or policy config is broken.
    """
    if stack not in stack_names(directory):
        raise StackFileError(f"STACK must be one of {', '.join(stack_names(directory))}, got {stack!r}")
    settings = read_settings(directory, stack)
    policy_out.write_text(json.dumps(policy_config(directory, stack), indent=2))
    config_file = machine_config(directory, stack)
    to_set = local_password_to_set(directory, stack, settings, config_file, environ)
    uses_platform = platform_uses(settings, Platform.from_environment(environ), directory)
    lines = [str(config_file), "set" if to_set else "keep", "yes" if uses_platform else "no"]
    if any("\n" in line for line in lines):
        raise StackFileError(f"the project's path must not hold a line break, got {str(directory)!r}")
    return lines


def main(argv: Sequence[str]) -> int:
    directory = Path.cwd()
    try:
        match argv:
            case ["prepare", stack, policy_out]:
                print("\n".join(prepare(directory, stack, Path(policy_out))))
            case ["remember-password", stack]:
                password_file = Path(os.environ["HELLO_REGISTRY_PASSWORD_FILE"])
                remember_password(directory, stack, machine_config_file(directory, stack), password_file)
            case _:
                print(__doc__.split("\n\n")[1], file=sys.stderr)
                return 2
    except StackFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
