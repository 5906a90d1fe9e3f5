"""What every stack drdrill starts keeps on disk: one work directory per stack, locked while
it changes, with ``stack.json`` (mode 0600: it holds the generated credentials) recording what
was started, written as soon as each part starts so that ``down`` can stop it even after the
harness crashed half-way through ``up``."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drdrill.adapters.platform import Endpoints
from drdrill.errors import StackError, StackNotUp
from drdrill.settings import Paths, StackSettings

STATE_FILE = "stack.json"
PG_ADMIN_USER = "postgres"


def free_port() -> int:
    """A port the kernel considers free on loopback right now. Ports come from the kernel's
    ephemeral range, so two stacks starting at once practically never draw the same one; if
    they do, the loser's readiness wait fails naming the service and its bind error."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_state_file(path: Path, what: str, clean_up: str) -> dict[str, Any] | None:
    """A state file's content (None: there is none); an unreadable one says how to clean up."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise StackError(f"{what} state {path} is unreadable: {exc}",
                         hint=f"run `{clean_up}` to clean up, then `up` again") from exc


class StackWorkdir:
    """A stack's work directory and state file. The constructor does no I/O."""

    def __init__(self, paths: Paths, settings: StackSettings, *, stack_name: str = "default") -> None:
        self.paths, self.settings = paths, settings
        self.stack_name = stack_name
        self.workdir = paths.stack_dir(stack_name)  # validates the name: one safe path segment

    @property
    def state_path(self) -> Path:
        return self.workdir / STATE_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.workdir.parent.mkdir(parents=True, exist_ok=True)
        if self.workdir.exists() or self.workdir.is_symlink():
            self.paths.check_stack_dir(self.workdir)
        self.workdir.mkdir(exist_ok=True)
        os.chmod(self.workdir, 0o711)  # services (another user) traverse into their own dirs
        with open(self.workdir / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> dict[str, Any] | None:
        return read_state_file(self.state_path, "stack", "drdrill stack down")

    def _state_of_up_stack(self) -> dict[str, Any]:
        state = self._read_state()
        if not state or "endpoints" not in state:
            raise StackNotUp(f"stack {self.stack_name!r} is not up", hint="run `drdrill stack up` first")
        return state

    def endpoints(self) -> Endpoints:
        return Endpoints.from_dict(self._state_of_up_stack()["endpoints"])
