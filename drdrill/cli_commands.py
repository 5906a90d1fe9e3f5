"""Sub-commands beyond ``stack``: provision, encrypt/decrypt, backup, backups, run, report."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def add_commands(sub: argparse._SubParsersAction) -> None:
    prov = sub.add_parser("provision", help="fetch and build the local target's services (once per machine)")
    prov.add_argument("--es-version", action="append", dest="es_versions",
                      help="Elasticsearch version(s) to fetch (default: the pinned 9.x and 8.19.x)")
    prov.add_argument("--json", action="store_true")
    prov.set_defaults(handler=cmd_provision)

    images = sub.add_parser("images", help="the containers target's images")
    images_sub = images.add_subparsers(dest="images_command", required=True)
    build = images_sub.add_parser("build", help="build drdrill's images (Debian base, PostgreSQL, Elasticsearch, "
                                  "MinIO) into the Docker engine; cached, rebuilt only when an input changes")
    build.add_argument("--es-version", action="append", dest="es_versions",
                       help="Elasticsearch version(s) (default: the pinned 9.x)")
    build.add_argument("--json", action="store_true")
    build.set_defaults(handler=cmd_images_build)

    for name, verb in (("encrypt", "encrypt"), ("decrypt", "decrypt")):
        p = sub.add_parser(name, help=f"{verb} a file in the runbook's `openssl enc -aes-256-cbc -salt` format")
        p.add_argument("--in", dest="src", required=True, metavar="FILE")
        p.add_argument("--out", dest="dst", required=True, metavar="FILE")
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
        source.add_argument("--password-file", metavar="FILE", help="file whose first line is the password")
        p.add_argument("--md", choices=("sha256", "md5"), default="sha256",
                       help="key-derivation digest (md5 = OpenSSL 1.0 legacy)")
        p.add_argument("--pbkdf2", action="store_true", help="PBKDF2 key derivation (openssl -pbkdf2)")
        p.add_argument("--iter", type=int, default=None, help="PBKDF2 iterations (default 10000; implies --pbkdf2)")
        p.set_defaults(handler=cmd_crypt, direction=name)

    seed = sub.add_parser("seed", help="write deterministic test data for tenants (indices + tenant_containers)")
    _target_args(seed)
    seed.add_argument("--tenant", action="append", dest="tenants", metavar="ORG/NS", required=True)
    seed.add_argument("--indices", type=int, default=2, help="indices per tenant")
    seed.add_argument("--docs", type=int, default=1000, help="documents per index")
    seed.set_defaults(handler=cmd_seed)

    backup = sub.add_parser("backup", help="take a backup set: snapshots per tenant and encrypted metadata dumps")
    _target_args(backup)
    backup.add_argument("--tenant", action="append", dest="tenants", metavar="ORG/NS",
                        help="only these tenants (default: every tenant in tenant_containers)")
    what = backup.add_mutually_exclusive_group()
    what.add_argument("--es-only", action="store_true", help="Elasticsearch snapshots only")
    what.add_argument("--metadata-only", action="store_true", help="metadata dumps only")
    _password_args(backup, required=False)
    backup.add_argument("--md", choices=("sha256", "md5"), default="sha256")
    backup.add_argument("--pbkdf2", action="store_true", help="PBKDF2 key derivation with 600000 iterations "
                        "(stronger; not the runbook's)")
    backup.add_argument("--iter", type=int, default=None, help="PBKDF2 iterations (implies --pbkdf2)")
    backup.add_argument("--json", action="store_true")
    backup.set_defaults(handler=cmd_backup)

    backups = sub.add_parser("backups", help="inspect and prune recovery points in the backup store")
    backups_sub = backups.add_subparsers(dest="backups_command", required=True)
    listing = backups_sub.add_parser("list", help="recovery points per tenant: age, completeness")
    _target_args(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_backups_list)
    prune = backups_sub.add_parser("prune", help="apply retention (keep N days; never the newest complete)")
    _target_args(prune)
    prune.add_argument("--keep-days", type=int, default=7)
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    prune.set_defaults(handler=cmd_backups_prune)

    _add_run_commands(sub)

    target = sub.add_parser("target", help="the live target: check its endpoints and what drdrill may do there")
    target_sub = target.add_subparsers(dest="target_command", required=True)
    check = target_sub.add_parser("check", help="connect to every endpoint of [target]; print versions and "
                                  "capabilities (exit 0), or name the endpoint that fails (exit 2)")
    check.add_argument("--config", help="settings file with a [target] table (default: drdrill.toml)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=cmd_target_check)
    cleanup = target_sub.add_parser("cleanup", help="remove what killed runs of drdrill left on the environment "
                                    "(only what carries drdrill's mark); a restore test does this when it starts")
    cleanup.add_argument("--config", help="settings file with a [target] table (default: drdrill.toml)")
    cleanup.add_argument("--json", action="store_true", help="print what was found as JSON")
    cleanup.set_defaults(handler=cmd_target_cleanup)
    backup = target_sub.add_parser("backup-now", help="Kubernetes: run the platform's nightly backup now (a Job "
                                   "from its CronJob) and wait: a fresh recovery point, made the platform's way")
    backup.add_argument("--config", help="settings file with a [target] table (default: drdrill.toml)")
    backup.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the Job (default 1800)")
    backup.add_argument("--json", action="store_true")
    backup.set_defaults(handler=cmd_target_backup_now)


def _plan_args(parser: argparse.ArgumentParser) -> None:
    from drdrill.targets import TARGETS

    parser.add_argument("features", nargs="*", metavar="FEATURE_PATH", help="feature files or directories "
                        "(default: features/ of the project, else drdrill's own runbook drills; without the "
                        "fault catalogue; --target live: the restore test)")
    parser.add_argument("--target", default="local", choices=TARGETS,
                        help="where to drill: local (processes started for the drill, the default) or live "
                        "(an existing environment described by [target] in the settings)")
    parser.add_argument("--report-dir", help="where to write the report (default: reports/<drill id>/)")
    parser.add_argument("--rto", help="recovery time objective, e.g. 30m (overrides the scenarios)")
    parser.add_argument("--rpo", help="recovery point objective, e.g. 24h (overrides the scenarios)")
    parser.add_argument("--stack", help="drill on this running local stack instead of starting a fresh one; "
                        "backups already in its store are never touched")
    parser.add_argument("--config", help="settings file (TOML; default: drdrill.toml in the project dir)")
    parser.add_argument("--project-dir", default=".", help="directory holding features/, steps/ and "
                        "drdrill.toml (default: .)")


def _add_run_commands(sub: argparse._SubParsersAction) -> None:
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
    import sys

    from drdrill.config import load_paths, stack_settings_from_env
    from drdrill.drill.plan import describe_plan, plan_text
    from drdrill.drill.runner import RunRequest, execute, plan_run
    from drdrill.report_writer import summary_text

    project = Path(args.project_dir).resolve()
    features = [Path(f) for f in args.features]  # empty: the project's runbook drills
    request = RunRequest(features, project, args.target, Path(args.report_dir) if args.report_dir else None,
                         args.rto, args.rpo, stack=args.stack, config=Path(args.config) if args.config else None)
    plan = plan_run(request, load_paths(), stack_settings_from_env())
    if args.dry_run:
        described = describe_plan(plan)
        print(json.dumps(described, indent=2) if args.json else plan_text(described), end="" if not args.json else "\n")
        return 0

    live_line = sys.stderr.isatty()
    pending = False  # a transient line is on the terminal

    def progress(message: str, transient: bool = False) -> None:
        """Plain lines for CI; on a terminal, progress updates overwrite each other."""
        nonlocal pending
        if transient and live_line:
            print(f"\r\033[Kdrdrill:   {message}", end="", file=sys.stderr, flush=True)
            pending = True
            return
        if pending:
            print(file=sys.stderr)
            pending = False
        print(f"drdrill: {'  ' if transient else ''}{message}", file=sys.stderr, flush=True)

    result = execute(plan, progress=None if args.quiet else progress)
    if result.report is not None:
        if args.json:
            print(result.report.to_json())
        else:
            print(summary_text(result.report, result.report_dir))
    return result.exit_status


def cmd_report(args: argparse.Namespace) -> int:
    from drdrill.report_writer import rerender

    written = rerender(Path(args.report_dir))
    for path in written.values():
        print(path)
    if args.pdf:
        from drdrill.adapters.browser import print_to_pdf

        print(print_to_pdf(written["report.html"], Path(args.report_dir) / "report.pdf"))
    return 0


def _target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default="default", help="local stack name (default: default)")


def _password_args(parser: argparse.ArgumentParser, *, required: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    source.add_argument("--password-file", metavar="FILE", help="file whose first line is the password")


def open_platform(args: argparse.Namespace):
    from drdrill.adapters.platform import Platform
    from drdrill.config import check_stack_name, load_paths, stack_settings_from_env
    from drdrill.provision.postgres import find_pg_bindir
    from drdrill.stack.local import LocalStack

    stack = LocalStack(load_paths(), stack_settings_from_env(), stack_name=check_stack_name(args.stack, "--stack"))
    return Platform.from_endpoints(stack.endpoints(), pg_bindir=find_pg_bindir())


def _check_layout(platform) -> None:
    """Refuse to read or prune a bucket that is not laid out as the platform's."""
    from drdrill.core import layout
    from drdrill.errors import UsageError

    problems = layout.validate_bucket_layout(o.key for o in platform.store.list(""))
    if problems:
        raise UsageError(f"bucket {platform.store.bucket} is not laid out as the platform's backups: {problems[0]}",
                         hint="expected <org>/<namespace>/ snapshot repositories and metadata/<scope>/ dumps")


