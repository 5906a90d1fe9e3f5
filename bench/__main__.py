"""``python -m bench``: run the benchmarks, write one JSON result file, print a table each.

    python -m bench [--only overhead,restore,crypto,scale,forecast,parallel,steps,floor] [--smoke] [--json PATH]
                    [--repeat N] [--budget-min M]
    python -m bench --only scale-large --budget-min 120
    python -m bench --only nodes [--nodes-docs N] --budget-min 12

1. overhead  the default full-site drill against the runbook done by hand (REST, openssl, psql)
2. restore   restore throughput from MinIO against a raw copy of the same bytes; recovery throttle
3. crypto    drdrill.adapters.crypto against ``openssl enc`` on a 1 GiB file: throughput and peak RSS
4. scale     drill cost with 1…1000 tenants and 10^4…10^7 documents, with a least-squares model
5. forecast  RTO of a 10× larger platform (data; tenants) predicted from a sample, then measured
6. parallel  one 100-tenant backup recovered with tenants restored one after another and side by side
7. steps     one tenant's restore step by step (40 tenants), as before the parallel restore and now
8. floor     the restore phase of 40 and 100 small tenants against Elasticsearch's cluster-state time
scale-large  the 1,000-tenant and 10^7-document drills (not in the default run: beyond its budget)
containers   the containers target: image builds cold and warm, the same drill on local and on
             containers side by side, and the RTO a slow object store (Toxiproxy) costs
kubernetes   drdrill's own cluster (up, down) and the same full-site drill on local and through
             Kubernetes side by side, with the traffic switch's share of the RTO
live         the restore test on a staging stack filled the platform's way (6 tenants, 120 indices),
             quiet and while the platform writes, alternating
nodes        the full-site recovery on a 1-node and a 3-node local stack (a replica per shard) at the
             same data size, alternating: RTO, restore phases and throughput, the replicas' share

Compared things run in the same run, alternating; results are medians of ``--repeat`` runs.
The whole run keeps to a time budget (default 45 minutes): each benchmark gets a share, and
points that would overrun it are reported as skipped, never estimated. One local stack serves
benchmarks 1, 2, 4, 5 and 6 and is always torn down (purged) at the end. ``--smoke`` runs tiny
sizes (for the test suite). Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    containers,
    crypto_bench,
    forecast,
    kubernetes,
    live,
    nodes,
    overhead,
    parallel,
    restore,
    scale,
    tenant_steps,
)
from bench.common import Budget, elapsed, progress, utc_now, utc_stamp, write_json
from bench.context import Bench, Options

# crypto first: before the stack loads
ORDER = ("crypto", "overhead", "restore", "scale", "forecast", "parallel", "steps", "floor")
# Only when asked for: scale-large's drills alone exceed the default budget; containers needs a
# Docker engine (and starts one).
EXTRA = ("scale-large", "containers", "kubernetes", "live", "nodes")
NEEDS_STACK = frozenset({"overhead", "restore", "scale", "forecast", "parallel", "steps", "floor", "scale-large",
                         "containers"})
SHARES = {"crypto": 0.08, "overhead": 0.11, "restore": 0.07, "scale": 0.25, "forecast": 0.27, "parallel": 0.22,
          "steps": 0.10, "floor": 0.08, "scale-large": 1.0, "containers": 1.0, "kubernetes": 1.0, "live": 1.0,
          "nodes": 1.0}
DEFAULT_BUDGET_MIN = 45.0
CRYPTO_MIB, SMOKE_CRYPTO_MIB = 1024, 32
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _crypto(bench: Bench) -> dict[str, Any]:
    size = SMOKE_CRYPTO_MIB if bench.options.smoke else CRYPTO_MIB
    return crypto_bench.run_benchmark(size, bench.options.repeat, workdir=bench.options.workdir,
                                      fits=bench.budget.fits, say=progress)


BENCHMARKS: dict[str, tuple[Callable[[Bench], dict[str, Any]], Callable[[dict[str, Any]], str]]] = {
    "crypto": (_crypto, crypto_bench.render),
    "overhead": (overhead.measure, overhead.render),
    "restore": (restore.measure, restore.render),
    "scale": (scale.measure, scale.render),
    "forecast": (forecast.measure, forecast.render),
    "parallel": (parallel.measure, parallel.render),
    "steps": (tenant_steps.measure_steps, tenant_steps.render_steps),
    "floor": (tenant_steps.measure_floor, tenant_steps.render_floor),
    "scale-large": (scale.measure_large, scale.render),
    "containers": (containers.measure, containers.render),
    "kubernetes": (kubernetes.measure, kubernetes.render),
    "live": (live.measure, live.render),
    "nodes": (nodes.measure, nodes.render),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default=",".join(ORDER), help=f"comma-separated subset of {','.join(ORDER)}")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one repeat: checks the code, not speed")
    parser.add_argument("--json", type=Path, help="result file (default bench/results/<UTC timestamp>.json)")
    parser.add_argument("--repeat", type=int, help="runs per compared arm (default 3; 1 with --smoke)")
    parser.add_argument("--budget-min", type=float, default=DEFAULT_BUDGET_MIN,
                        help=f"wall-time budget of the whole run in minutes (default {DEFAULT_BUDGET_MIN:g})")
    parser.add_argument("--nodes-docs", type=int, help="documents per index of the nodes benchmark "
                        f"({nodes.TENANTS} tenants × {nodes.INDICES} indices; default {nodes.DEFAULT_DOCS:,})")
    args = parser.parse_args(argv)
    args.only = tuple(dict.fromkeys(name.strip() for name in args.only.split(",") if name.strip()))
    unknown = [name for name in args.only if name not in ORDER + EXTRA]
    if unknown or not args.only:
        parser.error(f"--only: unknown benchmark(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {','.join(ORDER + EXTRA)}")
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 3
    if args.repeat < 1 or args.budget_min <= 0 or (args.nodes_docs is not None and args.nodes_docs < 1):
        parser.error("--repeat, --budget-min and --nodes-docs must be positive")
    return args


def machine() -> dict[str, Any]:
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        with open("/proc/meminfo") as meminfo:
            mem_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        mem_kib = None
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "mem_total_mib": mem_kib // 1024 if mem_kib else None, "load_avg_at_start": os.getloadavg(),
            "openssl": openssl}


def run(args: argparse.Namespace, workdir: Path, json_path: Path) -> int:
    chosen = [name for name in ORDER + EXTRA if name in args.only]
    budget = Budget(args.budget_min * 60, SHARES)
    bench = Bench(Options(tuple(chosen), args.smoke, args.repeat, budget.total_s, workdir, args.nodes_docs), budget)
    payload: dict[str, Any] = {
        "schema": "drdrill-bench/1", "started_at": utc_now(), "command": ["python", "-m", "bench", *sys.argv[1:]],
        "options": {"only": chosen, "smoke": args.smoke, "repeat": args.repeat, "nodes_docs": args.nodes_docs,
                    "budget_s": budget.total_s, "shares": SHARES},
        "machine": machine(), "benchmarks": {}, "budget_used_s": {},
    }
    failed = False
    try:
        for position, name in enumerate(chosen):
            share = budget.begin(name, chosen[position:])
            progress(f"== {name}: budget share {share:.0f}s ({budget.remaining_total():.0f}s left in total)")
            started = elapsed()
            try:
                if name in NEEDS_STACK:
                    bench.ensure_stack()
                result = BENCHMARKS[name][0](bench)
            except Exception as exc:  # one benchmark failing must not lose the others' results
                traceback.print_exc(file=sys.stderr)
                result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            failed = failed or result.get("status") in ("error", "failed")
            payload["benchmarks"][name] = result
            # Other stacks may share the machine: the load average says how much it was shared.
            payload["budget_used_s"][name] = {"share_s": share, "used_s": elapsed() - started,
                                              "load_avg_after": os.getloadavg()}
            write_json(json_path, payload)  # after each benchmark: a crash later keeps what was measured
    finally:
        bench.stop_stack()
    payload.update(finished_at=utc_now(), total_seconds=elapsed(), stack=bench.facts())
    write_json(json_path, payload)
    print_tables(payload)
    print(f"\nresults: {json_path}  (total {payload['total_seconds'] / 60:.1f} min)")
    return 1 if failed else 0


def print_tables(payload: dict[str, Any]) -> None:
    stack = payload.get("stack") or {}
    facts = [f"{payload['machine']['cpu_count']} CPUs", f"load {payload['machine']['load_avg_at_start'][0]:.1f}",
             *(f"{k} {v}" for k, v in (stack.get("versions") or {}).items())]
    print(f"drdrill benchmarks {payload['started_at']:%Y-%m-%d %H:%M:%SZ}: {', '.join(facts)}")
    for name in ORDER + EXTRA:
        result = payload["benchmarks"].get(name)
        if result is None:
            continue
        print()
        if result.get("status") == "error":
            print(f"{name}: ERROR {result['error']}")
            continue
        try:
            print(BENCHMARKS[name][1](result))
        except (KeyError, TypeError, ValueError) as exc:
            print(f"{name}: {result.get('status')} (no table: {type(exc).__name__}: {exc})")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the finally that stops the stack


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    json_path = args.json or RESULTS_DIR / f"{utc_stamp()}.json"
    with tempfile.TemporaryDirectory(prefix="drdrill-bench-") as tmp:
        return run(args, Path(tmp), json_path)


if __name__ == "__main__":
    sys.exit(main())
