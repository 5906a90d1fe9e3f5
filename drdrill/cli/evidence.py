"""Commands for auditors: `drdrill evidence keygen|pack|verify` and `drdrill history`."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from drdrill.cli.options import DEFAULT_CONFIG, add_json, add_store_source, backup_store

if TYPE_CHECKING:
    from drdrill.adapters.s3 import ObjectStore
    from drdrill.settings import DrillSettings


def add_commands(sub: argparse._SubParsersAction) -> None:
    evidence = sub.add_parser("evidence", help="signed evidence packs of a drill, for an auditor")
    evidence_sub = evidence.add_subparsers(dest="evidence_command", required=True)
    keygen = evidence_sub.add_parser("keygen", help="write an Ed25519 key (KEY, mode 0600) and KEY.pub")
    keygen.add_argument("--out", required=True, metavar="KEY")
    keygen.set_defaults(handler=cmd_keygen)
    pack = evidence_sub.add_parser("pack", help="bundle a report directory, its history line and a signed "
                                   "manifest into one tar.gz")
    pack.add_argument("report_dir", metavar="REPORT_DIR")
    source = pack.add_mutually_exclusive_group(required=True)
    source.add_argument("--key-file", metavar="KEY", help="the private key (PEM)")
    source.add_argument("--key-env", metavar="VAR", help="an environment variable holding the private key (PEM)")
    pack.add_argument("--out", required=True, metavar="PACK.tar.gz")
    pack.add_argument("--history", help="the history the drill is in (default: the project's)")
    pack.add_argument("--config", help="settings file naming the project's history (default: drdrill.toml)")
    pack.set_defaults(handler=cmd_pack)
    verify = evidence_sub.add_parser("verify", help="exit 0 if every file matches and the signature holds, 1 "
                                     "naming the first file (or key) that does not")
    verify.add_argument("pack", metavar="PACK.tar.gz")
    verify.add_argument("--public-key", required=True, metavar="KEY.pub")
    add_json(verify)
    verify.set_defaults(handler=cmd_verify)
    fetch = evidence_sub.add_parser("fetch", help="download a run's signed pack from the evidence store "
                                    "([evidence] store_bucket)")
    fetch.add_argument("drill_id", metavar="DRILL_ID")
    fetch.add_argument("--config", help="settings naming the evidence store (default: drdrill.toml)")
    fetch.add_argument("--stack", help="the local stack whose MinIO holds the store (no [target] in the settings; "
                       "default: default)")
    fetch.add_argument("--out", required=True, metavar="PACK.tar.gz")
    fetch.set_defaults(handler=cmd_fetch)

    history = sub.add_parser("history", help="the drills of a history, oldest first, verifying its chain; with "
                             "[evidence] store_bucket in the settings, the runs in the evidence store, newest first")
    history.add_argument("path", nargs="?", metavar="FILE_OR_DIR", help="a history.jsonl or the directory "
                         "holding it (default: the project's)")
    history.add_argument("--config", help="settings file naming the project's history (default: drdrill.toml)")
    history.add_argument("--public-key", metavar="KEY.pub", help="also check every signature made with this key")
    history.add_argument("--stack", help="with an evidence store and no [target]: the local stack whose MinIO "
                         "holds it (default: default)")
    history.add_argument("--json", action="store_true")
    history.set_defaults(handler=cmd_history)
    add_metrics_command(sub)


def project_history(config: str | None) -> Path:
    """The project's one history: [history] path of the settings, else reports/history.jsonl."""
    from drdrill.settings import load_settings

    path = Path(config) if config else Path("drdrill.toml")
    configured = load_settings(path).history_path if config or path.exists() else None
    return configured or Path("reports") / "history.jsonl"


