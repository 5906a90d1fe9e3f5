"""Benchmark 2, restore throughput: bytes restored per second from the MinIO-held repository
(drdrill's restore: mirror the prefix, then Elasticsearch restores it) against the raw throughput
of copying the same bytes out of MinIO to local disk with boto3, the limit on this machine.
Alternating, medians and ratios; detects when Elasticsearch's own recovery throttle
(``indices.recovery.max_bytes_per_sec``) is what limits the restore, and shows one restore with
the throttle raised."""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from elasticsearch.helpers import streaming_bulk

from bench.common import MIB, median, mib_per_s, progress, ratio, stopwatch, table, utc_now
from bench.context import Bench
from drdrill.adapters.platform import Platform
from drdrill.backups.take import backup_snapshot
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.drill.restore import restore_copies
from drdrill.drill.snapshot_restore import restore_tenant

THROTTLE = "indices.recovery.max_bytes_per_sec"
RAISED = "100gb"  # far above any disk or loopback on this class of machine: effectively no throttle
THROTTLED_WITHIN = 0.10  # "limited by the throttle" when the ES-side rate is within 10 % of it
PAYLOAD_BYTES = 3072  # random bytes per document, base64: ~4 KiB of _source that compresses little
INDICES = 2  # two shards recover concurrently, as a tenant with several indices would
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4, "pb": 1024**5}


