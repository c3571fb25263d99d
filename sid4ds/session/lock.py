"""``session.lock``: one command at a time changes a session.

The lock is created with ``O_CREAT | O_EXCL`` and holds its owner's pid, host, command and
start time. A lock whose process is gone (or whose pid now belongs to another process) is
stale and is removed by the next command, with a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from sid4ds.session.errors import SessionBusyError, SessionWarning
from sid4ds.session.storage import now

__all__ = ["LOCK", "SessionLock", "pid_alive", "process_start"]

#: The lock file in the session folder, there only while a command runs.
LOCK = "session.lock"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover - platform specific
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie: killed, not yet reaped
    return True


def process_start(pid: int) -> str | None:
    """The start time of a process (Linux), to tell a reused pid from the lock's owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class SessionLock:
    """``session.lock``: created with O_CREAT | O_EXCL, holds the owner's pid and command."""

    def __init__(self, root: Path, command: str) -> None:
        self.path = root / LOCK
        self.command = command
        self.owned = False
        #: whether taking the lock removed a stale one: a command ended without finishing
        #: and may have left temporary files behind
        self.replaced_stale = False

    @staticmethod
    def read(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    @staticmethod
    def is_own(holder: dict[str, Any]) -> bool:
        """Whether this process holds the lock ``holder`` describes."""
        return holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname()

    @staticmethod
    def is_stale(holder: dict[str, Any] | None, path: Path) -> bool:
        if holder is None:  # unreadable: stale unless it is being written right now
            try:
                return time.time() - path.stat().st_mtime > 30
            except OSError:
                return True
        if holder.get("host") != socket.gethostname():
            return False  # cannot see the process: let the user decide
        pid = int(holder.get("pid", -1))
        if not pid_alive(pid):
            return True
        started = holder.get("process_start")
        return started is not None and process_start(pid) not in (None, started)

    def __enter__(self) -> SessionLock:
        info = {
            "pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
            "started": now(), "process_start": process_start(os.getpid()),
        }
        for _ in range(3):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.read(self.path)
                if not self.is_stale(holder, self.path):
                    raise SessionBusyError(self._busy_message(holder)) from None
                if self.read(self.path) == holder:  # still the same stale lock
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    self.replaced_stale = True
                    warnings.warn(
                        f"removed a stale lock of {self.path.parent}: "
                        + (f"`sid4ds {holder.get('command')}` (pid {holder.get('pid')}, "
                           f"started {holder.get('started')}) ended without finishing; the "
                           f"session is as it was after its last finished step"
                           if holder else "an unreadable lock file"),
                        SessionWarning, stacklevel=3)
                continue
            with os.fdopen(descriptor, "w") as handle:
                json.dump(info, handle)
                handle.flush()
                os.fsync(handle.fileno())
            self.owned = True
            return self
        raise SessionBusyError(self._busy_message(self.read(self.path)))

    def _busy_message(self, holder: dict[str, Any] | None) -> str:
        who = (f"`sid4ds {holder.get('command')}` (pid {holder.get('pid')} on "
               f"{holder.get('host')}, started {holder.get('started')})" if holder
               else "another command")
        return (f"session {self.path.parent} is in use by {who}; wait for it to finish. If no "
                f"such command runs any more, delete {self.path}")

    def __exit__(self, *exc_info: Any) -> None:
        if self.owned:
            holder = self.read(self.path)
            if holder is not None and holder.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self.owned = False

