"""The RTO forecast: what a recovery of more tenants or more data would take, from what a drill
measured (pure).

    RTO(tenants, bytes) = fixed + tenants × per_tenant + bytes × seconds_per_byte
                          [+ bytes × replicas × seconds_per_replica_byte]

* **fixed** — what grows with neither: redeploying, restoring the metadata database,
  verifying (RTO minus the snapshot restore's wall time).
* **per tenant** — each tenant's round trips: its repository fetched and registered, its
  restore started, its indices waited for; at the drill's concurrency (tenants restored side
  by side share this wall time).
* **per byte** — moving the data: copying the repository out of the object store (when the
  target mirrors it) plus Elasticsearch copying the shard files, at the rate the drill
  measured or at the recovery throttle, whichever is slower. Elasticsearch's copy rate is
  measured on the data shards' file-copy time, which excludes each shard's fixed costs (that
  is what made a purely proportional forecast 47 % too high), and only on copies big enough to
  show a rate (a shard of 1 MiB, a repository of 4 MiB): a small copy's time is latency, which
  the per-tenant term already holds. With no copy that big, Elasticsearch's part moves at the
  throttle and the object store's is not counted apart.
* **replicas** — where the indices have replicas, rebuilding them from the started primaries
  (a peer recovery per copy) after the last primary started: the restore's replica part,
  per byte of each replica it rebuilt. The other terms are measured on the primaries' part.

From one drill the terms come from its phase breakdown; from drills of two or more sizes the
per-byte and per-tenant terms are fitted across them (least squares). The forecast is never
offered past 10× what was measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

FORECAST_FACTOR = 10  # how far past the measured size a forecast is offered
MEASURABLE_SHARD_BYTES = 2**20
MEASURABLE_FETCH_BYTES = 4 * 2**20

_BYTE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def byte_rate(value: str | None) -> float | None:
    """Elasticsearch's byte-size setting ("40mb", "1gb") in bytes; None for "-1" (unlimited)
    and anything else that is not a size."""
    if not value:
        return None
    text = value.strip().lower()
    for unit in sorted(_BYTE_UNITS, key=len, reverse=True):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * _BYTE_UNITS[unit]
    return None


@dataclass(frozen=True)
class RestoreSample:
    """What one drill measured of its recovery."""

    rto_s: float
    restore_wall_s: float  # the snapshot restore phase, wall time
    tenants: int
    snapshot_bytes: int
    fetch_s: float = 0.0  # copying repositories out of the object store (summed over tenants)
    fetched_bytes: int = 0
    copy_s: float = 0.0  # Elasticsearch copying data shard files (summed over shards)
    copied_bytes: int = 0
    throttle_bps: float | None = None  # indices.recovery.max_bytes_per_sec in force
    # Of restore_wall_s: after every primary had started, until every replica had (0: no replica).
    replica_s: float = 0.0
    replicas: int = 0  # replica copies of each primary (the indices' number_of_replicas)

    @property
    def primaries_wall_s(self) -> float:
        return max(0.0, self.restore_wall_s - self.replica_s)

    @property
    def seconds_per_replica_byte(self) -> float:
        copied = self.snapshot_bytes * self.replicas
        return self.replica_s / copied if copied > 0 and self.replica_s > 0 else 0.0


@dataclass(frozen=True)
class RtoModel:
    fixed_s: float
    per_tenant_s: float
    seconds_per_byte: float
    basis: str
    seconds_per_replica_byte: float = 0.0
    replicas: int = 0

    def terms(self, tenants: int, nbytes: int) -> dict[str, float]:
        terms = {"fixed": self.fixed_s, "per tenant": tenants * self.per_tenant_s,
                 "per byte": nbytes * self.seconds_per_byte}
        if self.replicas:
            terms["replicas"] = nbytes * self.replicas * self.seconds_per_replica_byte
        return terms

    def predict(self, tenants: int, nbytes: int) -> float:
        return sum(self.terms(tenants, nbytes).values())

    def dominant(self, tenants: int, nbytes: int) -> str:
        terms = self.terms(tenants, nbytes)
        return max(terms, key=lambda name: terms[name])


def _rate(nbytes: int, seconds: float) -> float | None:
    return nbytes / seconds if nbytes > 0 and seconds > 0 else None


def byte_cost(sample: RestoreSample) -> float:
    """Seconds per byte of moving the data in this sample (0 when nothing measurable moved)."""
    cost = 0.0
    fetch = _rate(sample.fetched_bytes, sample.fetch_s)
    if fetch:
        cost += 1 / fetch
    copy = _rate(sample.copied_bytes, sample.copy_s)
    if sample.throttle_bps:
        copy = min(copy, sample.throttle_bps) if copy else sample.throttle_bps
    if copy:
        cost += 1 / copy
    return cost


def model_from_breakdown(sample: RestoreSample) -> RtoModel:
    """One drill: the data term from its measured rates, the rest of the restore per tenant."""
    if sample.tenants < 1 or sample.rto_s < 0 or sample.restore_wall_s < 0:
        raise ValueError("a sample needs at least one tenant and non-negative times")
    per_byte = byte_cost(sample)
    data_s = min(sample.primaries_wall_s, sample.snapshot_bytes * per_byte)
    per_tenant = (sample.primaries_wall_s - data_s) / sample.tenants
    fixed = max(0.0, sample.rto_s - sample.restore_wall_s)
    replicas = f" ({sample.replica_s:.2f}s of it rebuilding {sample.replicas} replica(s))" if sample.replicas else ""
    return RtoModel(fixed, per_tenant, per_byte,
                    basis=f"one drill's phase breakdown: {sample.tenants} tenant(s), {sample.snapshot_bytes} bytes, "
                          f"snapshot restore {sample.restore_wall_s:.2f}s{replicas} of RTO {sample.rto_s:.2f}s",
                    seconds_per_replica_byte=sample.seconds_per_replica_byte, replicas=sample.replicas)


def fit_model(samples: list[RestoreSample]) -> RtoModel:
    """Drills of one scenario at two or more sizes: restore wall time fitted against tenants
    and bytes (least squares, through the origin); one size falls back to the breakdown."""
    if not samples:
        raise ValueError("no sample to fit")
    distinct = {(s.tenants, s.snapshot_bytes) for s in samples}
    fixed = median(max(0.0, s.rto_s - s.restore_wall_s) for s in samples)
    if len(distinct) < 2:
        base = [model_from_breakdown(s) for s in samples]
        return RtoModel(fixed, median(m.per_tenant_s for m in base), median(m.seconds_per_byte for m in base),
                        base[0].basis + (f" (median of {len(samples)})" if len(samples) > 1 else ""),
                        *_replica_term(samples))
    per_tenant, per_byte = _least_squares(samples)
    if per_tenant < 0 or per_byte < 0:  # noise larger than a term: keep the breakdown's
        return fit_model([max(samples, key=lambda s: s.snapshot_bytes)])
    sizes = ", ".join(f"{t} tenant(s)/{b} bytes" for t, b in sorted(distinct))
    return RtoModel(fixed, per_tenant, per_byte, f"fitted over {len(samples)} drills of {sizes}",
                    *_replica_term(samples))


def _replica_term(samples: list[RestoreSample]) -> tuple[float, int]:
    """(seconds per replicated byte, replicas): the replica rebuild's rate, the median over the
    drills that rebuilt replicas, and the most replicas any of them had (what is forecast)."""
    rebuilt = [s for s in samples if s.replicas and s.seconds_per_replica_byte > 0]
    if not rebuilt:
        return 0.0, 0
    return median(s.seconds_per_replica_byte for s in rebuilt), max(s.replicas for s in rebuilt)


def _least_squares(samples: list[RestoreSample]) -> tuple[float, float]:
    """wall = a·tenants + b·bytes, solved from the 2×2 normal equations. Tenants and bytes that
    grow together (one varied with the other) leave the split to the breakdown's rates."""
    xs = [(float(s.tenants), float(s.snapshot_bytes)) for s in samples]
    ys = [s.primaries_wall_s for s in samples]
    s11 = sum(t * t for t, _ in xs)
    s12 = sum(t * b for t, b in xs)
    s22 = sum(b * b for _, b in xs)
    y1 = sum(t * y for (t, _), y in zip(xs, ys, strict=True))
    y2 = sum(b * y for (_, b), y in zip(xs, ys, strict=True))
    det = s11 * s22 - s12 * s12
    if abs(det) <= 1e-9 * s11 * s22:
        per_byte = median(byte_cost(s) for s in samples)
        return (sum(y - b * per_byte for (_, b), y in zip(xs, ys, strict=True)) / sum(t for t, _ in xs)), per_byte
    return (y1 * s22 - y2 * s12) / det, (s11 * y2 - s12 * y1) / det
