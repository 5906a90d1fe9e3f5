"""A small smoke run of the benchmark suite (``python -m bench --smoke``): the benchmark code
works end to end on the local stack and writes its JSON. It checks the shape of the results,
never how fast anything was: timings depend on the machine."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("overhead", "restore", "crypto", "scale", "forecast", "parallel", "steps", "floor")


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert out.exists(), done.stdout
    assert "results:" in done.stdout  # the tables were printed
    return json.loads(out.read_text())


def test_every_benchmark_has_a_section(smoke: dict) -> None:
    assert smoke["schema"] == "drdrill-bench/1"
    assert smoke["options"]["smoke"] is True
    for name in SECTIONS:
        assert smoke["benchmarks"][name]["status"] == "ok", (name, smoke["benchmarks"][name])
    assert positive(smoke["total_seconds"])


def test_overhead_medians_and_ratios(smoke: dict) -> None:
    result = smoke["benchmarks"]["overhead"]
    for arm in ("drdrill", "manual"):
        assert positive(result["median"][arm]["wall_s"]) and positive(result["median"][arm]["rto_s"])
    assert positive(result["ratio_wall"]) and positive(result["ratio_rto"])
    assert {p["phase"] for p in result["phases"]} >= {"deploy-services", "restore-metadata", "restore-snapshots",
                                                      "verify"}


def test_restore_throughput_against_raw_copy(smoke: dict) -> None:
    result = smoke["benchmarks"]["restore"]
    for key in ("end_to_end_mib_s", "es_mib_s", "fetch_mib_s", "raw_copy_mib_s"):
        assert positive(result["median"][key]), key
    assert positive(result["ratio_end_to_end_over_raw"]) and positive(result["ratio_es_over_raw"])
    assert result["throttle"]["setting"] == "indices.recovery.max_bytes_per_sec"
    assert isinstance(result["throttle"]["throttled"], bool)


def test_crypto_against_openssl(smoke: dict) -> None:
    result = smoke["benchmarks"]["crypto"]
    assert result["peak_rss_method"] in ("gnu-time", "proc-vmhwm-poll")
    for op in ("encrypt", "decrypt"):
        for tool in ("drdrill", "openssl"):
            entry = result["summary"][f"{op}/{tool}"]
            assert positive(entry["median_mib_s"]) and positive(entry["max_peak_rss_mib"])
        ratios = result["summary"][f"{op}/ratio"]
        assert positive(ratios["drdrill_over_openssl_throughput"]) and positive(ratios["drdrill_over_openssl_peak_rss"])


def test_scale_points_and_models(smoke: dict) -> None:
    for series in smoke["benchmarks"]["scale"]["series"].values():
        points = [p for p in series["points"] if p["status"] == "ok"]
        assert len(points) >= 2
        assert all(positive(p["rto_s"]) and positive(p["wall_s"]) for p in points)
        for key in ("rto_s", "harness_s"):
            model = series["models"][key]
            assert model is not None and model["n"] == len(points)
            assert all(isinstance(model[k], float) for k in ("intercept", "slope"))


def test_forecast_error(smoke: dict) -> None:
    result = smoke["benchmarks"]["forecast"]
    assert set(result["directions"]) == {"docs", "tenants"}
    for direction in result["directions"].values():
        assert positive(direction["predicted_rto_s"]) and positive(direction["actual_rto_s"])
        assert isinstance(direction["relative_error"], float) and math.isfinite(direction["relative_error"])
        assert direction["targets"][0]["dominant"] in ("fixed", "per tenant", "per byte")


def test_parallel_restore_arms(smoke: dict) -> None:
    result = smoke["benchmarks"]["parallel"]
    arms = result["arms"]
    assert arms["sequential"]["concurrency"] == 1 and arms["parallel"]["concurrency"] > 1
    for arm in arms.values():
        assert arm["n"] >= 1 and positive(arm["rto_s"]) and positive(arm["restore_s_per_tenant"])
    assert positive(result["ratio_rto"]) and positive(result["ratio_restore"])


def test_restore_steps_per_tenant_and_the_floor(smoke: dict) -> None:
    steps = smoke["benchmarks"]["steps"]
    for name, arm in steps["arms"].items():
        assert arm["n"] >= 1 and positive(arm["per_tenant_s"]), name
        assert positive(arm["cluster_states_per_tenant"]), name
        expected = {"restore", "green"} if name == "before" else {"start", "primaries", "recoveries"}
        assert expected <= set(arm["steps"]), (name, arm["steps"])
    floor = smoke["benchmarks"]["floor"]
    for size in floor["by_tenants"].values():
        assert positive(size["restore_s"]) and positive(size["cluster_state_s"]) and positive(size["ratio"])


@pytest.mark.long  # two stacks (1 and 3 Elasticsearch nodes) started and each redeployed per drill: minutes
def test_nodes_section_smoke(tmp_path: Path) -> None:
    """``--only nodes --smoke``: one tiny full-site drill on a 1-node and a 3-node stack, the
    figures present and of the right kind, the 3-node drill restoring a replica per shard."""
    out = tmp_path / "nodes.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "nodes", "--smoke", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    result = json.loads(out.read_text())["benchmarks"]["nodes"]
    assert result["status"] == "ok", result
    assert positive(result["heap_mb_per_node"])
    one, three = result["by_nodes"]["1"], result["by_nodes"]["3"]
    assert one["n"] == three["n"] == 1 and one["replicas"] == 0 and three["replicas"] == 1
    for side in (one, three):
        assert positive(side["rto_s"]) and positive(side["restore_mib_s"]) and positive(side["primaries_mib_s"])
        assert positive(side["phases"]["restore-snapshots"]) and positive(side["phases"]["restore-primaries"])
        assert positive(side["es_rss_mib"])
    # Only the 3-node cluster has replicas to rebuild after its primaries.
    assert one["phases"]["restore-replicas"] == 0 and one["replica_share_of_rto"] == 0
    assert positive(three["phases"]["restore-replicas"]) and positive(three["replica_share_of_rto"])
    assert positive(result["ratios_3_to_1"]["rto_s"])
    assert [r["nodes"] for r in result["runs"]] == [1, 3]  # alternating, 1 first in the first round