def cmd_keygen(args: argparse.Namespace) -> int:
    from drdrill.evidence.keys import fingerprint, generate, read_public

    private, public = generate(Path(args.out))
    print(f"wrote {private} (keep it secret) and {public}; fingerprint {fingerprint(read_public(public))}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from drdrill.errors import UsageError
    from drdrill.evidence.keys import read_signer
    from drdrill.evidence.pack import pack

    signer = read_signer(args.key_file, args.key_env)
    if signer is None:  # pragma: no cover - argparse requires one of them
        raise UsageError("give --key-file or --key-env")
    manifest = pack(Path(args.report_dir), Path(args.history) if args.history else project_history(args.config),
                    Path(args.out), signer)
    print(f"wrote {args.out}: drill {manifest['drill_id']} ({manifest['verdict']}), {len(manifest['files'])} files, "
          f"signed by {manifest['key_fingerprint']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from drdrill.evidence.keys import read_public
    from drdrill.evidence.pack import verify

    manifest = verify(Path(args.pack), read_public(args.public_key))
    if args.json:
        print(json.dumps({"pack": str(args.pack), "intact": True, "drill_id": manifest["drill_id"],
                          "verdict": manifest["verdict"], "files": len(manifest["files"]),
                          "key_fingerprint": manifest["key_fingerprint"]}, indent=2))
        return 0
    print(f"{args.pack}: intact: drill {manifest['drill_id']} ({manifest['verdict']}), {len(manifest['files'])} "
          f"files, signed by {manifest['key_fingerprint']}")
    return 0


def _store_settings(config: str | None) -> DrillSettings | None:
    """The settings, when they name an evidence store (None: the local history)."""
    from drdrill.settings import load_settings

    path = Path(config) if config else DEFAULT_CONFIG
    if not config and not path.exists():
        return None
    settings = load_settings(path)
    return settings if settings.evidence_store_bucket else None


@contextlib.contextmanager
def _evidence_store(settings: DrillSettings, stack: str | None) -> Iterator[ObjectStore]:
    """The store's bucket, read only: on the live environment of [target], else on a local stack."""
    from drdrill.core.evidence_store import environment_segment
    from drdrill.core.ownership import EvidenceBucketOnly
    from drdrill.settings import check_stack_name, load_paths, stack_settings_from_env

    bucket = settings.evidence_store_bucket
    assert bucket is not None
    if settings.target is not None and stack is None:
        from drdrill.targets.live.target import LiveTarget

        live = LiveTarget(settings.target, drill_id="history")
        try:
            base = live.platform(request_timeout_s=30).store
            yield base.for_bucket(bucket, EvidenceBucketOnly(bucket, environment_segment(settings.target.environment)))
        finally:
            live.stop()  # its port-forwards, if any
        return
    from drdrill.targets.local.stack import LocalStack
    from drdrill.targets.stack_target import platform_of

    name = check_stack_name(stack or "default", "--stack")
    base = platform_of(LocalStack(load_paths(), stack_settings_from_env(), stack_name=name).endpoints()).store
    yield base.for_bucket(bucket, EvidenceBucketOnly(bucket, f"local-{name}"))


def cmd_fetch(args: argparse.Namespace) -> int:
    from drdrill.errors import UsageError
    from drdrill.evidence.store import fetch_pack

    settings = _store_settings(args.config)
    if settings is None:
        raise UsageError(f"{args.config or DEFAULT_CONFIG} names no evidence store",
                         hint="set [evidence] store_bucket; a local report directory is packed with "
                              "`drdrill evidence pack`")
    with _evidence_store(settings, args.stack) as store:
        key = fetch_pack(store, args.drill_id, Path(args.out))
    print(f"wrote {args.out} (s3://{settings.evidence_store_bucket}/{key}); check it with "
          f"`drdrill evidence verify {args.out} --public-key KEY.pub`")
    return 0


def _store_history(settings: DrillSettings, args: argparse.Namespace) -> int:
    from drdrill.core.durations import format_duration
    from drdrill.evidence.store import list_runs

    with _evidence_store(settings, args.stack) as store:
        runs = list_runs(store)
    malformed = [r for r in runs if r.problem]
    if args.json:
        print(json.dumps({"store": f"s3://{settings.evidence_store_bucket}", "runs": [r.to_dict() for r in runs]},
                         indent=2))
        return 1 if malformed else 0

    def dur(value: float | None) -> str:
        return "-" if value is None else format_duration(value)

    print(f"{'finished':<25} {'environment':<14} {'verdict':<9} {'RTO':>9} {'exposure':>9}  {'point restored':<32} "
          "drill")
    for r in runs:
        finished = r.finished_at.isoformat(timespec="seconds").replace("+00:00", "Z") if r.finished_at else "-"
        print(f"{finished:<25} {r.environment:<14} {r.verdict:<9} {dur(r.rto_seconds):>9} "
              f"{dur(r.backup_exposure_seconds):>9}  {r.point or '-':<32} {r.drill_id}"
              + (f"  ({r.problem})" if r.problem else "" if r.has_pack else "  (no pack)"))
    print(f"{len(runs)} run(s) in s3://{settings.evidence_store_bucket}"
          + (f"; {len(malformed)} malformed" if malformed else ""))
    return 1 if malformed else 0


def cmd_history(args: argparse.Namespace) -> int:
    from drdrill.core.durations import format_duration
    from drdrill.core.history import HistoryFormatError, entries, verify_chain
    from drdrill.errors import UsageError
    from drdrill.evidence.keys import holds, read_public

    if not args.path:
        settings = _store_settings(args.config)
        if settings is not None:
            return _store_history(settings, args)
    path = Path(args.path) if args.path else project_history(args.config)
    if path.is_dir():
        path = path / "history.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the history {path}: {exc.strerror or exc}") from None
    check = None
    if args.public_key:
        public = read_public(args.public_key)

        def check(digest: str, signature: str, _fingerprint: str) -> str | None:
            return None if holds(public, digest.encode(), signature) else "the signature does not hold"
    problems = verify_chain(text.splitlines(), check_signature=check, require_signatures=bool(args.public_key))
    try:
        drills = entries(text.splitlines())
    except HistoryFormatError:
        drills = []
    if args.json:
        print(json.dumps({"history": str(path), "problems": problems,
                          "drills": [{"drill_id": e.drill_id, "finished_at": e.finished_at, "verdict": e.verdict,
                                      "signed": bool(e.signature), **e.summary} for e in drills]}, indent=2))
    else:
        first_signed = next((n for n, e in enumerate(drills) if e.signature), len(drills))
        notes = {id(e): " (unsigned: before signing began)" if n < first_signed else " (UNSIGNED after signing began)"
                 for n, e in enumerate(drills)}

        def dur(value: object) -> str:
            return format_duration(float(value)) if isinstance(value, int | float) else "-"

        print(f"{'finished':<25} {'target':<7} {'verdict':<8} {'RTO':>9} {'RPO':>9} {'exposure':>9} "
              f"{'tenants':>7} {'documents':>10}  drill")
        for e in drills:
            s = e.summary
            print(f"{e.finished_at or '-':<25} {s.get('target', '-'):<7} {e.verdict:<8} "
                  f"{dur(s.get('rto_seconds')):>9} {dur(s.get('rpo_seconds')):>9} "
                  f"{dur(s.get('backup_exposure_seconds')):>9} {s.get('tenants', '-')!s:>7} "
                  f"{s.get('documents', '-')!s:>10}  {e.drill_id}{'' if e.signature else notes[id(e)]}")
        print(f"chain of {len(drills)} drill(s): " + ("intact" if not problems else
                                                      f"ALTERED ({len(problems)} problem(s)): {problems[0]}"))
    return 1 if problems else 0


def add_metrics_command(sub: argparse._SubParsersAction) -> None:
    metrics = sub.add_parser("metrics", help="backup exposure per tenant, for monitoring between drills "
                             "(Prometheus textfile); exit 1 when a tenant is outside its RPO")
    add_store_source(metrics, default_stack=None)
    metrics.add_argument("--textfile", metavar="OUT.prom", help="write the metrics here (atomically)")
    metrics.add_argument("--history", help="the history whose newest drill to report (default: the project's)")
    add_json(metrics)
    metrics.set_defaults(handler=cmd_metrics)


def cmd_metrics(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from drdrill.backups.metrics import exposures, write_textfile
    from drdrill.core.durations import format_duration
    from drdrill.core.history import HistoryFormatError, last_entry
    from drdrill.settings import DrillSettings, load_settings

    config = Path(args.config) if args.config else DEFAULT_CONFIG
    settings = load_settings(config) if args.config or config.exists() else DrillSettings()
    store = backup_store(args, settings)
    rpo = settings.objectives.rpo_seconds
    tenants = exposures(store, datetime.now(UTC))
    history = Path(args.history) if args.history else project_history(args.config)
    try:
        last = last_entry(history.read_text(encoding="utf-8").splitlines()) if history.exists() else None
    except HistoryFormatError:
        last = None
    if args.textfile:
        write_textfile(Path(args.textfile), tenants, last, rpo)

    def age(seconds: float | None) -> str:
        return "none" if seconds is None else format_duration(seconds)

    if args.json:
        print(json.dumps({"rpo_seconds": rpo, "tenants": [
            {"tenant": t.tenant.key, "snapshot_age_seconds": t.snapshot_age_s, "snapshot_points": t.snapshot_points,
             "dump_age_seconds": t.dump_age_s, "dump_points": t.dump_points, "outside_rpo": t.outside(rpo)}
            for t in tenants]}, indent=2))
        return 1 if any(t.outside(rpo) for t in tenants) else 0

    for t in tenants:
        mark = "OUTSIDE RPO" if t.outside(rpo) else "ok"
        print(f"{t.tenant.key:<24} snapshot {age(t.snapshot_age_s):>9} ({t.snapshot_points} in 7 days)  "
              f"dump {age(t.dump_age_s):>9} ({t.dump_points} in 7 days)  {mark}")
    if not tenants:
        print("no tenant repository in the bucket")
    return 1 if any(t.outside(rpo) for t in tenants) else 0
