"""`drdrill stack up|status|down`: a target's services, started and stopped by hand."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_commands(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    stack = sub.add_parser("stack", help="start, stop and show the local target's services")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True, parser_class=parser_class)
    up = stack_sub.add_parser("up", help="provision (once) and start Elasticsearch, MinIO, PostgreSQL")
    _stack_args(up)
    up.add_argument("--json", action="store_true", help="print endpoints and credentials as JSON")
    up.add_argument("--es-version", help="Elasticsearch version (default: pinned 9.x; 8.19.x also works)")
    up.add_argument("--es-heap-mb", type=int, help="Elasticsearch heap in MB")
    status = stack_sub.add_parser("status", help="show the stack's services and health")
    _stack_args(status)
    status.add_argument("--json", action="store_true")
    down = stack_sub.add_parser("down", help="stop every process (remove every container) `up` started")
    _stack_args(down)
    down.add_argument("--purge", action="store_true", help="also delete the stack's work directory")
    down.add_argument("--json", action="store_true")
    stack.set_defaults(handler=cmd_stack)


def _stack_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="default", help="stack name (its work directory is under drdrill's "
                        "state directory)")
    parser.add_argument("--target", choices=("local", "containers"), default="local",
                        help="processes on loopback (default) or containers on a Docker engine")


def _stack(args: argparse.Namespace):
    from drdrill.settings import check_stack_name, load_paths, stack_settings_from_env

    check_stack_name(args.name, "--name")
    settings = stack_settings_from_env(
        es_version=getattr(args, "es_version", None), es_heap_mb=getattr(args, "es_heap_mb", None)
    )
    if args.target == "containers":
        from drdrill.targets.containers.stack import ContainerStack

        return ContainerStack(load_paths(), settings, stack_name=args.name)
    from drdrill.targets.local.stack import LocalStack

    return LocalStack(load_paths(), settings, stack_name=args.name)


def _print_status(status: dict[str, Any]) -> None:
    print(f"stack {status['stack']}: {'up' if status['up'] else 'down'}  ({status['workdir']})")
    for row in status.get("services", []):
        mark = "ok " if row["healthy"] else "BAD"
        where = f"container {row['container']}" if "container" in row else f"pid {row['pid']:<8}"
        print(f"  {mark} {row['service']:<14} {where} port {row['port']!s:<6} {row['detail']}")


def cmd_stack(args: argparse.Namespace) -> int:
    stack = _stack(args)
    if args.stack_command == "up":
        endpoints = stack.up()
        if args.json:
            print(json.dumps(endpoints.contract_json(), indent=2))
        else:
            print(f"elasticsearch  {endpoints.elasticsearch_url}  (version {endpoints.versions.get('elasticsearch')})")
            print(f"s3 (minio)     {endpoints.s3_endpoint}  bucket {endpoints.bucket}")
            print(f"postgres       {endpoints.pg_host}:{endpoints.pg_port}/{endpoints.pg_database} "
                  f"user {endpoints.pg_user}  (version {endpoints.versions.get('postgres')})")
            print(f"credentials: `drdrill stack up --json` or {stack.state_path} (mode 0600)")
        return 0
    if args.stack_command == "status":
        status = stack.status()
        print(json.dumps(status, indent=2)) if args.json else _print_status(status)
        return 0 if status["up"] else 1
    stopped = stack.down(purge=args.purge)
    if args.target == "containers":
        stack.engine.stop_own_if_idle()
    if args.json:
        print(json.dumps({"stopped": stopped}))
    else:
        print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0
