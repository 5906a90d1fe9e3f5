"""The ``drdrill`` command line. Parses, loads config once, calls the package, renders.

Exit statuses (DESIGN.md): 0 passed, 1 the system under drill failed, 2 usage or
configuration error, 3 the harness could not carry out the work.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="drdrill", description="Disaster-recovery drills on real Elasticsearch, MinIO "
                     "and PostgreSQL.")
    from drdrill import __version__

    parser.add_argument("--version", action="version", version=f"drdrill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    from drdrill.cli import backups, cluster, evidence, project, provision, run, stack, target

    stack.add_commands(sub, _Parser)
    for noun in (provision, backups, run, target, cluster, project, evidence):
        noun.add_commands(sub)
    return parser


def _setup_logging(verbose: bool, quiet: bool) -> None:
    from drdrill.cli.console import CONSOLE, ConsoleHandler

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = ConsoleHandler(CONSOLE)  # clears the live progress line before each record
    handler.setLevel(level)  # a run's own log file may lower the root logger's level: not this
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log every request at INFO; that is noise for a drill's progress.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Its node pool warns of every refused connection: what readiness waits poll through.
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _setup_logging(args.verbose, args.quiet)
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
        from drdrill.errors import is_service_failure

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
