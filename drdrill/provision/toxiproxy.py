"""Toxiproxy (Shopify's TCP proxy with latency, bandwidth and reset "toxics"), built with
``go install`` at a pinned version: it stands between every client and MinIO on the containers
target, so the object store's network can be made slow, lossy or cut for real."""

from __future__ import annotations

from pathlib import Path

from drdrill.host.tools import go_install

VERSION = "v2.12.0"
PACKAGE = "github.com/Shopify/toxiproxy/v2/cmd/server"


def ensure_toxiproxy(cache_dir: Path, version: str = VERSION) -> Path:
    return go_install(cache_dir, "toxiproxy", PACKAGE, version, produces="server")
