"""A headless Chromium: renders report.html to PDF as a person would see it printed (the page is
self-contained, so nothing is fetched), and lets tests look at what a browser makes of a page."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from drdrill.errors import HarnessError, UsageError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Quiet and offline: no first-run, sync, component or background requests (this machine's
# network refuses them, and a report must render without any).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--mute-audio")


def find_chromium() -> str:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise UsageError("rendering a PDF needs Chromium, and none is installed",
                     hint="Debian: apt-get install chromium")


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="drdrill-chromium-") as profile:
        argv = [find_chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"Chromium did not finish within {timeout_s:.0f}s") from exc


def print_to_pdf(html: Path, pdf: Path, timeout_s: float = 120) -> Path:
    """``pdf`` written whole or not at all (a temporary file renamed into place)."""
    fd, tmp = tempfile.mkstemp(dir=pdf.parent, prefix=f".{pdf.name}.", suffix=".tmp")
    os.close(fd)
    try:
        result = _run([f"--print-to-pdf={tmp}", "--no-pdf-header-footer", html.resolve().as_uri()], timeout_s)
        if result.returncode != 0 or Path(tmp).stat().st_size == 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise HarnessError(f"Chromium could not print {html} (exit {result.returncode}): {last[:200]}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, pdf)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return pdf


def dump_dom(html: Path, timeout_s: float = 60) -> str:
    """The document as the browser built it from ``html``."""
    result = _run(["--dump-dom", html.resolve().as_uri()], timeout_s)
    if result.returncode != 0:
        raise HarnessError(f"Chromium could not load {html} (exit {result.returncode})")
    return result.stdout