def _tenants(values: list[str] | None):
    from drdrill.core.layout import Tenant

    return [Tenant.parse(v) for v in values] if values else None


def cmd_seed(args: argparse.Namespace) -> int:
    from drdrill.backups.seed import DataSpec, seed_tenant

    spec = DataSpec(indices_per_tenant=args.indices, docs_per_index=args.docs)
    tenants = _tenants(args.tenants) or []  # validated before anything is touched
    platform = open_platform(args)
    platform.db.ensure_schema()
    for tenant in tenants:
        result = seed_tenant(platform.cluster, platform.db, tenant, spec)
        print(f"{tenant}: {len(result.docs_by_index)} indices, {sum(result.docs_by_index.values())} documents")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from drdrill.adapters import crypto
    from drdrill.backups.take import backup_set
    from drdrill.core.layout import TenantIndices
    from drdrill.errors import UsageError

    password = None
    if not args.es_only:
        if not (args.password_env or args.password_file):
            raise UsageError("metadata backups are encrypted: give --password-env VAR or --password-file FILE",
                             hint="or use --es-only")
        password = crypto.read_password(args.password_env, args.password_file)
    iterations = args.iter if args.iter is not None or not args.pbkdf2 else crypto.RECOMMENDED_PBKDF2_ITERATIONS
    kdf = crypto.KdfSpec.from_options(md=args.md, pbkdf2=args.pbkdf2, iterations=iterations)
    tenants = _tenants(args.tenants)
    platform = open_platform(args)
    # The platform's own tenant → index map; an index claimed twice is refused here, before
    # anything is written.
    known = TenantIndices(platform.db.containers_index_names()).tenants
    if tenants is None:
        tenants = known
        if not tenants:
            raise UsageError("no tenants found in tenant_containers", hint="name them with --tenant ORG/NS")
    unknown = [t.key for t in tenants if t not in known]
    if unknown:
        raise UsageError(f"unknown tenant(s): {', '.join(unknown)} (not in tenant_containers)",
                         hint=f"known tenants: {', '.join(t.key for t in known) or 'none'}")
    result = backup_set(platform, tenants, datetime.now(UTC), password, snapshots=not args.metadata_only,
                        metadata=not args.es_only, kdf=kdf)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for snap in result.snapshots:
        print(f"snapshot  {snap.tenant:<24} {snap.snapshot}  {snap.state}  {len(snap.indices)} indices  "
              f"{snap.size_bytes} bytes  {snap.snapshot_seconds:.1f}s + upload {snap.upload_seconds:.1f}s")
    for dump in result.metadata:
        print(f"metadata  {dump.key}  {dump.size_bytes} bytes  sha256 {dump.sha256[:16]}…  ({dump.kdf})")
    if kdf.is_weak:
        print(f"note: {kdf.describe()} is the runbook's key derivation and is weak; consider --pbkdf2")
    return 0


