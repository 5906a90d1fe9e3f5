"""`drdrill run`, `validate` and `report`: plan, carry out and re-render a drill."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drdrill.core.report import Report


def _plan_args(parser: argparse.ArgumentParser) -> None:
    from drdrill.targets import TARGETS

    parser.add_argument("features", nargs="*", metavar="FEATURE_PATH", help="feature files or directories "
                        "(default: features/ of the project, else drdrill's own runbook drills; without the "
                        "fault catalogue; --target live: the restore test)")
    parser.add_argument("--target", default="local", choices=TARGETS,
                        help="where to drill: local (processes on loopback started for the drill, the default), "
                        "containers (the same on a Docker engine) or live (an existing environment described by "
                        "[target] in the settings; with Kubernetes there, its namespace)")
    parser.add_argument("--report-dir", help="where to write the report (default: reports/<drill id>/)")
    parser.add_argument("--rto", help="recovery time objective, e.g. 30m (overrides the scenarios)")
    parser.add_argument("--rpo", help="recovery point objective, e.g. 24h (overrides the scenarios)")
    parser.add_argument("--stack", help="drill on this running local stack instead of starting a fresh one; "
                        "backups already in its store are never touched")
    parser.add_argument("--config", help="settings file (TOML; default: drdrill.toml in the project dir)")
    parser.add_argument("--project-dir", default=".", help="directory holding features/, steps/ and "
                        "drdrill.toml (default: .)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run drill scenarios against a target and write the report")
    _plan_args(run)
    run.add_argument("--dry-run", action="store_true", help="check features and settings, print the plan, "
                     "start and touch nothing")
    run.add_argument("--json", action="store_true", help="print report.json (or the plan) instead of the summary")
    run.set_defaults(handler=cmd_run)

    validate = sub.add_parser("validate", help="the same as `run --dry-run`: check and print the plan")
    _plan_args(validate)
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(handler=cmd_run, dry_run=True)

    report = sub.add_parser("report", help="re-render report.md, report.html and junit.xml from report.json")
    report.add_argument("report_dir", metavar="DIR")
    report.add_argument("--pdf", action="store_true", help="also print report.html to report.pdf (needs Chromium)")
    report.set_defaults(handler=cmd_report)


def cmd_run(args: argparse.Namespace) -> int:
    from drdrill.cli.console import CONSOLE
    from drdrill.drill.plan import RunRequest, describe_plan, plan_run, plan_text
    from drdrill.drill.runner import execute
    from drdrill.report.writer import summary_text
    from drdrill.settings import load_paths, stack_settings_from_env

    project = Path(args.project_dir).resolve()
    features = [Path(f) for f in args.features]  # empty: the project's runbook drills
    request = RunRequest(features, project, args.target, Path(args.report_dir) if args.report_dir else None,
                         args.rto, args.rpo, stack=args.stack, config=Path(args.config) if args.config else None)
    plan = plan_run(request, load_paths(), stack_settings_from_env())
    from drdrill.drill.publish import check_publishing, publish, read_stored_runs

    check_publishing(plan.settings, plan.target_name, plan.stack, plan.signer)  # exit 2 before anything runs
    if args.dry_run:
        described = describe_plan(plan)
        print(json.dumps(described, indent=2) if args.json else plan_text(described), end="" if not args.json else "\n")
        return 0

    plan.stored_runs = read_stored_runs(plan)  # the promises that age read the evidence store
    progress = CONSOLE.say  # one format with the log, the live line cleared before other lines
    result = execute(plan, progress=None if args.quiet else progress)
    if result.report is not None:
        if args.json:
            print(result.report.to_json())
        else:
            print(summary_text(result.report, result.report_dir))
            failed = failed_steps_text(result.report)
            if failed:
                print(failed)
        if result.report_dir is not None:  # metrics and evidence store; a failure is exit 3 (PublishError)
            publish(plan, result.report, result.report_dir)
    return result.exit_status


def failed_steps_text(report: Report) -> str:
    """Which step failed, where, and why, from the report model: what a person reads first."""
    lines = [f"  {scenario.name}: line {step.line}: {step.text}\n    {step.error or 'failed'}"
             for scenario in report.scenarios for step in scenario.steps if step.status in ("failed", "undefined")]
    return ("Failed steps:\n" + "\n".join(lines[:10])) if lines else ""


def cmd_report(args: argparse.Namespace) -> int:
    from drdrill.report.writer import rerender

    written = rerender(Path(args.report_dir))
    for path in written.values():
        print(path)
    if args.pdf:
        from drdrill.adapters.browser import print_to_pdf

        print(print_to_pdf(written["report.html"], Path(args.report_dir) / "report.pdf"))
    return 0
