"""The ``drdrill`` command line. Parses, loads config once, calls the package, renders.

Exit statuses (DESIGN.md): 0 passed, 1 the system under drill failed, 2 usage or
configuration error, 3 the harness could not carry out the work.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from drdrill.errors import EXIT_HARNESS, DrdrillError, UsageError

log = logging.getLogger("drdrill")


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 with usage on bad input; we want our one-line error format."""

    def error(self, message: str) -> NoReturn:
        missing = re.fullmatch(r"argument (--[a-z-]+)(?:/[^:]*)?: expected one argument", message)
        if missing:
            option = missing.group(1)
            example = _EXAMPLES.get(option, "VALUE")
            raise UsageError(f"{self.prog}: {option} needs a value, e.g. {option} {example}",
                             hint="a value starting with '-' is read as another option"
                             + ("; durations cannot be negative" if option in ("--rto", "--rpo") else ""))
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


_EXAMPLES = {"--rto": "30m", "--rpo": "24h", "--stack": "default", "--name": "default", "--config": "drdrill.toml",
             "--report-dir": "reports/quarterly", "--target": "local"}


def _stack_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="default", help="stack name (its work directory is under drdrill's "
                        "state directory)")
    parser.add_argument("--target", choices=("local", "containers"), default="local",
                        help="processes on loopback (default) or containers on a Docker engine")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="drdrill", description="Disaster-recovery drills on real Elasticsearch, MinIO "
                     "and PostgreSQL.")
    from drdrill import __version__

    parser.add_argument("--version", action="version", version=f"drdrill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    stack = sub.add_parser("stack", help="start, stop and show the local target's services")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True, parser_class=_Parser)
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

    from drdrill import cli_cluster, cli_commands, cli_evidence, cli_project

    cli_commands.add_commands(sub)
    cli_cluster.add_commands(sub)
    cli_project.add_commands(sub)
    cli_evidence.add_commands(sub)
    return parser


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)  # a run's own log file may lower the root logger's level: not this
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log every request at INFO; that is noise for a drill's progress.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Its node pool warns of every refused connection: what readiness waits poll through.
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)


def _stack(args: argparse.Namespace):
    from drdrill.config import check_stack_name, load_paths, stack_settings_from_env

    check_stack_name(args.name, "--name")
    settings = stack_settings_from_env(
        es_version=getattr(args, "es_version", None), es_heap_mb=getattr(args, "es_heap_mb", None)
    )
    if args.target == "containers":
        from drdrill.stack.containers import ContainerStack

        return ContainerStack(load_paths(), settings, stack_name=args.name)
    from drdrill.stack.local import LocalStack

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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _setup_logging(args.verbose, args.quiet)
        if args.command == "stack":
            return cmd_stack(args)
        return int(args.handler(args))
    except DrdrillError as exc:
        print(f"drdrill: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("drdrill: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_HARNESS
    except Exception as exc:
        from drdrill.drill.session import is_service_failure

        if is_service_failure(exc):
            # A service answered with an error nobody translated: say which, without a traceback.
            text = " ".join(str(exc).split())[:300]
            print(f"drdrill: error: {type(exc).__module__.split('.')[0]}: {type(exc).__name__}: {text}",
                  file=sys.stderr)
            log.debug("service error", exc_info=True)
            return EXIT_HARNESS
        log.exception("internal error (this is a bug in drdrill)")
        return EXIT_HARNESS


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
