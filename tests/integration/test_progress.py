"""Long calls say how far they got while they run: a snapshot from the status API, a restore
from the recovery API (bytes and files per shard), at a steady pace."""

from __future__ import annotations

import base64
import os

import pytest

from drdrill.adapters.elasticsearch import SearchCluster

pytestmark = pytest.mark.integration


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
