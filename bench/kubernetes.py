"""Benchmark ``kubernetes`` (``--only kubernetes``): drdrill's own cluster, and the same full-site
drill on the local target and through Kubernetes, in one run.

1. build: Kubernetes' binaries when cached (the Go build cache warm) — the cold build is the
   first `cluster up` on a machine and is measured by running it there (see README).
2. cluster: `drdrill cluster up` (binaries and images cached) and `drdrill cluster down`.
3. side by side: `drdrill run features/full_site_recovery.feature` on the local target and on
   the cluster's platform (`--target live`, site loss = StatefulSets and claims deleted, the
   manifests applied, rollout, restore, verify, the Service switched back), alternating
   (L K K L …): RTO and phases per target (medians), their ratio, and the switch's share of the
   Kubernetes RTO.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import median, progress, ratio, table
from bench.context import Bench
from drdrill.provision.kubernetes import ensure_kubernetes
from drdrill.settings import load_paths

ROOT = Path(__file__).resolve().parents[1]
FEATURE = ROOT / "features" / "full_site_recovery.feature"
DATA = ('\n[data]\ntenants = ["bench1/a", "bench1/b", "bench2/a"]\nindices_per_tenant = {indices}\n'
        'docs_per_index = {docs}\n')
PHASES = ("disaster", "deploy-services", "restore-metadata", "restore-snapshots", "verify", "switch-traffic")


def _drdrill(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drdrill", "-q", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _drill(target: str, config: Path, workdir: Path) -> dict[str, Any]:
    report_dir = workdir / f"report-{target}-{time.monotonic_ns()}"
    started = time.monotonic()
    result = _drdrill("run", str(FEATURE), "--target", target, "--config", str(config), "--report-dir",
                      str(report_dir), "--project-dir", str(workdir))
    wall = time.monotonic() - started
    report = json.loads((report_dir / "report.json").read_text()) if (report_dir / "report.json").exists() else {}
    if result.returncode != 0:
        return {"status": "failed", "exit": result.returncode, "verdict": report.get("verdict"),
                "tail": (result.stdout + result.stderr)[-1500:]}
    phases: dict[str, float] = {}
    for phase in report["phases"]:
        phases[phase["name"]] = phases.get(phase["name"], 0.0) + phase["duration_seconds"]
    return {"status": "ok", "wall_s": wall, "rto_s": report["achieved"]["rto_seconds"], "phases": phases}


def measure(bench: Bench) -> dict[str, Any]:
    smoke = bench.options.smoke
    repeat = bench.options.repeat
    out: dict[str, Any] = {"status": "ok"}
    started = time.monotonic()
    ensure_kubernetes(load_paths().cache_dir)
    out["build_cached_s"] = time.monotonic() - started
    if json.loads(_drdrill("cluster", "status", "--json").stdout or "{}").get("up"):
        _drdrill("cluster", "down")
    progress("kubernetes: cluster up")
    started = time.monotonic()
    up = _drdrill("cluster", "up", "--json", timeout=3600)
    out["cluster_up_s"] = time.monotonic() - started
    if up.returncode != 0:
        return {"status": "error", "error": f"cluster up failed: {up.stderr[-800:]}"}
    summary = json.loads(up.stdout)
    out["cluster_up_timings"] = summary.get("timings")
    try:
        with tempfile.TemporaryDirectory(prefix="drdrill-bench-k8s-") as tmp:
            workdir = Path(tmp)
            data = DATA.format(indices=1 if smoke else 2, docs=50 if smoke else 1000)
            local_cfg, k8s_cfg = workdir / "local.toml", workdir / "k8s.toml"
            local_cfg.write_text(data)
            k8s_cfg.write_text(Path(summary["config"]).read_text() + data)
            arms: dict[str, list[dict[str, Any]]] = {"local": [], "kubernetes": []}
            order = [("local", "live"), ("live", "local")] * repeat
            for first, second in order[:repeat]:
                for target in (first, second):
                    name = "local" if target == "local" else "kubernetes"
                    progress(f"kubernetes: full-site drill on {name} ({len(arms[name]) + 1}/{repeat})")
                    arms[name].append(_drill(target, local_cfg if target == "local" else k8s_cfg, workdir))
            failed = [r for runs in arms.values() for r in runs if r["status"] != "ok"]
            if failed:
                out.update(status="failed", failure=failed[0])
            out["drills"] = {name: _medians(runs) for name, runs in arms.items()}
            local, k8s = out["drills"]["local"], out["drills"]["kubernetes"]
            out["rto_ratio_kubernetes_to_local"] = ratio(k8s.get("rto_s"), local.get("rto_s"))
            out["switch_share_of_rto"] = ratio(k8s.get("phases", {}).get("switch-traffic"), k8s.get("rto_s"))
    finally:
        progress("kubernetes: cluster down")
        started = time.monotonic()
        down = _drdrill("cluster", "down", "--json", timeout=900)
        out["cluster_down_s"] = time.monotonic() - started
        out["leftovers_after_down"] = json.loads(down.stdout or "{}").get("leftovers")
    return out


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r["status"] == "ok"]
    return {"runs": len(ok), "wall_s": median([r["wall_s"] for r in ok]), "rto_s": median([r["rto_s"] for r in ok]),
            "phases": {p: median([r["phases"].get(p, 0.0) for r in ok]) for p in PHASES}}


def render(result: dict[str, Any]) -> str:
    if "drills" not in result:
        return f"kubernetes: {result.get('status')}: {result.get('error')}"
    local, k8s = result["drills"]["local"], result["drills"]["kubernetes"]
    rows: list[list[Any]] = [["wall (s)", local["wall_s"], k8s["wall_s"], ratio(k8s["wall_s"], local["wall_s"])],
                             ["RTO (s)", local["rto_s"], k8s["rto_s"], result["rto_ratio_kubernetes_to_local"]]]
    rows += [[f"  {p} (s)", local["phases"][p], k8s["phases"][p], ratio(k8s["phases"][p], local["phases"][p])]
             for p in PHASES]
    head = (f"binaries (cached) {result['build_cached_s']:.1f}s; cluster up {result['cluster_up_s']:.1f}s "
            f"{result.get('cluster_up_timings')}; cluster down {result['cluster_down_s']:.1f}s, leftovers "
            f"{result.get('leftovers_after_down')}; switch share of the Kubernetes RTO "
            f"{(result.get('switch_share_of_rto') or 0) * 100:.2f}%")
    return head + "\n" + table("full-site drill: local vs Kubernetes (medians)", ["", "local", "kubernetes",
                                                                                  "k8s/local"], rows)
