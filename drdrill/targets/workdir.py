"""What every stack drdrill starts keeps on disk: one work directory per stack, locked while
it changes, with ``stack.json`` (mode 0600: it holds the generated credentials) recording what
was started, written as soon as each part starts so that ``down`` can stop it even after the
harness crashed half-way through ``up``."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drdrill.adapters.platform import Endpoints
from drdrill.errors import StackError, StackNotUp
from drdrill.settings import Paths, StackSettings

STATE_FILE = "stack.json"
PG_ADMIN_USER = "postgres"


# Where a service's port is drawn from: below the kernel's ephemeral range (32768.. by default),
# which bind(0) and outgoing connections take ports from. A port drawn from that range is free
# when drawn but not reserved: anything on the machine may take it in the seconds before the
# service binds it (Elasticsearch binds ~10-40 s after its start), or while a redeployed
# service is down, and the service then dies of "Address already in use" (issue 24, item 7).
SERVICE_PORTS = (20000, 32000)
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A port free on loopback right now, outside the kernel's ephemeral range when it leaves
    room below it (else from it, as bind(0) gives). Two stacks drawing at once practically never
    draw the same one; if they do, the loser's start fails naming its bind error and the port's
    holder, and a fresh ``up`` retries once with new ports."""
    low, high = SERVICE_PORTS
    try:
        first_ephemeral = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768
    high = min(high, first_ephemeral - 1)
    for _ in range(64 if high - low > 1000 else 0):
        port = secrets.choice(range(low, high))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
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
