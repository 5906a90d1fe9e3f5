"""`drdrill seed`, `backup`, `backups list|prune` on a local stack, and `encrypt`/`decrypt` in the
runbook's dump format."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from drdrill.cli.options import add_json, add_store_source, backup_store


def add_commands(sub: argparse._SubParsersAction) -> None:
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
    add_store_source(listing, default_stack="default")
    add_json(listing)
    listing.set_defaults(handler=cmd_backups_list)
    prune = backups_sub.add_parser("prune", help="apply retention (keep N days; never the newest complete)")
    _target_args(prune)
    prune.add_argument("--keep-days", type=int, default=7)
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    prune.set_defaults(handler=cmd_backups_prune)


def _target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default="default", help="local stack name (default: default)")


def _password_args(parser: argparse.ArgumentParser, *, required: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    source.add_argument("--password-file", metavar="FILE", help="file whose first line is the password")


def open_platform(args: argparse.Namespace):
    from drdrill.settings import check_stack_name, load_paths, stack_settings_from_env
    from drdrill.targets.local.stack import LocalStack
    from drdrill.targets.stack_target import platform_of

    stack = LocalStack(load_paths(), stack_settings_from_env(), stack_name=check_stack_name(args.stack, "--stack"))
    return platform_of(stack.endpoints())


def _tenants(values: list[str] | None):
    from drdrill.core.layout import Tenant

    return [Tenant.parse(v) for v in values] if values else None


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

    store = backup_store(args)
    catalog.check_bucket_layout(store)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for tenant in catalog.discover_tenants(store):
        for snap in catalog.tenant_snapshots(store, tenant):
            # Dated as retention dates it: drdrill's names carry the backup slot's time.
            taken = layout.parse_snapshot_name(snap.name) or snap.started_at
            rows.append({"kind": "snapshot", "scope": tenant.key, "name": snap.name, "uuid": snap.uuid,
                         "taken_at": taken.isoformat() if taken else None,
                         "age": format_age(now - taken) if taken else "?",
                         "complete": snap.complete, "state": snap.state, "indices": list(snap.indices)})
    for entry in catalog.metadata_entries(store):
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

    from drdrill.backups import catalog
    from drdrill.backups.prune import apply_retention, plan_prune
    from drdrill.errors import UsageError

    if args.keep_days < 1:
        raise UsageError(f"--keep-days must be at least 1, got {args.keep_days}",
                         hint="retention never deletes the newest complete backup, but keeps at least a day")
    platform = open_platform(args)
    catalog.check_bucket_layout(platform.store)
    plan = plan_prune(platform, datetime.now(UTC), args.keep_days)
    for line in plan.describe():
        print(line)
    if args.dry_run:
        print(f"dry run: {len(plan.delete)} recovery point(s) would be deleted")
        return 0
    deleted = apply_retention(platform, plan)
    print(f"deleted {len(deleted)} recovery point(s)")
    return 0
