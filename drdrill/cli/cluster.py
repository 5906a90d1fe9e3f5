"""`drdrill cluster up|down|status [--json]`: drdrill's own single-node Kubernetes cluster with
the platform deployed (DESIGN.md, "Live target")."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_commands(sub: argparse._SubParsersAction) -> None:
    cluster = sub.add_parser("cluster", help="a single-node Kubernetes cluster with the platform deployed")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True)
    up = cluster_sub.add_parser("up", help="build (once), start the cluster and deploy deploy/k8s into it")
    up.add_argument("--es-version", help="the platform's Elasticsearch version (default: pinned 9.x)")
    status = cluster_sub.add_parser("status", help="the cluster's processes, node, workloads and backup CronJob")
    down = cluster_sub.add_parser("down", help="stop everything `up` started and remove what it left on the host")
    for parser in (up, status, down):
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=cmd_cluster)


def _service(args: argparse.Namespace) -> Any:
    from drdrill.settings import load_paths, stack_settings_from_env
    from drdrill.targets.kubernetes.service import ClusterService

    return ClusterService(load_paths(), stack_settings_from_env(es_version=getattr(args, "es_version", None)))


def cmd_cluster(args: argparse.Namespace) -> int:
    from drdrill.host.tools import require_module

    for module in ("kubernetes", "requests"):
        require_module(module, "kubernetes", "`drdrill cluster` runs and asks a Kubernetes cluster")
    service = _service(args)
    if args.cluster_command == "up":
        summary = service.up()
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print(f"cluster up in {summary['up_seconds']:.1f}s: node {summary['node_ip']}, platform in namespace "
                  f"{summary['namespace']}")
            print(f"kubeconfig  {summary['kubeconfig']}")
            print(f"drill it    drdrill run --target live --config {summary['config']}")
            print(f"in-cluster  kubectl -n {summary['namespace']} create job --from=cronjob/drdrill-restore-test "
                  "restore-test-now")
            if "evidence_public_key" in summary:
                print(f"evidence    signed with the key whose public half is {summary['evidence_public_key']}")
        return 0
    if args.cluster_command == "status":
        status = service.status()
        if args.json:
            print(json.dumps(status, indent=2, default=str))
        else:
            print(f"cluster: {'up' if status['up'] else 'down'}  ({status['root']})")
            for name, state in status.get("processes", {}).items():
                print(f"  {'ok ' if state == 'running' else 'BAD'} {name:<24} {state}")
            for node in status.get("nodes", []):
                print(f"  node {node['name']}: {'Ready' if node['ready'] else 'NotReady'} (kubelet {node['kubelet']})")
            for name, detail in status.get("statefulsets", {}).items():
                print(f"  statefulset {name}: {detail}")
            if "api_error" in status:
                print(f"  API: {status['api_error']}")
        return 0 if status["up"] else 1
    result = service.down()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"stopped: {', '.join(result['stopped']) or 'nothing was running'} ({result['seconds']:.1f}s)")
        for leftover in result["leftovers"]:
            print(f"  left on the host: {leftover}")
    return 1 if result["leftovers"] else 0
