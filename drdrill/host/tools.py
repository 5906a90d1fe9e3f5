"""Shared provisioning mechanics: tool lookup, a cross-process lock, logged commands with a
heartbeat so long downloads and builds show progress."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from drdrill.errors import ExtraMissing, ProvisionError, ToolMissing

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0


def require_tool(name: str, how_to_get: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(name, how_to_get)
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise provisioning between processes (two stacks starting at once must not both
    build MinIO into the same place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_step(
    what: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 1800,
) -> None:
    """Run one provisioning command, its output to ``log_path``, logging progress every
    ``HEARTBEAT_S`` seconds; on failure raise with the log's last lines."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log.info("%s ...", what)
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_S):
            log.info("%s: still working (%.0fs)", what, time.monotonic() - started)

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        with open(log_path, "ab") as out:
            result = subprocess.run(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                timeout=timeout_s,
                check=False,
            )
    except subprocess.TimeoutExpired as exc:
        raise ProvisionError(f"{what} did not finish within {timeout_s:.0f}s", hint=f"see {log_path}") from exc
    finally:
        done.set()
    if result.returncode != 0:
        tail = tail_text(log_path, 5)
        raise ProvisionError(
            f"{what} failed (exit {result.returncode}): {tail.splitlines()[-1] if tail else 'no output'}",
            hint=f"full log: {log_path}",
        )
    log.info("%s: done in %.1fs", what, time.monotonic() - started)


def tail_text(path: Path, lines: int = 20, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a log file, or '' if it does not exist."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def make_world_readable(root: Path) -> None:
    """Services run as an unprivileged user when drdrill is root: they must read (and, for
    executables, run) what was provisioned as root."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o755)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                continue
            mode = os.stat(full).st_mode
            os.chmod(full, mode | 0o444 | (0o111 if mode & 0o100 else 0))


def apt_install(cache_dir: Path, name: str, what: str, packages: Sequence[str], *, present: Callable[[], bool],
                how: str) -> None:
    """Debian packages installed once per machine (under a lock, so two processes do not both
    run apt), unless ``present()`` says they already are."""
    apt = require_tool("apt-get", how)
    with file_lock(cache_dir / "locks" / f"{name}.lock"):
        if present():
            return
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        logs = cache_dir / "logs" / f"{name}-apt.log"
        run_step("apt-get update", [apt, "update", "-q"], log_path=logs, env=env)
        run_step(what, [apt, "install", "-y", "-q", "--no-install-recommends", *packages], log_path=logs, env=env)


def go_install(cache_dir: Path, name: str, package: str, version: str, *, produces: str) -> Path:
    """A Go program built once per machine with ``go install package@version`` (no release
    binaries are fetched): ``<cache>/<name>/<version>/<name>``."""
    binary = cache_dir / name / version / name
    if binary.exists():
        return binary
    with file_lock(cache_dir / "locks" / f"{name}-{version}.lock"):
        if binary.exists():
            return binary
        go = require_tool("go", "install Go 1.24 or newer (https://go.dev/doc/install or apt-get install golang)")
        staging = binary.parent.with_name(binary.parent.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        env = dict(os.environ, GOBIN=str(staging), CGO_ENABLED="0", GOFLAGS="-buildvcs=false")
        run_step(f"building {name} {version} with go install (once per machine)",
                 [go, "install", f"{package}@{version}"],
                 log_path=cache_dir / "logs" / f"{name}-{version}-build.log", env=env, timeout_s=3600)
        if not (staging / produces).exists():
            raise ProvisionError(f"go install finished but produced no {produces}", hint=f"see {cache_dir / 'logs'}")
        if produces != name:
            os.replace(staging / produces, staging / name)
        make_world_readable(staging)
        shutil.rmtree(binary.parent, ignore_errors=True)
        os.replace(staging, binary.parent)
    return binary


def require_module(module: str, extra: str, why: str) -> None:
    """An optional part of drdrill that this work needs: installed, or a usage error naming the
    extra that brings it (``pip install 'drdrill[extra]'``)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ExtraMissing(extra, f"{why}: the Python package {module!r} is not installed")