def cmd_backups_list(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from drdrill.backups import catalog
    from drdrill.core import layout
    from drdrill.core.retention import format_age

    platform = open_platform(args)
    _check_layout(platform)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for tenant in catalog.discover_tenants(platform.store):
        for snap in catalog.tenant_snapshots(platform.store, tenant):
            # Dated as retention dates it: drdrill's names carry the backup slot's time.
            taken = layout.parse_snapshot_name(snap.name) or snap.started_at
            rows.append({"kind": "snapshot", "scope": tenant.key, "name": snap.name, "uuid": snap.uuid,
                         "taken_at": taken.isoformat() if taken else None,
                         "age": format_age(now - taken) if taken else "?",
                         "complete": snap.complete, "state": snap.state, "indices": list(snap.indices)})
    for entry in catalog.metadata_entries(platform.store):
        rows.append({"kind": "metadata", "scope": entry.scope, "name": entry.key,
                     "taken_at": entry.taken_at.isoformat(),
                     "age": format_age(now - entry.taken_at), "complete": entry.complete,
                     "state": "checksum recorded" if entry.has_checksum else "no checksum record",
                     "size": entry.size})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no recovery points in the backup store")
    for row in rows:
        mark = "ok " if row["complete"] else "!! "
        print(f"{mark}{row['kind']:<9} {row['scope']:<22} {row['name']:<60} {row['age']:>8}  {row['state']}")
    return 0


def cmd_backups_prune(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from drdrill.backups.prune import apply_retention, plan_prune
    from drdrill.errors import UsageError

    if args.keep_days < 1:
        raise UsageError(f"--keep-days must be at least 1, got {args.keep_days}",
                         hint="retention never deletes the newest complete backup, but keeps at least a day")
    platform = open_platform(args)
    _check_layout(platform)
    plan = plan_prune(platform, datetime.now(UTC), args.keep_days)
    for line in plan.describe():
        print(line)
    if args.dry_run:
        print(f"dry run: {len(plan.delete)} recovery point(s) would be deleted")
        return 0
    deleted = apply_retention(platform, plan)
    print(f"deleted {len(deleted)} recovery point(s)")
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from drdrill.config import DEFAULT_ES8_VERSION, DEFAULT_ES_VERSION, load_paths, stack_settings_from_env
    from drdrill.stack.local import LocalStack

    paths = load_paths()
    base = stack_settings_from_env()
    versions = args.es_versions or [DEFAULT_ES_VERSION, DEFAULT_ES8_VERSION]
    started = time.monotonic()
    report: dict[str, Any] = {"cache_dir": str(paths.cache_dir), "elasticsearch": {}}
    for version in versions:
        prov = LocalStack(paths, replace(base, es_version=version)).provision()
        report["elasticsearch"][version] = {
            "home": str(prov.es_home), "java": f"{prov.java.major} ({prov.java.source}) {prov.java.home}"}
        report.update(minio=str(prov.minio_binary), postgres=str(prov.pg_bindir),
                      service_user=prov.user.name if prov.user else None)
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"provisioned in {report['seconds']}s under {paths.cache_dir}")
        for version, info in report["elasticsearch"].items():
            print(f"  elasticsearch {version}: {info['home']} (java {info['java']})")
        print(f"  minio:    {report['minio']}")
        print(f"  postgres: {report['postgres']}")
    return 0


def cmd_images_build(args: argparse.Namespace) -> int:
    from drdrill.adapters.docker_engine import DockerEngine
    from drdrill.config import DEFAULT_ES_VERSION, StackSettings, load_paths, stack_settings_from_env
    from drdrill.provision.images import ImageBuilder

    paths = load_paths()
    settings = stack_settings_from_env()
    versions = args.es_versions or [settings.es_version or DEFAULT_ES_VERSION]
    for version in versions:
        StackSettings(es_version=version)  # a usage error for a version drdrill cannot run
    engine = DockerEngine(paths.state_dir, paths.cache_dir)
    started = time.monotonic()
    rows: dict[str, Any] = {}
    try:
        engine.ensure()
        builder = ImageBuilder(engine, paths.cache_dir)
        for version in versions:
            for service, image in builder.ensure(version, settings.minio_version).items():
                rows[image.tag] = {"service": service, "id": image.id, "built": image.built,
                                   "seconds": round(image.seconds, 1)}
    finally:
        engine.stop()  # only if this command started it
    total = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps({"images": rows, "seconds": total}, indent=2))
    else:
        for tag, row in rows.items():
            state = f"built in {row['seconds']}s" if row["built"] else "up to date"
            print(f"  {tag:<58} {row['id'][:19]}  {state}")
        print(f"images ready in {total}s")
    return 0


