"""Signed evidence packs and keys: a pack verifies; flipping one byte of any file, removing a
file, adding one, or re-signing with another key makes `verify` fail naming the file or key."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from drdrill.core.history import make_line, sha256_hex
from drdrill.errors import UsageError
from drdrill.evidence import keys
from drdrill.evidence.pack import PackInvalid, pack, verify

REPORT_FILES = {"report.json": b'{"drill_id": "d1", "verdict": "passed"}\n', "report.md": b"# drill\n",
                "report.html": b"<html></html>\n", "junit.xml": b"<testsuite/>\n", "cucumber.json": b"[]\n",
                "features/full_site_recovery.feature": b"Feature: x\n", "settings.json": b"{}\n",
                "drill.log": b"log\n"}


@pytest.fixture
def drill(tmp_path) -> tuple[Path, Path, keys.Signer, Path]:
    report_dir = tmp_path / "reports" / "d1"
    for name, data in REPORT_FILES.items():
        (report_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (report_dir / name).write_bytes(data)
    history = tmp_path / "reports" / "history.jsonl"
    history.write_text(make_line(drill_id="d1", finished_at=None, verdict="passed",
                                 report_bytes=REPORT_FILES["report.json"], previous_line=None,
                                 files={n: sha256_hex(d) for n, d in REPORT_FILES.items()}) + "\n")
    key, public = keys.generate(tmp_path / "evidence.key")
    return report_dir, history, keys.read_signer(key_file=key), public


def _rewrite(src: Path, dst: Path, change) -> None:
    with tarfile.open(src, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    change(members)
    with tarfile.open(dst, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_pack_verifies_with_its_public_key(drill, tmp_path):
    report_dir, history, signer, public = drill
    out = tmp_path / "pack.tar.gz"
    manifest = pack(report_dir, history, out, signer)
    assert manifest["key_fingerprint"] == signer.fingerprint
    assert set(manifest["files"]) == {f"report/{n}" for n in REPORT_FILES} | {"history-line.jsonl"}
    assert verify(out, keys.read_public(public))["drill_id"] == "d1"
    with pytest.raises(UsageError, match="exists"):
        pack(report_dir, history, out, signer)  # never overwritten


@pytest.mark.parametrize("name", [f"report/{n}" for n in REPORT_FILES] + ["history-line.jsonl", "manifest.json"])
def test_one_flipped_byte_anywhere_is_named(drill, tmp_path, name):
    report_dir, history, signer, public = drill
    good, bad = tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz"
    pack(report_dir, history, good, signer)

    def flip(members: dict[str, bytes]) -> None:
        data = bytearray(members[name])
        data[len(data) // 2] ^= 0x01
        members[name] = bytes(data)
    _rewrite(good, bad, flip)
    with pytest.raises(PackInvalid) as failure:
        verify(bad, keys.read_public(public))
    expected = "signature" if name == "manifest.json" else name
    assert expected in failure.value.message


def test_a_removed_or_added_file_is_named(drill, tmp_path):
    report_dir, history, signer, public = drill
    good = tmp_path / "good.tar.gz"
    pack(report_dir, history, good, signer)
    _rewrite(good, tmp_path / "missing.tar.gz", lambda m: m.pop("report/junit.xml"))
    with pytest.raises(PackInvalid, match=r"report/junit\.xml is missing"):
        verify(tmp_path / "missing.tar.gz", keys.read_public(public))
    _rewrite(good, tmp_path / "added.tar.gz", lambda m: m.update({"report/extra.txt": b"x"}))
    with pytest.raises(PackInvalid, match=r"report/extra\.txt is not in the manifest"):
        verify(tmp_path / "added.tar.gz", keys.read_public(public))


def test_a_pack_re_signed_with_another_key_is_refused(drill, tmp_path):
    report_dir, history, signer, public = drill
    other_key, other_public = keys.generate(tmp_path / "other.key")
    forged = tmp_path / "forged.tar.gz"
    pack(report_dir, history, forged, keys.read_signer(key_file=other_key))
    with pytest.raises(PackInvalid, match="signed with key sha256:"):
        verify(forged, keys.read_public(public))
    # Claiming the right key's fingerprint does not help: the signature does not hold.
    _rewrite(forged, tmp_path / "claimed.tar.gz", lambda m: m.update(
        {"manifest.json": m["manifest.json"].replace(keys.read_signer(key_file=other_key).fingerprint.encode(),
                                                     signer.fingerprint.encode())}))
    with pytest.raises(PackInvalid, match="does not hold"):
        verify(tmp_path / "claimed.tar.gz", keys.read_public(public))
    assert verify(forged, keys.read_public(other_public))


def test_a_report_file_altered_before_packing_is_caught_by_the_history(drill, tmp_path):
    """Re-signing a tampered report does not help: the history line recorded every file."""
    report_dir, history, signer, public = drill
    (report_dir / "report.html").write_bytes(b"<html>all green</html>\n")
    out = tmp_path / "pack.tar.gz"
    pack(report_dir, history, out, signer)
    with pytest.raises(PackInvalid, match=r"report/report\.html is not the file the history recorded"):
        verify(out, keys.read_public(public))


def test_openssl_made_keys_work_and_keys_are_never_overwritten(tmp_path):
    key, pub = tmp_path / "os.key", tmp_path / "os.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True)
    signer = keys.read_signer(key_file=key)
    assert signer is not None and signer.fingerprint == keys.fingerprint(keys.read_public(pub))
    mine, _ = keys.generate(tmp_path / "k")
    assert mine.stat().st_mode & 0o777 == 0o600
    with pytest.raises(UsageError, match="exists"):
        keys.generate(tmp_path / "k")
    rsa = tmp_path / "rsa.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "rsa", "-out", str(rsa)], check=True, capture_output=True)
    with pytest.raises(UsageError, match="not an Ed25519 key"):
        keys.read_signer(key_file=rsa)


def test_the_key_may_come_from_the_environment(tmp_path, monkeypatch):
    key, _ = keys.generate(tmp_path / "k")
    monkeypatch.setenv("EVIDENCE_KEY", key.read_text())
    assert keys.read_signer(key_env="EVIDENCE_KEY").fingerprint == keys.read_signer(key_file=key).fingerprint
    monkeypatch.delenv("EVIDENCE_KEY")
    with pytest.raises(UsageError, match="EVIDENCE_KEY"):
        keys.read_signer(key_env="EVIDENCE_KEY")
