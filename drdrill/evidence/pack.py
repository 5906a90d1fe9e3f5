"""A signed evidence pack: one drill's report directory, its history line and a manifest with
the SHA-256 of every file, signed with Ed25519, in one tar.gz an auditor can check offline
(`drdrill evidence verify`, or by hand: the manifest is JSON, the signature base64)."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drdrill import __version__
from drdrill.core.history import HistoryFormatError, entries, sha256_hex
from drdrill.errors import RecoveryFailure, UsageError
from drdrill.evidence.keys import Signer, fingerprint, holds

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
HISTORY_LINE = "history-line.jsonl"
REPORT_PREFIX = "report/"


class PackInvalid(RecoveryFailure):
    """The evidence does not hold (exit 1): a file altered, missing or added, or a bad signature."""


def _report_files(report_dir: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(report_dir.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            files[REPORT_PREFIX + path.relative_to(report_dir).as_posix()] = path.read_bytes()
    return files


def _history_line(history: Path, drill_id: str) -> bytes:
    try:
        text = history.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the history {history}: {exc.strerror or exc}") from None
    try:
        mine = [e for e in entries(text.splitlines()) if e.drill_id == drill_id]
    except HistoryFormatError as exc:
        raise UsageError(f"history {history} is unreadable: {exc}") from None
    if not mine:
        raise UsageError(f"drill {drill_id} is not in the history {history}",
                         hint="pack a report directory the project's drills wrote")
    return (mine[-1].to_line() + "\n").encode()


def pack(report_dir: Path, history: Path, out: Path, signer: Signer) -> dict[str, Any]:
    """Write the pack to ``out`` (never over an existing file; nothing left on failure)."""
    if out.exists():
        raise UsageError(f"{out} exists", hint="evidence packs are never overwritten")
    try:
        report = json.loads((report_dir / "report.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{report_dir} holds no readable report.json: {exc}") from None
    files = _report_files(report_dir)
    files[HISTORY_LINE] = _history_line(history, report["drill_id"])
    manifest = {
        "format": 1, "drill_id": report["drill_id"], "verdict": report.get("verdict"),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "drdrill_version": __version__,
        "key_fingerprint": signer.fingerprint,
        "files": {name: {"sha256": sha256_hex(data), "size": len(data)} for name, data in sorted(files.items())},
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    members = {MANIFEST: manifest_bytes, SIGNATURE: (signer.sign(manifest_bytes) + "\n").encode(), **files}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        os.link(tmp, out)  # fails if someone created ``out`` meanwhile: never overwrite
    finally:
        Path(tmp).unlink(missing_ok=True)
    return manifest


def _read_members(path: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            members: dict[str, bytes] = {}
            for info in tar:
                name = PurePosixPath(info.name)
                if not info.isfile() or name.is_absolute() or ".." in name.parts:
                    raise PackInvalid(f"{path}: member {info.name!r} is not a plain file of the pack")
                handle = tar.extractfile(info)
                members[info.name] = handle.read() if handle is not None else b""
            return members
    except FileNotFoundError:
        raise UsageError(f"{path}: no such evidence pack") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise PackInvalid(f"{path} is damaged: {exc}") from None


def verify(path: Path, public: Ed25519PublicKey) -> dict[str, Any]:
    """The pack's manifest when every file matches and the signature holds; otherwise
    :class:`PackInvalid` naming the first file (or the key) that does not."""
    members = _read_members(path)
    if MANIFEST not in members or SIGNATURE not in members:
        raise PackInvalid(f"{path}: {MANIFEST if MANIFEST not in members else SIGNATURE} is missing")
    manifest_bytes = members.pop(MANIFEST)
    signature = members.pop(SIGNATURE).decode(errors="replace").strip()
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise PackInvalid(f"{path}: {MANIFEST} is not JSON: {exc}") from None
    expected = fingerprint(public)
    if manifest.get("key_fingerprint") != expected:
        raise PackInvalid(f"{path} was signed with key {manifest.get('key_fingerprint')}, not {expected}",
                          hint="verify with the public key of the key that signed it")
    if not holds(public, manifest_bytes, signature):
        raise PackInvalid(f"{path}: the signature of {MANIFEST} does not hold for key {expected}",
                          hint="the manifest was altered, or re-signed with another key")
    listed = manifest.get("files") or {}
    for name, meta in sorted(listed.items()):
        if name not in members:
            raise PackInvalid(f"{path}: {name} is missing")
        if sha256_hex(members[name]) != meta.get("sha256"):
            raise PackInvalid(f"{path}: {name} was altered (its SHA-256 is not the manifest's)")
    unlisted = sorted(set(members) - set(listed))
    if unlisted:
        raise PackInvalid(f"{path}: {unlisted[0]} is not in the manifest")
    _history_agrees(path, members)
    return dict(manifest)


def _history_agrees(path: Path, members: dict[str, bytes]) -> None:
    """The history line vouches for the same report files the pack holds."""
    try:
        [line] = entries(members[HISTORY_LINE].decode().splitlines())
    except (KeyError, ValueError, HistoryFormatError) as exc:
        raise PackInvalid(f"{path}: {HISTORY_LINE} is missing or unreadable ({exc})") from None
    report = members.get(REPORT_PREFIX + "report.json")
    if report is None or sha256_hex(report) != line.report_sha256:
        raise PackInvalid(f"{path}: report/report.json is not the report the history recorded")
    for name, digest in sorted(line.files.items()):
        held = members.get(REPORT_PREFIX + name)
        if held is None or sha256_hex(held) != digest:
            raise PackInvalid(f"{path}: report/{name} is not the file the history recorded")