def cmd_crypt(args: argparse.Namespace) -> int:
    from drdrill.adapters import crypto
    from drdrill.errors import UsageError

    # As with openssl, --iter implies PBKDF2.
    kdf = crypto.KdfSpec.from_options(md=args.md, pbkdf2=args.pbkdf2, iterations=args.iter)
    password = crypto.read_password(args.password_env, args.password_file)
    src, dst = Path(args.src), Path(args.dst)
    if src.resolve() == dst.resolve():
        raise UsageError("--in and --out are the same file", hint="write to a new file")
    action = crypto.encrypt_file if args.direction == "encrypt" else crypto.decrypt_file
    action(src, dst, password, kdf)
    return 0


def cmd_target_check(args: argparse.Namespace) -> int:
    from drdrill.config import load_settings
    from drdrill.errors import UsageError
    from drdrill.provision.postgres import find_pg_bindir
    from drdrill.targets.live import LiveTarget
    from drdrill.targets.live_check import check_target

    path = Path(args.config) if args.config else Path("drdrill.toml")
    settings = load_settings(path)
    if settings.target is None:
        raise UsageError(f"{path} has no [target] table", hint="see README, \"Drill your staging environment\"")
    target = LiveTarget(settings.target, drill_id="check", pg_bindir=find_pg_bindir())
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
    from drdrill.config import load_settings
    from drdrill.drill.runner import new_drill_id
    from drdrill.errors import UsageError
    from drdrill.provision.postgres import find_pg_bindir
    from drdrill.targets.live import LiveTarget

    path = Path(args.config) if args.config else Path("drdrill.toml")
    settings = load_settings(path)
    if settings.target is None:
        raise UsageError(f"{path} has no [target] table", hint="see README, \"Drill your staging environment\"")
    found = LiveTarget(settings.target, drill_id=new_drill_id(), pg_bindir=find_pg_bindir()).clear_earlier_runs()
    if args.json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        for what, items in (("removed", found.removed), ("left in place", found.kept),
                            ("could not remove", found.failed)):
            print("\n".join(f"{what}: {item}" for item in items) if items else f"{what}: nothing")
    return 3 if found.failed else 0


def cmd_target_backup_now(args: argparse.Namespace) -> int:
    from drdrill.adapters.kubernetes import KubeCluster
    from drdrill.config import load_settings
    from drdrill.errors import UsageError

    path = Path(args.config) if args.config else Path("drdrill.toml")
    settings = load_settings(path)
    ref = settings.target.kubernetes if settings.target else None
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
