"""This machine's state backend: a file backend's folder and the secrets passphrase, made on first use, private.

`make` sets where they are (tooling/platform/env.sh: ``PULUMI_BACKEND_URL``, ``PULUMI_CONFIG_PASSPHRASE_FILE``,
``HELLO_STATE``); every stack the engine opens goes through :func:`prepare` first, so that `python -m ops`
works on a new machine without a `pulumi login`, which would also change the user's current backend.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

PASSPHRASE_BYTES = 24


def prepare(environ: Mapping[str, str] = os.environ) -> None:
    """Makes the project's state folder, the passphrase file and a file backend's folder, each private (0700/0600).

    Only the project's own folders get their mode set when they exist already: its state folder and what
    lies in it, and Pulumi's ``~/.pulumi`` for a backend in the home folder. A backend folder elsewhere
    that exists is the user's, and stays as it is.
    """
    state = Path(environ["HELLO_STATE"]) if environ.get("HELLO_STATE") else None
    if state is not None:
        _private_folder(state, owned=True)
    passphrase = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if passphrase and not environ.get("PULUMI_CONFIG_PASSPHRASE"):
        _passphrase_file(Path(passphrase))
    folder = file_backend_folder(environ)
    if folder is not None:
        home = Path(environ.get("HOME") or Path.home())
        if folder == home:
            _private_folder(home / ".pulumi", owned=True)
        else:
            _private_folder(folder, owned=state is not None and folder.is_relative_to(state))


def file_backend_folder(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The folder of a ``file://`` backend (``file://~`` is Pulumi's name for the home folder), else None."""
    url = environ.get("PULUMI_BACKEND_URL", "")
    if not url.startswith("file://"):
        return None
    path = url.removeprefix("file://").split("?", 1)[0]
    home = environ.get("HOME") or str(Path.home())
    if path in ("~", "~/"):
        return Path(home)
    return Path(home) / path.removeprefix("~/") if path.startswith("~/") else Path(path)


def _private_folder(folder: Path, *, owned: bool) -> None:
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        folder.chmod(0o700)  # mkdir's mode passes through the umask
    elif owned:
        folder.chmod(0o700)


def _passphrase_file(path: Path) -> None:
    if path.exists() and path.stat().st_size > 0:
        return
    _private_folder(path.parent, owned=False)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(PASSPHRASE_BYTES)).decode() + "\n")
