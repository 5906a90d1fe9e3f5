"""MinIO built from source with ``go install`` at a pinned version (community edition ships
no binaries any more)."""

from __future__ import annotations

from pathlib import Path

from drdrill.host.tools import go_install

MODULE = "github.com/minio/minio"


def ensure_minio(cache_dir: Path, version: str) -> Path:
    return go_install(cache_dir, "minio", MODULE, version, produces="minio")
