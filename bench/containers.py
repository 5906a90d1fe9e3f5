"""Benchmark ``containers`` (``--only containers``): the containers target against the local
target, in one run.

1. images: ``drdrill images build`` cold (images and the mmdebstrap base removed first; the
   provisioned Elasticsearch, Java and Go binaries stay cached) and warm (nothing changed).
2. side by side: the same full-site drill on the bench's local stack and on a container stack,
   alternating (L C C L …): wall time and RTO per target (medians) and their ratios.
3. the object store made slow: a drill with a few MiB per tenant on containers with
   Toxiproxy's latency or bandwidth toxic on the store's path from the backup on (the restore
   reads through it), settings alternating: the RTO each cost against none, in the same run.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bench.common import median, progress, ratio, table
from bench.context import Bench
from bench.drills import DrillResult, DrillShape, run_drill
from drdrill.adapters.docker_engine import DockerEngine
from drdrill.adapters.toxiproxy import Toxic, bandwidth, latency
from drdrill.drill.session import Drill
from drdrill.provision.images import ImageBuilder
from drdrill.settings import load_paths, stack_settings_from_env
from drdrill.targets.containers.stack import ContainerStack
from drdrill.targets.containers.target import ContainersDrillTarget

SHAPE = DrillShape(3, 2, 1000)
SMOKE_SHAPE = DrillShape(1, 1, 50)
# The slow-store drills restore more data (a few MiB per tenant), so that what the store costs
# shows above the run-to-run noise of the redeployment.
SLOW_SHAPE = DrillShape(2, 1, 50_000)
SMOKE_SLOW_SHAPE = DrillShape(1, 1, 200)
# (label, toxics): latency on every reply, and the bandwidth of each connection towards the
# store's clients (Toxiproxy limits connections one by one; fetches use several at once).
STORE_SETTINGS: tuple[tuple[str, tuple[Toxic, ...]], ...] = (
    ("none", ()),
    ("latency 20 ms", (latency(20),)),
    ("latency 100 ms", (latency(100),)),
    ("bandwidth 1 MiB/s per connection", (bandwidth(1024),)),
    ("bandwidth 256 KiB/s per connection", (bandwidth(256),)),
)
SMOKE_STORE_SETTINGS = STORE_SETTINGS[:2]


def _images(engine: DockerEngine, cold: bool) -> dict[str, Any]:
    paths, settings = load_paths(), stack_settings_from_env()
    builder = ImageBuilder(engine, paths.cache_dir)
    rows: dict[str, Any] = {}
    if cold:
        for image in engine.client.images.list(name="drdrill/*"):
            for tag in image.tags:
                engine.client.images.remove(tag, force=True)
        (builder.root / "debian-bookworm-minbase.tar").unlink(missing_ok=True)
    for run in ("cold", "warm") if cold else ("warm",):
        started = time.monotonic()
        built = builder.ensure(settings.es_version, settings.minio_version)
        rows[run] = {"seconds": time.monotonic() - started,
                     "images": {k: {"built": v.built, "seconds": v.seconds} for k, v in built.items()}}
        progress(f"containers: images {run}: {rows[run]['seconds']:.1f}s")
    return rows


def _slowed(target: ContainersDrillTarget, toxics: tuple[Toxic, ...]):
    def after_backup(_drill: Drill) -> None:
        if toxics:
            target.slow_store(list(toxics))
    return after_backup


def measure(bench: Bench) -> dict[str, Any]:
    smoke = bench.options.smoke
    shape = SMOKE_SHAPE if smoke else SHAPE
    bench.ensure_stack()  # the local arm's stack, shared with the other benchmarks
    engine = DockerEngine(load_paths().state_dir, load_paths().cache_dir)
    engine.ensure()
    result: dict[str, Any] = {"status": "ok", "shape": shape.describe(), "engine": engine.info.version
                              if engine.info else None}
    stack = ContainerStack(load_paths(), stack_settings_from_env(), stack_name=f"bench-c-{uuid.uuid4().hex[:6]}",
                           engine=engine)
    try:
        result["images"] = _images(engine, cold=not smoke)
        started = time.monotonic()
        stack.up()
        result["container_stack_up_s"] = time.monotonic() - started
        target = ContainersDrillTarget(stack, owned=False)
        target.start()
        arms: dict[str, list[DrillResult]] = {"local": [], "containers": []}
        order = ["local", "containers", "containers", "local"] * bench.options.repeat
        for name in order[: 2 * bench.options.repeat]:
            drill = run_drill(bench, shape, f"{name}", target=None if name == "local" else target)
            arms[name].append(drill)
        result["side_by_side"] = {
            name: {"wall_s": median([d.wall_s for d in runs]), "rto_s": median([d.rto_s for d in runs if d.rto_s]),
                   "deploy_s": median([d.phases.get("deploy-services", 0.0) for d in runs]),
                   "restore_snapshots_s": median([d.phases.get("restore-snapshots", 0.0) for d in runs]),
                   "ok": all(d.ok for d in runs), "runs": [d.to_dict() for d in runs]}
            for name, runs in arms.items()}
        side = result["side_by_side"]
        result["ratios"] = {"wall": ratio(side["containers"]["wall_s"], side["local"]["wall_s"]),
                            "rto": ratio(side["containers"]["rto_s"], side["local"]["rto_s"])}
        slow_shape = SMOKE_SLOW_SHAPE if smoke else SLOW_SHAPE
        settings = SMOKE_STORE_SETTINGS if smoke else STORE_SETTINGS
        runs: dict[str, list[DrillResult]] = {label: [] for label, _ in settings}
        for _ in range(bench.options.repeat):
            for label, toxics in settings:
                try:
                    runs[label].append(run_drill(bench, slow_shape, f"containers, store {label}",
                                                 _slowed(target, toxics), target=target))
                finally:
                    stack.heal_store_network()
        rows: list[dict[str, Any]] = []
        for label, toxics in settings:
            done = runs[label]
            rows.append({"store": label, "toxics": [t.to_dict() for t in toxics], "ok": all(d.ok for d in done),
                         "rto_s": median([d.rto_s for d in done if d.rto_s is not None]),
                         "fetch_s": median([d.fetch_s for d in done]),
                         "restore_snapshots_s": median([d.phases.get("restore-snapshots", 0.0) for d in done]),
                         "restore_metadata_s": median([d.phases.get("restore-metadata", 0.0) for d in done]),
                         "restored_bytes": median([float(d.restored_bytes) for d in done]),
                         "problems": [p for d in done for p in d.problems][:3]})
        baseline = rows[0]["rto_s"]
        for row in rows:
            rto = row["rto_s"]
            row["rto_cost_s"] = rto - baseline if isinstance(rto, float) and isinstance(baseline, float) else None
        result["slow_store_shape"] = slow_shape.describe()
        result["slow_store"] = rows
        if not all(row["ok"] for row in rows) or not all(side[n]["ok"] for n in side):
            result["status"] = "failed"
    finally:
        stack.down(purge=True)
        engine.stop()
    return result


def render(result: dict[str, Any]) -> str:
    parts = []
    images = result.get("images") or {}
    parts.append(table("containers: image builds (drdrill images build)", ["run", "seconds", "rebuilt"],
                       [[run, row["seconds"], ", ".join(k for k, v in row["images"].items() if v["built"]) or "none"]
                        for run, row in images.items()]))
    side = result["side_by_side"]
    parts.append(table(f"containers vs local: {result['shape']} (medians)",
                       ["target", "wall s", "RTO s", "deploy s", "restore-snapshots s"],
                       [[name, row["wall_s"], row["rto_s"], row["deploy_s"], row["restore_snapshots_s"]]
                        for name, row in side.items()]
                       + [["containers/local", result["ratios"]["wall"], result["ratios"]["rto"], "", ""]]))
    parts.append(table(f"containers: the object store slowed by Toxiproxy from the backup on: "
                       f"{result['slow_store_shape']} (medians)",
                       ["store", "RTO s", "RTO cost s", "fetch s", "restore-snapshots s", "restore-metadata s", "MiB",
                        "ok"],
                       [[r["store"], r["rto_s"], r["rto_cost_s"], r["fetch_s"], r["restore_snapshots_s"],
                         r["restore_metadata_s"], (r["restored_bytes"] or 0) / 2**20, r["ok"]]
                        for r in result["slow_store"]]))
    return "\n\n".join(parts)
