"""After a run: its metrics to a Prometheus Pushgateway (``[restore_test] pushgateway_url``) and
its signed evidence pack with report.json to the evidence store (``[evidence] store_bucket``).

Every figure pushed is the report model's, as report.json holds it. A push or a store that
fails is the harness's failure (exit 3), logged with its cause and never ignored: monitoring
that silently stops receiving is worse than a failed Job.

Pushgateway groups (job ``drdrill_restore_test``):

* ``{environment}``: the run's own figures, replaced whole by every run (so a tenant that is gone
  does not linger): ``drdrill_restore_test_passed``, ``drdrill_restore_test_rto_seconds``,
  ``drdrill_restore_test_rto_objective_seconds``, ``drdrill_rpo_objective_seconds``,
  ``drdrill_backup_exposure_seconds{tenant}``;
* ``{environment, series="last_success"}``: ``drdrill_restore_test_last_success_timestamp_seconds``,
  pushed by passing runs only. A failed run never touches this group, so the gateway keeps the
  last success however many failures follow: what "no passing restore test in 8 days" needs.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drdrill.core.clock import from_iso, to_iso
from drdrill.core.evidence_store import PACK_NAME, REPORT_NAME, StoredRun, run_prefix
from drdrill.core.ownership import EvidenceBucketOnly
from drdrill.errors import DrdrillError, HarnessError, UsageError

if TYPE_CHECKING:
    from drdrill.adapters.s3 import ObjectStore
    from drdrill.core.report import Report
    from drdrill.drill.plan import RunPlan
    from drdrill.evidence.keys import Signer
    from drdrill.settings import DrillSettings

log = logging.getLogger(__name__)

JOB = "drdrill_restore_test"
LAST_SUCCESS_GROUP = {"series": "last_success"}
PUSH_TIMEOUT_S = 30.0
# The tenant label of a drill's run-level exposure: a drill's backup set covers every tenant at
# once (only the restore test measures each tenant's newest point).
ALL_TENANTS = "(all)"


class PublishError(HarnessError):
    """The run's metrics or evidence could not be delivered (exit 3): the drill itself is in its report."""


def environment_of(settings: DrillSettings, target: str, stack: str | None) -> str:
    """The ``environment`` label and store folder: the live environment's name, else the target
    (and the stack drilled on)."""
    if target == "live" and settings.target is not None:
        return settings.target.environment
    return target if stack is None else f"{target}-{stack}"


def check_publishing(settings: DrillSettings, target: str, stack: str | None, signer: Signer | None) -> None:
    """Before anything runs (exit 2): an evidence store needs a signing key (an unsigned pack is
    no evidence) and a store that outlives the run (not a throw-away stack's MinIO)."""
    if settings.evidence_store_bucket is None:
        return
    if signer is None:
        raise UsageError("[evidence] store_bucket is set but no signing key is",
                         hint="add key_file (or key_env) to [evidence]; `drdrill evidence keygen --out KEY` makes one")
    if target != "live" and stack is None:
        raise UsageError(f"[evidence] store_bucket on the {target} target needs a stack that outlives the run",
                         hint="drill on a running stack (--stack NAME) or an environment (--target live); a fresh "
                              "stack's MinIO is removed with it")


@dataclass(frozen=True)
class Sample:
    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


def run_samples(report: Report) -> list[Sample]:
    """The run's own group, from the report model only."""
    out = [Sample("drdrill_restore_test_passed", "1 when the run passed, else 0",
                  1.0 if report.verdict == "passed" else 0.0),
           Sample("drdrill_restore_test_rto_objective_seconds", "the RTO the run was held to",
                  report.objectives.rto_seconds),
           Sample("drdrill_rpo_objective_seconds", "the RPO the run was held to", report.objectives.rpo_seconds)]
    if report.achieved.rto_seconds is not None:  # not measured: absent, never 0
        out.append(Sample("drdrill_restore_test_rto_seconds", "achieved RTO of the run",
                          report.achieved.rto_seconds))
    exposure_help = "age of the newest complete recovery point (backup exposure)"
    if "restore_test" in report.evidence.notes:
        # The restore test measures each tenant's newest point; its tenants' rpo_seconds are
        # exactly those exposures (the worst of Elasticsearch's and PostgreSQL's).
        out += [Sample("drdrill_backup_exposure_seconds", exposure_help, t.rpo_seconds, (("tenant", t.key),))
                for t in report.tenants if t.rpo_seconds is not None]
    elif report.achieved.backup_exposure_seconds is not None:
        out.append(Sample("drdrill_backup_exposure_seconds", exposure_help, report.achieved.backup_exposure_seconds,
                          (("tenant", ALL_TENANTS),)))
    return out


def success_samples(report: Report) -> list[Sample]:
    if report.verdict != "passed" or report.finished_at is None:
        return []
    # report.json's time (to the millisecond), not the model's finer in-memory one.
    finished = from_iso(to_iso(report.finished_at))
    return [Sample("drdrill_restore_test_last_success_timestamp_seconds", "when the last passing run finished",
                   finished.timestamp())]


def push_metrics(url: str, report: Report, environment: str) -> None:
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    def push(samples: list[Sample], grouping: dict[str, str]) -> None:
        registry = CollectorRegistry()
        gauges: dict[str, Gauge] = {}
        for sample in samples:
            names = [k for k, _v in sample.labels]
            gauge = gauges.get(sample.name) or gauges.setdefault(
                sample.name, Gauge(sample.name, sample.help, names, registry=registry))
            (gauge.labels(**dict(sample.labels)) if names else gauge).set(sample.value)
        push_to_gateway(url, job=JOB, grouping_key=grouping, registry=registry, timeout=PUSH_TIMEOUT_S)

    push(run_samples(report), {"environment": environment})
    last_success = success_samples(report)
    if last_success:
        push(last_success, {"environment": environment, **LAST_SUCCESS_GROUP})


