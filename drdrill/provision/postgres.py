"""PostgreSQL server binaries from Debian's packages."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from drdrill.errors import ToolMissing
from drdrill.host.tools import apt_install

PG_ROOT = Path("/usr/lib/postgresql")
POLICY_RC = Path("/usr/sbin/policy-rc.d")


def find_pg_bindir(root: Path = PG_ROOT) -> Path | None:
    """The newest installed major's bin dir that has both initdb and postgres."""
    if not root.is_dir():
        return None
    majors = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
    for major in majors:
        bindir = major / "bin"
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    return None


@contextlib.contextmanager
def _services_not_started() -> Iterator[None]:
    """Debian starts a 'main' cluster on install where it can; drdrill wants the binaries
    only, so service starts are refused (exit 101) for the duration of the install."""
    if POLICY_RC.exists():
        yield
        return
    POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink(missing_ok=True)


def ensure_postgres(cache_dir: Path) -> Path:
    bindir = find_pg_bindir()
    if bindir is not None:
        return bindir
    how = "install Debian's postgresql package: apt-get install -y postgresql"
    if os.geteuid() != 0:
        raise ToolMissing("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)", how)
    with _services_not_started():
        apt_install(cache_dir, "postgres", "installing PostgreSQL from Debian's packages",
                    ["postgresql", "postgresql-client"], present=lambda: find_pg_bindir() is not None, how=how)
    bindir = find_pg_bindir()
    if bindir is None:
        raise ToolMissing("PostgreSQL server binaries after apt-get install", how)
    return bindir
