"""The RTO forecast's model (drdrill.core.forecast): pure arithmetic on what drills measured."""

from __future__ import annotations

import pytest

from drdrill.core.forecast import RestoreSample, byte_cost, fit_model, model_from_breakdown

MIB = 2**20


def sample(tenants: int, mib: float, *, per_tenant: float = 0.5, fixed: float = 12.0, fetch_mibps: float = 200.0,
           copy_mibps: float = 60.0, throttle_mibps: float | None = 40.0) -> RestoreSample:
    """A drill whose restore took exactly per_tenant per tenant plus its data at the rates."""
    nbytes = int(mib * MIB)
    copy_rate = min(copy_mibps, throttle_mibps) if throttle_mibps else copy_mibps
    data_s = mib / fetch_mibps + mib / copy_rate
    wall = tenants * per_tenant + data_s
    return RestoreSample(rto_s=fixed + wall, restore_wall_s=wall, tenants=tenants, snapshot_bytes=nbytes,
                         fetch_s=mib / fetch_mibps, fetched_bytes=nbytes, copy_s=mib / copy_mibps, copied_bytes=nbytes,
                         throttle_bps=throttle_mibps * MIB if throttle_mibps else None)


def test_one_drill_splits_its_restore_into_tenants_and_data():
    model = model_from_breakdown(sample(10, 100))
    assert model.fixed_s == pytest.approx(12.0)
    assert model.per_tenant_s == pytest.approx(0.5)
    # 200 MiB/s fetch, Elasticsearch's 60 MiB/s held to the 40 MiB/s throttle.
    assert model.seconds_per_byte * MIB == pytest.approx(1 / 200 + 1 / 40)
    # Ten times the data: the data term grows, the tenants' does not.
    bigger = sample(10, 1000)
    assert model.predict(10, bigger.snapshot_bytes) == pytest.approx(bigger.rto_s)
    assert model.dominant(10, bigger.snapshot_bytes) == "per byte"
    many = sample(100, 1000)
    assert model.predict(100, many.snapshot_bytes) == pytest.approx(many.rto_s)
    assert model.dominant(1000, 10 * MIB) == "per tenant"
    assert model.dominant(1, 1) == "fixed"


def test_the_throttle_caps_the_measured_rate_and_unthrottled_uses_it():
    assert byte_cost(sample(1, 10, throttle_mibps=None)) * MIB == pytest.approx(1 / 200 + 1 / 60)
    assert byte_cost(sample(1, 10, copy_mibps=20)) * MIB == pytest.approx(1 / 200 + 1 / 20)
    nothing = RestoreSample(rto_s=5, restore_wall_s=1, tenants=1, snapshot_bytes=100)
    assert byte_cost(nothing) == 0 and model_from_breakdown(nothing).per_tenant_s == 1


def test_several_sizes_are_fitted_not_read_from_one():
    # The breakdown's rates are off (as small samples' are), the sizes tell the truth.
    skewed = [RestoreSample(rto_s=s.rto_s, restore_wall_s=s.restore_wall_s, tenants=s.tenants,
                            snapshot_bytes=s.snapshot_bytes, copy_s=s.copy_s * 3, copied_bytes=s.copied_bytes)
              for s in (sample(10, 10), sample(10, 100), sample(40, 10))]
    model = fit_model(skewed)
    assert model.per_tenant_s == pytest.approx(0.5)
    assert model.seconds_per_byte * MIB == pytest.approx(1 / 200 + 1 / 40)
    assert "fitted over 3 drills" in model.basis
    # One size, several runs: the median of their breakdowns.
    assert "median of 2" in fit_model([sample(10, 10), sample(10, 10)]).basis


def test_bad_samples_are_refused():
    with pytest.raises(ValueError):
        fit_model([])
    with pytest.raises(ValueError):
        model_from_breakdown(RestoreSample(rto_s=1, restore_wall_s=1, tenants=0, snapshot_bytes=1))


def test_the_replica_rebuild_is_a_term_of_its_own_that_grows_with_the_data():
    base = sample(10, 100)
    # The same restore, then 4 s rebuilding one replica of every byte after the last primary started.
    with_replicas = RestoreSample(**{**base.__dict__, "restore_wall_s": base.restore_wall_s + 4.0,
                                     "rto_s": base.rto_s + 4.0, "replica_s": 4.0, "replicas": 1})
    model = model_from_breakdown(with_replicas)
    assert model.per_tenant_s == pytest.approx(0.5)  # the primaries' part keeps its own terms
    assert model.seconds_per_byte * MIB == pytest.approx(1 / 200 + 1 / 40)
    assert model.terms(10, base.snapshot_bytes)["replicas"] == pytest.approx(4.0)
    assert model.terms(10, 10 * base.snapshot_bytes)["replicas"] == pytest.approx(40.0)
    assert "rebuilding 1 replica" in model.basis
    # Two replicas rebuilt in the same time: each replicated byte cost half as much.
    assert model_from_breakdown(RestoreSample(**{**with_replicas.__dict__, "replicas": 2})) \
        .seconds_per_replica_byte == pytest.approx(model.seconds_per_replica_byte / 2)
    # Without replicas there is no such term (reports keep their three terms).
    assert "replicas" not in model_from_breakdown(base).terms(10, base.snapshot_bytes)
    fitted = fit_model([with_replicas, sample(40, 10)])
    assert fitted.replicas == 1 and fitted.seconds_per_replica_byte == pytest.approx(model.seconds_per_replica_byte)