def store_evidence(base: ObjectStore, bucket: str, environment: str, report: Report, report_dir: Path,
                   history: Path, signer: Signer) -> str:
    """Sign the run's pack and put it, then its report.json, under the run's prefix; returns the
    prefix. Only the store's own bucket can be written (:class:`EvidenceBucketOnly`)."""
    from drdrill.evidence.pack import pack

    if bucket == base.bucket:  # the settings refuse it; a second look costs nothing
        raise UsageError(f"evidence store {bucket!r} is the backup bucket")
    if report.finished_at is None:
        raise PublishError(f"drill {report.drill_id} has no finish time: it cannot be filed in the evidence store")
    store = base.for_bucket(bucket, EvidenceBucketOnly(bucket, environment))
    store.ensure_bucket()  # the bucket the settings name, and no other
    prefix = run_prefix(environment, report.finished_at, report.drill_id)
    if store.exists(prefix + REPORT_NAME) or store.exists(prefix + PACK_NAME):
        raise PublishError(f"evidence store {bucket}: {prefix} already holds a run", hint="evidence is never "
                           "overwritten")
    with tempfile.TemporaryDirectory(prefix="drdrill-pack-") as tmp:
        pack_path = Path(tmp) / PACK_NAME
        pack(report_dir, history, pack_path, signer)
        tags = {"created-by": "drdrill", "drill-id": report.drill_id}
        store.upload_file(pack_path, prefix + PACK_NAME, tags=tags)
        # report.json last: a run is listed once its report is there, and then its pack is too.
        store.put_bytes(prefix + REPORT_NAME, (report_dir / REPORT_NAME).read_bytes(), tags=tags)
    return prefix


def _store_base(plan: RunPlan) -> tuple[ObjectStore, object | None]:
    """The S3 endpoint the drill used, reached again after the run: the live environment's
    (a fresh target object, stopped after: it holds port-forwards) or the running stack's."""
    if plan.target_name == "live":
        assert plan.settings.target is not None  # a live plan has one
        from drdrill.targets.live.target import LiveTarget

        live = LiveTarget(plan.settings.target, drill_id=plan.drill_id)
        return live.platform(request_timeout_s=30).store, live
    return plan.target.platform(request_timeout_s=30).store, None


def read_stored_runs(plan: RunPlan) -> list[StoredRun] | None:
    """The evidence store's runs before this one, for the promises that age (None: no store;
    []: its bucket does not exist yet). A store that cannot be read fails the run now (exit 3),
    before anything is touched: it would fail to take this run's evidence too."""
    from drdrill.errors import ServiceError
    from drdrill.evidence.store import list_runs

    bucket = plan.settings.evidence_store_bucket
    if not bucket:
        return None
    base, stopper = _store_base(plan)
    try:
        return list_runs(base.for_bucket(bucket, EvidenceBucketOnly(bucket, plan.target_name)))
    except ServiceError as exc:
        if "NoSuchBucket" in exc.message:  # the first run creates it
            return []
        raise PublishError(f"the evidence store {bucket} cannot be read: {exc.one_line()}") from None
    finally:
        if stopper is not None:
            stopper.stop()  # type: ignore[attr-defined]


def publish(plan: RunPlan, report: Report, report_dir: Path) -> list[str]:
    """Push and store what the settings ask for; what was done, one line each. Raises
    :class:`PublishError` naming every failure after trying both."""
    settings = plan.settings
    environment = environment_of(settings, plan.target_name, plan.stack)
    done: list[str] = []
    failures: list[str] = []
    if settings.pushgateway_url:
        started = time.monotonic()
        try:
            push_metrics(settings.pushgateway_url, report, environment)
            done.append(f"metrics pushed to {settings.pushgateway_url} (job {JOB}, environment {environment}) "
                        f"in {time.monotonic() - started:.2f}s")
        except Exception as exc:  # urllib's and the gateway's errors alike: the harness's failure
            log.error("pushing the metrics to %s failed: %s", settings.pushgateway_url, exc)
            failures.append(f"pushing the metrics to {settings.pushgateway_url} failed: {exc}")
    bucket = settings.evidence_store_bucket
    if bucket:
        stopper = None
        started = time.monotonic()
        try:
            if plan.signer is None:  # check_publishing refused this before the run
                raise UsageError("[evidence] store_bucket needs a signing key")
            base, stopper = _store_base(plan)
            prefix = store_evidence(base, bucket, environment, report, report_dir, plan.history, plan.signer)
            done.append(f"evidence stored in s3://{bucket}/{prefix} in {time.monotonic() - started:.2f}s")
        except (DrdrillError, OSError) as exc:
            text = exc.one_line() if isinstance(exc, DrdrillError) else str(exc)
            log.error("storing the evidence in bucket %s failed: %s", bucket, text)
            failures.append(f"storing the evidence in bucket {bucket} failed: {text}")
        finally:
            if stopper is not None:
                stopper.stop()  # type: ignore[attr-defined]
    for line in done:
        log.info("%s", line)
    if failures:
        raise PublishError("; ".join(failures), hint="the drill's report is written; its delivery is not")
    return done
