"""The unprivileged account services run as when drdrill itself runs as root
(Elasticsearch and PostgreSQL refuse to run as root)."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from drdrill.errors import ProvisionError
from drdrill.host.tools import require_tool, run_step

SERVICE_USER = "drdrill"


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int


def current_user() -> ServiceUser:
    entry = pwd.getpwuid(os.geteuid())
    return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def ensure_service_user(cache_dir: Path) -> ServiceUser | None:
    """None when not root: services then simply run as the current user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = require_tool("useradd", "install Debian's passwd package")
        run_step(
            f"creating system user {SERVICE_USER!r} for the services",
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SERVICE_USER],
            log_path=cache_dir / "logs" / "useradd.log",
        )
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError as exc:
            raise ProvisionError(f"user {SERVICE_USER!r} still missing after useradd") from exc
    return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
