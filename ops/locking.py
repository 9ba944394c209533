"""Stack locks: whatever changes or reads a stack file for a while holds its lock, so that two never interleave.

Two locks guard a stack: this checkout's own (:func:`locked`, a file under ``.state/locks``), and the lock a
shared (DIY) backend takes for each update, seen by every machine; :func:`backend_lock_error` names its holder.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_DIR = Path(".state") / "locks"
"""Where, under the project, the stacks' lock files live (``.state/`` is ignored by git)."""
LOCK_WAIT_SECONDS = 30.0
"""How long :func:`locked` waits for another holder by default."""
MAX_WAIT_SECONDS = 3600.0
"""The longest wait :func:`locked` accepts: a wait must end (filelock waits forever for a negative one)."""
WAIT_EXPECTATION = f"a number of seconds from 0 to {MAX_WAIT_SECONDS:g}"


def wait_in_bounds(seconds: float) -> bool:
    """Whether a wait ends, and in time: NaN, infinities and negatives do not."""
    return 0 <= seconds <= MAX_WAIT_SECONDS


LOCK_POLL_SECONDS = 0.1


class StackLockedError(Exception):
    """Another process holds the stack's lock and did not let go in time."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a stack's lock, written beside the lock file for whoever waits."""

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
    """Holds the stack's lock for the block (filelock's ``flock``: the kernel frees it however the holder exits).

    Args:
        purpose: What the holder does, shown to whoever waits, such as ``promotion dev -> staging``.
        wait_seconds: How long to wait for another holder before giving up.

    Raises:
        StackLockedError: Naming the holder, when it keeps the lock past ``wait_seconds``.
        ValueError: When ``wait_seconds`` is not from 0 to MAX_WAIT_SECONDS (nothing is written then).
    """
    if not wait_in_bounds(wait_seconds):
        raise ValueError(f"wait_seconds must be {WAIT_EXPECTATION}, got {wait_seconds!r}")
    path = lock_file(directory, stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    # filelock empties the lock file on every try, so who holds it is told in a file of its own.
    holder_file = path.with_name(path.name + ".holder")
    lock = FileLock(path, mode=0o644)
    try:
        lock.acquire(timeout=wait_seconds, poll_interval=LOCK_POLL_SECONDS)
    except Timeout:
        try:
            other = holder_file.read_text().strip() or "another process"
        except OSError:
            other = "another process"
        raise StackLockedError(
            f"stack {stack!r} is locked by {other}; waited {wait_seconds:g}s for it. "
            f"Let it finish (or stop it) and try again; the lock file is {path}"
        ) from None
    try:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
        holder = LockHolder(pid=os.getpid(), purpose=purpose, since=now)
        holder_file.write_text(f"{holder}\n")
        try:
            yield holder
        finally:
            holder_file.write_text("")
    finally:
        lock.release()


BACKEND_LOCKED = "the stack is currently locked by"
"""How pulumi starts its refusal to update a stack whose backend lock another update holds (no engine event says it)."""
LOCK_HOLDER = re.compile(r": created by (?P<who>\S+) \(pid (?P<pid>\d+)\) at (?P<since>\S+)")
"""Pulumi's line about each lock file: ``<url>: created by user@host (pid N) at <time>``."""


class BackendLockedError(StackLockedError):
    """Another update holds the stack's lock in the shared backend; nothing ran."""


@dataclass(frozen=True)
class BackendLockHolder:
    """Who took a backend lock, as pulumi's lock file records it."""

    who: str
    """``user@host``."""
    pid: int
    since: str

    def stale(self, hostname: str | None = None) -> bool:
        """Whether the holder ran on this machine and is gone (killed before it could release the lock)."""
        host = self.who.rsplit("@", 1)[-1]
        if host != (hostname or socket.gethostname()):
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        # A killed process stays a zombie until something reaps it (its parent may be gone too): it runs no more.
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state == "Z"


def backend_lock_error(output: str, stack: str, hostname: str | None = None) -> BackendLockedError | None:
    """The named error for pulumi's refusal to update a stack another update holds, or None for another failure.

    Args:
        output: What pulumi wrote (its error's text).
        hostname: This machine's name (default: the real one), to tell a stale lock of a killed run.
    """
    if BACKEND_LOCKED not in output:
        return None
    holders = [
        BackendLockHolder(match["who"], int(match["pid"]), match["since"]) for match in LOCK_HOLDER.finditer(output)
    ]
    named = "; ".join(f"{h.who} (pid {h.pid}) since {h.since}" for h in holders) or "a holder pulumi did not name"
    clear = f"`pulumi cancel --stack {stack} --yes` (with the same backend and passphrase)"
    stale = [h for h in holders if h.stale(hostname)]
    if holders and len(stale) == len(holders):
        advice = (
            f"that process no longer runs on this machine: the lock is stale, left by a run that was killed before "
            f"it could let go. Clear it with {clear}, then check the stack with `make preview` and `make drift`"
        )
    else:
        advice = (
            f"wait for it to end and run again; if no update runs there any more, the lock is stale: "
            f"clear it with {clear}"
        )
    return BackendLockedError(f"stack {stack!r} is locked by another update: {named}; nothing ran. Either {advice}")
