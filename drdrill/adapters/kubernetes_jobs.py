"""Kubernetes: the backup CronJob and its Jobs (read, run now, wait, their pods' logs), a part
of :class:`drdrill.adapters.kubernetes.KubeCluster` kept in a module of its own for its size."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from drdrill.core.backup_job import BackupJobHealth, JobOutcome, JobRun
from drdrill.host.readiness import wait_for


def job_run(job: Any) -> JobRun:
    """A Job's outcome from its conditions (Complete / Failed), else running."""
    conditions = {c.type: c for c in (job.status.conditions or []) if c.status == "True"}
    status = job.status
    outcome: JobOutcome
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        outcome, reason = "succeeded", ""
    elif "Failed" in conditions or "FailureTarget" in conditions:
        failed = conditions.get("Failed") or conditions["FailureTarget"]
        outcome, reason = "failed", f"{failed.reason}: {failed.message or ''}".strip(": ")
    else:
        outcome, reason = "running", ""
    return JobRun(job.metadata.name, outcome, status.start_time, status.completion_time or
                  (conditions["Failed"].last_transition_time if "Failed" in conditions else None), reason)


class BackupCronJobs:
    """The CronJob calls of a cluster; the clients (``api``, ``batch()``, ``core()``) are KubeCluster's."""

    api: Any

    def batch(self) -> Any:
        raise NotImplementedError

    def core(self) -> Any:
        raise NotImplementedError

    def cronjob_health(self, namespace: str, name: str) -> BackupJobHealth:
        """The CronJob and its Jobs; a failed Job carries its pod's last log lines."""
        cron = self.batch().read_namespaced_cron_job(name, namespace)
        runs = []
        for job in self.batch().list_namespaced_job(namespace).items:
            if not any(o.kind == "CronJob" and o.name == name for o in job.metadata.owner_references or []):
                continue
            run = job_run(job)
            if run.outcome == "failed":
                with contextlib.suppress(Exception):  # the pod may be gone: the reason stays
                    run = dataclasses.replace(run, log_tail=self.job_logs(namespace, run.name, tail_lines=5))
            runs.append(run)
        return BackupJobHealth(name, cron.spec.schedule, bool(cron.spec.suspend), cron.status.last_schedule_time,
                               cron.status.last_successful_time, tuple(sorted(runs, key=lambda r: r.name)))

    def run_cronjob_now(self, namespace: str, cronjob: str, job_name: str) -> str:
        """A Job made from the CronJob's template (what `kubectl create job --from=cronjob/...`
        does), owned by the CronJob so that its history shows it."""
        cron = self.batch().read_namespaced_cron_job(cronjob, namespace)
        template = self.api.sanitize_for_serialization(cron.spec.job_template)
        body = {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": job_name, "labels": (template.get("metadata") or {}).get("labels", {}),
                             "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                             "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob,
                                                  "uid": cron.metadata.uid, "controller": False}]},
                "spec": template["spec"]}
        self.batch().create_namespaced_job(namespace, body)
        return job_name

    def wait_job(self, namespace: str, name: str, *, timeout_s: float) -> JobRun:
        def probe() -> tuple[bool, str]:
            state = job_run(self.batch().read_namespaced_job(name, namespace))
            return state.outcome != "running", state.outcome

        wait_for(f"Job {namespace}/{name}", probe, timeout_s=timeout_s, interval_s=1.0,
                 hint=f"kubectl -n {namespace} logs job/{name}")
        return job_run(self.batch().read_namespaced_job(name, namespace))

    def job_logs(self, namespace: str, job: str, *, tail_lines: int = 30) -> str:
        pods = self.core().list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        return "\n".join(self.core().read_namespaced_pod_log(p.metadata.name, namespace, tail_lines=tail_lines)
                         for p in pods)
