"""A shared backend's lock refusal, reworded: who holds the lock, since when, stale or not, and what clears it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ops.locking import BackendLockHolder, StackLockedError, backend_lock_error

REFUSAL = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete "
    "the lock file with `pulumi cancel`.\n"
    "    s3://state/.pulumi/locks/organization/hello-world/dev/0a.json?endpoint=x: "
    "created by alice@{host} (pid {pid}) at 2026-12-05T23:24:17Z\n"
)


def gone_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_another_failure_is_no_lock_error() -> None:
    assert backend_lock_error("error: update failed", "dev") is None


def test_a_live_holder_elsewhere_is_named_with_the_wait_and_the_command_that_clears_a_stale_lock() -> None:
    found = backend_lock_error(REFUSAL.format(host="laptop", pid=4242), "dev", hostname="ci-runner")

    assert isinstance(found, StackLockedError)
    assert str(found) == (
        "stack 'dev' is locked by another update: alice@laptop (pid 4242) since 2026-12-05T23:24:17Z; nothing ran. "
        "Either wait for it to end and run again; if no update runs there any more, the lock is stale: clear it "
        "with `pulumi cancel --stack dev --yes` (with the same backend and passphrase)"
    )


def test_a_holder_of_this_machine_that_is_gone_left_a_stale_lock() -> None:
    found = backend_lock_error(REFUSAL.format(host="here", pid=gone_pid()), "dev", hostname="here")

    assert found is not None
    assert "the lock is stale, left by a run that was killed before it could let go" in str(found)
    assert "`pulumi cancel --stack dev --yes`" in str(found)


def test_a_holder_of_this_machine_that_still_runs_is_not_stale() -> None:
    assert not BackendLockHolder(who="root@here", pid=os.getpid(), since="t").stale("here")
    assert BackendLockHolder(who="root@here", pid=gone_pid(), since="t").stale("here")
    assert not BackendLockHolder(who="root@there", pid=gone_pid(), since="t").stale("here")


def test_a_holder_of_this_machine_killed_and_not_yet_reaped_left_a_stale_lock() -> None:
    with subprocess.Popen(["sleep", "60"]) as holder:
        alive = BackendLockHolder(who="root@here", pid=holder.pid, since="t").stale("here")
        holder.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{holder.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed process never became a zombie"
            time.sleep(0.01)
        zombie = BackendLockHolder(who="root@here", pid=holder.pid, since="t").stale("here")
        holder.wait()

    assert (alive, zombie) == (False, True)
