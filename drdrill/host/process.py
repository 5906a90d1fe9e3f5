"""Start service processes so that they can be found and stopped again, even by a later
drdrill process after the one that started them crashed.

Each service is started in its own session (so its process group id is its pid) and recorded
as pid + create time: a pid alone could have been reused by an unrelated process by the time
``stack down`` runs, and drdrill must stop only what it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from drdrill.host.users import ServiceUser

log = logging.getLogger(__name__)

# psutil's create_time is a float rounded by the kernel's clock ticks; equal within this.
_CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class ProcessRecord:
    service: str
    pid: int
    create_time: float
    stop_signal: int = signal.SIGTERM
    node: str = ""  # which of a service's processes (an Elasticsearch node of several); '' if one

    @property
    def key(self) -> str:
        """``elasticsearch`` or, one node of several, ``elasticsearch/drdrill-es-1``."""
        return f"{self.service}/{self.node}" if self.node else self.service

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            service=str(data["service"]),
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            stop_signal=int(data.get("stop_signal", signal.SIGTERM)),
            node=str(data.get("node", "")),
        )


def spawn(
    service: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    user: ServiceUser | None,
    stop_signal: int = signal.SIGTERM,
    node: str = "",
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
        )
    create_time = psutil.Process(proc.pid).create_time()
    log.debug("started %s pid %d", service, proc.pid)
    return proc, ProcessRecord(service, proc.pid, create_time, int(stop_signal), node)


def _leader(record: ProcessRecord) -> psutil.Process | None:
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > _CREATE_TIME_TOLERANCE_S:
            return None  # the pid now belongs to some other process
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.NoSuchProcess:
        return None


def members(record: ProcessRecord) -> list[psutil.Process]:
    """Every live process of the service: its process group (also when its leader is gone) and
    the leader's descendants, which may have left the group (PostgreSQL's backends each call
    setsid(): pausing only the group would leave open connections answering).

    A member must have been created no earlier than the leader, which rules out an unrelated
    group that happens to reuse the number."""
    found: list[psutil.Process] = []
    leader = _leader(record)
    if leader is not None:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            for child in leader.children(recursive=True):
                with contextlib.suppress(ProcessLookupError):
                    if os.getpgid(child.pid) != record.pid:
                        found.append(child)
    for proc in psutil.process_iter(["pid", "create_time", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(proc.pid) != record.pid:
                continue
            if proc.info["create_time"] + _CREATE_TIME_TOLERANCE_S < record.create_time:
                continue
            found.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def is_running(record: ProcessRecord) -> bool:
    return _leader(record) is not None


def stop(record: ProcessRecord, timeout_s: float) -> list[int]:
    """Stop the service's whole process group; returns the pids that had to be killed."""
    return stop_together([record], timeout_s)


def _ask_to_stop(record: ProcessRecord) -> list[psutil.Process]:
    leader = _leader(record)
    if leader is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            leader.send_signal(record.stop_signal)
    group = members(record)
    if leader is None and group:
        # The leader died (e.g. a crash) but its children live on: ask them to stop.
        for proc in group:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
    return group + ([leader] if leader else [])


def stop_together(records: Sequence[ProcessRecord], timeout_s: float) -> list[int]:
    """Ask every process to stop at once, then wait for all: the nodes of one Elasticsearch
    cluster stopped one after another lose their quorum and the last ones hang in shutdown."""
    procs = [proc for record in records for proc in _ask_to_stop(record)]
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    killed = []
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
            killed.append(proc.pid)
    if alive:
        log.warning("%s did not stop within %.0fs; killed pids %s", ", ".join(r.key for r in records),
                    timeout_s, killed)
        psutil.wait_procs(alive, timeout=10)
    return killed


def kill(record: ProcessRecord) -> None:
    """SIGKILL the whole group at once: what a crashed host looks like to the service."""
    group = members(record)
    for proc in group:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(group, timeout=10)


def signal_group(record: ProcessRecord, signum: int) -> None:
    for proc in members(record):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signum)


def state(record: ProcessRecord) -> str:
    leader = _leader(record)
    if leader is None:
        return "not running"
    try:
        return "stopped (paused)" if leader.status() == psutil.STATUS_STOPPED else "running"
    except psutil.NoSuchProcess:
        return "not running"