def parse_byte_size(text: str) -> int | None:
    """Elasticsearch's byte sizes (``40mb``, ``1.5gb``, ``0b``); units are powers of 1024."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kmgtp]?b)?\s*", text.lower())
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2) or "b"])


def recovery_throttle(platform: Platform) -> tuple[str | None, int | None, str]:
    """The effective ``indices.recovery.max_bytes_per_sec``: (text, bytes/s, where it comes from)."""
    data = platform.cluster.client.cluster.get_settings(include_defaults=True, flat_settings=True)
    for source in ("transient", "persistent", "defaults"):
        value = data.get(source, {}).get(THROTTLE)
        if value is not None:
            return str(value), parse_byte_size(str(value)), source
    return None, None, "absent"


def _documents(index: str, count: int, start: int) -> Iterator[dict[str, Any]]:
    for n in range(start, start + count):
        yield {"_index": index, "_id": str(n),
               "_source": {"seq": n, "payload": base64.b64encode(os.urandom(PAYLOAD_BYTES)).decode()}}


def _store_bytes(platform: Platform, pattern: str) -> int:
    stats = platform.cluster.client.indices.stats(index=pattern, metric="store")
    return int(stats["_all"]["primaries"]["store"]["size_in_bytes"])


def seed_bytes(platform: Platform, tenant: Tenant, target_bytes: int) -> dict[str, Any]:
    """Index incompressible documents into the tenant's indices until they hold ``target_bytes``."""
    names = [f"{tenant.index_prefix}data-{i:03d}" for i in range(INDICES)]
    for name in names:  # payload kept in _source only: the bytes are what is measured
        platform.cluster.client.indices.create(
            index=name, mappings={"dynamic": False, "properties": {"seq": {"type": "long"}}},
            # Store stats are cached for 10 s by default; the loop below must see the real size.
            settings={"number_of_shards": 1, "number_of_replicas": 0, "index.store.stats_refresh_interval": "0s"})
    batch, docs = 2000, 0
    with stopwatch() as took:
        while _store_bytes(platform, f"{tenant.index_prefix}*") < target_bytes:
            for name in names:
                for ok, info in streaming_bulk(platform.cluster.client, _documents(name, batch // INDICES, docs),
                                               chunk_size=250, max_retries=2, raise_on_error=False):
                    if not ok:
                        raise RuntimeError(f"bulk indexing failed: {info}")
            docs += batch // INDICES
            platform.cluster.client.indices.flush(index=",".join(names))
    # The platform's map of tenant → index: what the backup selects the tenant's indices by.
    platform.db.ensure_schema()
    platform.db.replace_tenant_rows(tenant.org_id, tenant.namespace, dict.fromkeys(names, docs), tenant.index_prefix)
    return {"docs": docs * INDICES, "store_bytes": _store_bytes(platform, f"{tenant.index_prefix}*"),
            "seconds": took()}


def raw_copy(platform: Platform, prefix: str, into: Path) -> tuple[int, float]:
    """Copy every object under ``prefix`` to local disk with boto3: (bytes, seconds)."""
    client, bucket = platform.store.client, platform.store.bucket
    total = 0
    with stopwatch() as took:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                target = into / item["Key"][len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, item["Key"], str(target))
                total += int(item["Size"])
    return total, took()


def restore_once(platform: Platform, tenant: Tenant, run_id: str) -> dict[str, Any]:
    """drdrill's restore of the tenant from MinIO (fetch + Elasticsearch), then clean up."""
    with stopwatch() as took:
        done = restore_tenant(platform, tenant, run_id, TenantIndices(platform.db.containers_index_names()),
                              timeout_s=1800)
    total = took()
    es_bytes = sum(s.bytes_recovered for s in done.shards)
    row = {"fetch_bytes": done.fetched_bytes, "fetch_s": done.fetch_seconds, "es_bytes": es_bytes,
           "es_s": done.restore_seconds, "total_s": total,
           "fetch_mib_s": mib_per_s(done.fetched_bytes, done.fetch_seconds),
           "es_mib_s": mib_per_s(es_bytes, done.restore_seconds),
           "end_to_end_mib_s": mib_per_s(done.fetched_bytes, total)}
    platform.cluster.delete_indices(f"{tenant.index_prefix}*")
    platform.cluster.delete_repository(done.repository)
    assert platform.repo_root is not None
    shutil.rmtree(restore_copies(platform.repo_root, run_id), ignore_errors=True)
    return row


def _raw_once(platform: Platform, tenant: Tenant, workdir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-raw-", dir=workdir) as tmp:
        nbytes, seconds = raw_copy(platform, tenant.repo_prefix, Path(tmp))
    return {"bytes": nbytes, "seconds": seconds, "mib_s": mib_per_s(nbytes, seconds)}


def measure(bench: Bench) -> dict[str, Any]:
    target_bytes = (8 if bench.options.smoke else 300) * MIB
    bench.reset()
    platform = bench.platform()
    tenant = Tenant(bench.next_tag("r"), "ns1")
    progress(f"restore: seeding {target_bytes // MIB} MiB into {tenant}")
    seeded = seed_bytes(platform, tenant, target_bytes)
    progress(f"restore: seeded {seeded['store_bytes'] / MIB:.0f} MiB in {seeded['seconds']:.1f}s; snapshot + upload")
    snap = backup_snapshot(platform, tenant, utc_now(), TenantIndices(platform.db.containers_index_names()),
                           timeout_s=1800)
    platform.cluster.delete_indices(f"{tenant.index_prefix}*")
    throttle_text, throttle_bps, throttle_source = recovery_throttle(platform)
    runs: dict[str, list[dict[str, Any]]] = {"restore": [], "raw_copy": []}
    skipped: list[dict[str, Any]] = []
    for i in range(bench.options.repeat):
        estimate = (max(r["total_s"] for r in runs["restore"]) + max(r["seconds"] for r in runs["raw_copy"])) * 1.2 \
            if runs["restore"] else None
        if i > 0 and not bench.budget.fits(estimate):
            skipped.append({"repeat": i + 1, **bench.budget.skipped(estimate)})
            continue
        for arm in (["restore", "raw_copy"] if i % 2 == 0 else ["raw_copy", "restore"]):
            progress(f"restore: {arm} #{i + 1}")
            runs[arm].append(restore_once(platform, tenant, f"bench-restore-{i}") if arm == "restore"
                             else _raw_once(platform, tenant, bench.options.workdir))
    raised = _raised_run(bench, platform, tenant, runs)
    platform.close()
    return summarise(seeded, snap.to_dict(), runs, (throttle_text, throttle_bps, throttle_source), raised, skipped)


def _raised_run(bench: Bench, platform: Platform, tenant: Tenant,
                runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One more restore with the recovery throttle raised (transient), reset afterwards."""
    estimate = max(r["total_s"] for r in runs["restore"]) * 1.2 if runs["restore"] else None
    if not bench.budget.fits(estimate):
        return bench.budget.skipped(estimate)
    progress(f"restore: once more with {THROTTLE}={RAISED}")
    settings = platform.cluster.client.cluster
    settings.put_settings(transient={THROTTLE: RAISED})
    try:
        row = restore_once(platform, tenant, "bench-restore-raised")
    finally:
        settings.put_settings(transient={THROTTLE: None})
    return {"status": "ok", "setting": RAISED, **row}


def summarise(seeded: dict[str, Any], snapshot: dict[str, Any], runs: dict[str, list[dict[str, Any]]],
              throttle: tuple[str | None, int | None, str], raised: dict[str, Any],
              skipped: list[dict[str, Any]]) -> dict[str, Any]:
    restore, raw = runs["restore"], runs["raw_copy"]
    med = {key: median([r[key] for r in restore if r[key] is not None])
           for key in ("fetch_mib_s", "es_mib_s", "end_to_end_mib_s", "fetch_s", "es_s", "total_s")}
    raw_mib_s = median([r["mib_s"] for r in raw if r["mib_s"] is not None])
    text, bps, source = throttle
    throttle_mib_s = bps / MIB if bps else None  # 0 (or absent) means not throttled
    throttled = bool(throttle_mib_s and med["es_mib_s"] and med["es_mib_s"] >= (1 - THROTTLED_WITHIN) * throttle_mib_s)
    return {
        "status": "ok" if restore and raw else "failed",
        "seeded": seeded,
        "snapshot": {k: snapshot[k] for k in ("snapshot", "size_bytes", "snapshot_seconds", "upload_objects",
                                              "upload_bytes", "upload_seconds")},
        "median": {**med, "raw_copy_mib_s": raw_mib_s, "raw_copy_s": median([r["seconds"] for r in raw])},
        "ratio_end_to_end_over_raw": ratio(med["end_to_end_mib_s"], raw_mib_s),
        "ratio_es_over_raw": ratio(med["es_mib_s"], raw_mib_s),
        "ratio_fetch_over_raw": ratio(med["fetch_mib_s"], raw_mib_s),
        "throttle": {"setting": THROTTLE, "value": text, "source": source, "mib_s": throttle_mib_s,
                     "es_over_throttle": ratio(med["es_mib_s"], throttle_mib_s), "throttled": throttled,
                     "rule": f"throttled when the ES-side rate is within {THROTTLED_WITHIN:.0%} of the throttle"},
        "raised_throttle_run": raised,
        "speedup_with_raised_throttle": ratio(raised.get("es_mib_s"), med["es_mib_s"]),
        "skipped": skipped,
        "runs": runs,
    }


def render(result: dict[str, Any]) -> str:
    med, th, raised = result["median"], result["throttle"], result["raised_throttle_run"]
    rows = [
        ["drdrill restore, end to end (fetch + ES)", med["end_to_end_mib_s"], med["total_s"],
         result["ratio_end_to_end_over_raw"]],
        ["  fetch MinIO -> fs repository", med["fetch_mib_s"], med["fetch_s"], result["ratio_fetch_over_raw"]],
        ["  Elasticsearch restore (to green)", med["es_mib_s"], med["es_s"], result["ratio_es_over_raw"]],
        ["raw copy MinIO -> local disk (boto3)", med["raw_copy_mib_s"], med["raw_copy_s"], 1.0],
    ]
    if raised.get("status") == "ok":
        rows.append([f"with {THROTTLE}={raised['setting']}: end to end", raised["end_to_end_mib_s"],
                     raised["total_s"], ratio(raised["end_to_end_mib_s"], med["raw_copy_mib_s"])])
        rows.append(["  Elasticsearch restore (to green)", raised["es_mib_s"], raised["es_s"],
                     ratio(raised["es_mib_s"], med["raw_copy_mib_s"])])
    size = result["snapshot"]["size_bytes"] / MIB
    out = table(f"2. Restore throughput ({size:.0f} MiB snapshot; medians)",
                ["what", "MiB/s", "seconds", "ratio to raw copy"], rows)
    verdict = "THROTTLED: the recovery throttle limits the restore" if th["throttled"] else "not throttle-limited"
    return out + (f"\n   {th['setting']} = {th['value']} ({th['source']}) = {th['mib_s'] or 0:.0f} MiB/s; "
                  f"ES-side rate / throttle = {th['es_over_throttle'] or 0:.2f} -> {verdict}")
