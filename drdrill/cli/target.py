"""`drdrill target check|cleanup|backup-now`: the live target's endpoints, leftovers and backup job."""

from __future__ import annotations

import argparse
import json
import time

from drdrill.cli.options import add_config, add_json, target_settings


def add_commands(sub: argparse._SubParsersAction) -> None:
    target = sub.add_parser("target", help="the live target: check its endpoints and what drdrill may do there")
    target_sub = target.add_subparsers(dest="target_command", required=True)
    check = target_sub.add_parser("check", help="connect to every endpoint of [target]; print versions and "
                                  "capabilities (exit 0), or name the endpoint that fails (exit 2)")
    add_config(check)
    add_json(check)
    check.set_defaults(handler=cmd_target_check)
    cleanup = target_sub.add_parser("cleanup", help="remove what killed runs of drdrill left on the environment "
                                    "(only what carries drdrill's mark); a restore test does this when it starts")
    add_config(cleanup)
    add_json(cleanup, "print what was found as JSON")
    cleanup.set_defaults(handler=cmd_target_cleanup)
    backup = target_sub.add_parser("backup-now", help="Kubernetes: run the platform's nightly backup now (a Job "
                                   "from its CronJob) and wait: a fresh recovery point, made the platform's way")
    add_config(backup)
    backup.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the Job (default 1800)")
    add_json(backup)
    backup.set_defaults(handler=cmd_target_backup_now)


def cmd_target_check(args: argparse.Namespace) -> int:
    from drdrill.errors import UsageError
    from drdrill.provision.postgres import find_pg_bindir
    from drdrill.targets.live.check import check_target
    from drdrill.targets.live.target import LiveTarget

    _path, target_table = target_settings(args)
    target = LiveTarget(target_table, drill_id="check", pg_bindir=find_pg_bindir())
    target.secrets  # noqa: B018 - read every secret first: a missing one is a usage error naming its key
    answers = check_target(target)
    if args.json:
        print(json.dumps([vars(a) for a in answers], indent=2))
    else:
        for a in answers:
            print(f"{'ok ' if a.ok else 'BAD'} {a.endpoint:<48} {a.check:<32} {a.detail}")
    failed = next((a for a in answers if not a.ok), None)
    if failed is not None:
        raise UsageError(f"{failed.endpoint}: {failed.check}: {failed.detail}",
                         hint="fix the [target] table, the credentials or the role's privileges")
    return 0


def cmd_target_cleanup(args: argparse.Namespace) -> int:
    from drdrill.drill.plan import new_drill_id
    from drdrill.provision.postgres import find_pg_bindir
    from drdrill.targets.live.target import LiveTarget

    _path, target_table = target_settings(args)
    found = LiveTarget(target_table, drill_id=new_drill_id(), pg_bindir=find_pg_bindir()).clear_earlier_runs()
    if args.json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        for what, items in (("removed", found.removed), ("left in place", found.kept),
                            ("could not remove", found.failed)):
            print("\n".join(f"{what}: {item}" for item in items) if items else f"{what}: nothing")
    return 3 if found.failed else 0


def cmd_target_backup_now(args: argparse.Namespace) -> int:
    from drdrill.adapters.kubernetes import KubeCluster
    from drdrill.errors import UsageError

    path, target_table = target_settings(args)
    ref = target_table.kubernetes if target_table else None
    if ref is None:
        raise UsageError(f"{path}: [target] names no Kubernetes cluster (kubeconfig, namespace)",
                         hint="the nightly job is run from the platform's CronJob on Kubernetes")
    kube = KubeCluster(ref.kubeconfig, ref.context)
    try:
        name = kube.run_cronjob_now(ref.namespace, ref.backup_cronjob,
                                    f"{ref.backup_cronjob}-drdrill-{time.strftime('%Y%m%d%H%M%S')}")
        started = time.monotonic()
        run = kube.wait_job(ref.namespace, name, timeout_s=args.timeout)
        logs = kube.job_logs(ref.namespace, name, tail_lines=10)
    finally:
        kube.close()
    result = {"job": name, "outcome": run.outcome, "seconds": round(time.monotonic() - started, 1),
              "reason": run.reason, "log_tail": logs}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{ref.namespace}/{name}: {run.outcome} in {result['seconds']}s" + (f" ({run.reason})" if run.reason
                                                                                 else ""))
        print("\n".join(f"  {line}" for line in logs.strip().splitlines()[-10:]))
    return 0 if run.outcome == "succeeded" else 1
