"""Long calls say how far they got while they run: a snapshot from the status API, a restore
from the recovery API (bytes and files per shard), at a steady pace."""

from __future__ import annotations

import base64
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drdrill.adapters.elasticsearch import SearchCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_snapshot_and_restore_report_their_progress(endpoints, unique):
    cluster = SearchCluster(endpoints.elasticsearch_url)
    cluster.progress_interval_s = 0.2
    index = f"progress-{unique}"
    repository = f"progress-{unique}"
    cluster.create_index(index)
    try:
        docs = ({"_index": index, "_id": str(n), "_source": {"p": base64.b64encode(os.urandom(3000)).decode()}}
                for n in range(2000))
        assert cluster.bulk_index(docs) == 2000
        cluster.refresh(index)
        assert endpoints.es_repo_root is not None
        cluster.register_fs_repository(repository, str(endpoints.es_repo_root / repository))
        snapshot_lines: list[str] = []
        info = cluster.create_snapshot(repository, "s1", [index], 300, progress=snapshot_lines.append)
        assert info.complete
        cluster.delete_indices(index)
        # The recovery throttle makes the restore last a few seconds: long enough to be watched.
        cluster.client.cluster.put_settings(transient={"indices.recovery.max_bytes_per_sec": "2mb"})
        restore_lines: list[str] = []
        summary = cluster.restore(repository, "s1", [index], 300, progress=restore_lines.append)
        assert summary["shards"]["failed"] == 0
    finally:
        cluster.client.cluster.put_settings(transient={"indices.recovery.max_bytes_per_sec": None})
        cluster.delete_indices(index)
        cluster.delete_repository(repository)
        cluster.close()
    assert restore_lines, "a restore of several seconds said nothing"
    assert all(line.startswith("restore s1: ") for line in restore_lines)
    assert any(f"{index}[0]" in line and "MiB" in line and "files" in line for line in restore_lines)
    assert all(line.startswith("snapshot s1: ") for line in snapshot_lines)


_STAMP = re.compile(r"\d\d:\d\d:\d\d [DIWEC] ")


def _screen(output: str) -> list[str]:
    """What a terminal shows for ``output``: carriage return to the line's start, ESC[K erases to
    its end, newline moves on (all the control drdrill's console uses)."""
    lines, line, col, i = [], [], 0, 0
    while i < len(output):
        if output.startswith("\x1b[K", i):
            del line[col:]
            i += 3
            continue
        char = output[i]
        if char == "\r":
            col = 0
        elif char == "\n":
            lines.append("".join(line))
            line, col = [], 0
        else:
            line[col:col + 1] = [char]
            col += 1
        i += 1
    return [*lines, "".join(line)] if line else lines


@pytest.mark.slow
def test_on_a_terminal_the_progress_line_never_garbles_the_log(session_stack, unique, tmp_path):
    """The CLI in a pseudo-terminal: a drill's live progress line (restore and snapshot progress)
    and its log lines interleave; every line the terminal shows is whole, one format."""
    org = f"p{unique}"
    feature = tmp_path / "tty.feature"
    feature.write_text(f"""Feature: On a terminal
  Scenario: One tenant's data comes back
    Given the platform holds these tenants:
      | org_id | namespace | indices | documents |
      | {org}  | a         | 2       | 3000      |
      | {org}  | b         | 2       | 3000      |
    And the nightly backup has run
    When tenant "{org}/a" loses its data
    And the snapshot of tenant "{org}/a" is restored from MinIO
    And the rows of tenant "{org}/a" are restored from the newest dump of its organisation
    And data integrity is verified
    Then every index is green with the documents its snapshot held
""")
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "drdrill", "run", str(feature), "--stack", session_stack.stack_name,
                             "--report-dir", str(tmp_path / "r"), "--project-dir", str(tmp_path)],
                            stdin=subprocess.DEVNULL, stdout=child, stderr=child, cwd=ROOT)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=600)
    os.close(main)
    output = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    assert proc.returncode == 0, output[-3000:]
    assert "\x1b[K" in output, "no live progress line was drawn: nothing to check"
    screen = _screen(output)
    logged = [line for line in screen if _STAMP.match(line)]
    assert len(logged) >= 5, screen
    for line in screen:
        # A garbled line is one that carries a second line's timestamp inside it.
        assert not _STAMP.search(line, 1), line
