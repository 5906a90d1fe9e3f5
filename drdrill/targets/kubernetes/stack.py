"""The platform in a Kubernetes namespace, driven with the verbs of a drill stack (the local
and container stacks' interface), so that the same scenarios and steps run there:

* endpoints: the workloads' pods through port-forwards (followed across pod replacements);
* destroy (site loss): the StatefulSets and their PersistentVolumeClaims deleted;
* redeploy (runbook steps 1-2): ``kubectl apply --server-side -k`` of the platform's manifests,
  then the StatefulSets' rollout. While Elasticsearch is being restored its Service is held
  away from it (a selector key no pod has); :meth:`switch_traffic` (step 6) gives the Service
  back to the restored workload and probes through the Service itself.

Never owned: drdrill does not start or stop the cluster or its namespace here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from drdrill.adapters.kubernetes import DRILL_NAMESPACE_LABEL, KubeCluster
from drdrill.adapters.platform import Endpoints
from drdrill.errors import HarnessError, UsageError
from drdrill.settings import StackSettings
from drdrill.settings.live import LiveSecrets, LiveTargetSettings
from drdrill.targets.base import DiskUsage

log = logging.getLogger(__name__)

# The selector key that holds a Service away from every pod while its workload is restored.
TRAFFIC_HOLD_KEY = "drdrill.io/traffic"
SWITCH_FIELD_MANAGER = "drdrill-traffic-switch"
# drdrill's service names -> the workload (StatefulSet, Service and pod label app=) in the namespace
WORKLOADS = {"elasticsearch": "elasticsearch", "postgres": "postgres", "minio": "minio"}
PORTS = {"elasticsearch": 9200, "postgres": 5432, "minio": 9000}


class KubernetesStack:
    """No I/O in the constructor."""

    def __init__(self, settings: LiveTargetSettings, stack_settings: StackSettings, *, manifests: Path) -> None:
        if settings.kubernetes is None:
            raise UsageError("a Kubernetes stack needs kubeconfig and namespace in [target]")
        self.target, self.settings, self.manifests = settings, stack_settings, manifests
        self.ref = settings.kubernetes
        self.namespace = self.ref.namespace
        self.stack_name = f"kubernetes:{self.namespace}"
        self.kube = KubeCluster(self.ref.kubeconfig, self.ref.context)
        self._forwards = contextlib.ExitStack()
        self._ports: dict[str, int] = {}
        self._secrets: LiveSecrets | None = None
        self.traffic_held = False
        self.applied: list[str] = []
        # What each site loss deleted (a StatefulSet's own pods and claims, by name and uid).
        self.lost: list[dict[str, Any]] = []
        # A fault's changes to what the next recovery applies (kustomize images and patches).
        self.deploy_changes: dict[str, list[dict[str, Any]]] = {"images": [], "patches": []}

    # --- reaching the services -------------------------------------------------------------

    def _port(self, service: str) -> int:
        if service not in self._ports:
            # Any ready pod of the StatefulSet's own (chosen per connection): with several
            # Elasticsearch nodes, whichever answers, as the Service would pick one.
            self._ports[service] = self._forwards.enter_context(self.kube.port_forward(
                self.namespace, f"statefulset/{WORKLOADS[service]}", PORTS[service], f"{service} pods"))
        return self._ports[service]

    def up(self) -> Endpoints:
        return self.endpoints()

    def endpoints(self) -> Endpoints:
        from drdrill.adapters.postgres import PgConn

        if self._secrets is None:
            self._secrets = LiveSecrets.read(self.target)
        secret = self._secrets
        conn = PgConn.from_dsn(secret.postgres_dsn)
        pg_port = self._port("postgres")
        # The DSN's role owns es_metadata and may recreate it: the drill's admin too.
        return Endpoints(
            elasticsearch_url=f"http://127.0.0.1:{self._port('elasticsearch')}",
            s3_endpoint=f"http://127.0.0.1:{self._port('minio')}", s3_access_key=secret.s3_access_key,
            s3_secret_key=secret.s3_secret_key, bucket=self.target.s3_bucket, pg_host="127.0.0.1", pg_port=pg_port,
            pg_database=conn.database, pg_user=conn.user, pg_password=conn.password, pg_admin_user=conn.user,
            pg_admin_password=conn.password, es_repo_root=self.target.fs_repository_dir)

    def check_drill_environment(self) -> None:
        """Destruction only in a namespace labelled as a drill environment."""
        labels = self.kube.namespace_labels(self.namespace)
        if labels.get(DRILL_NAMESPACE_LABEL) != "true":
            raise UsageError(f"namespace {self.namespace} is not labelled {DRILL_NAMESPACE_LABEL}=true: refusing "
                             "to destroy anything in it",
                             hint=f"kubectl label namespace {self.namespace} {DRILL_NAMESPACE_LABEL}=true")

    # --- disaster and recovery -------------------------------------------------------------

    def destroy(self, services: list[str]) -> list[str]:
        """Site loss: each service's StatefulSet (its pods with it) and PersistentVolumeClaims."""
        self.check_drill_environment()
        for service in services:
            if service == "minio":
                raise HarnessError("MinIO holds the backups: a drill never destroys it")
            parts = self.kube.delete_statefulset(self.namespace, WORKLOADS[service], with_claims=True, timeout_s=120)
            self.lost.append({"statefulset": WORKLOADS[service], "uid": parts.uid if parts else None,
                              "pods": list(parts.pods) if parts else [], "claims": list(parts.claims) if parts else []})
        return list(services)

    def redeploy(self, services: list[str], *, wipe: bool = True, es_version: str | None = None) -> Endpoints:
        """Runbook steps 1-2: apply the platform's manifests, wait for the StatefulSets. While
        Elasticsearch is restored, its Service stays held away from the new pod."""
        if es_version not in (None, self.settings.es_version):
            raise HarnessError("another Elasticsearch version is deployed by the platform's manifests on Kubernetes",
                               hint="run the upgrade drill on the local or containers target")
        if not wipe:
            raise HarnessError("restarting a service on its data is not a Kubernetes drill step")
        if "elasticsearch" in services:
            self.hold_traffic("elasticsearch")
        started = time.monotonic()
        with self._what_to_apply() as manifests:
            self.applied = self.kube.apply(manifests)
        log.info("applied %d objects from %s in %.1fs", len(self.applied), self.manifests, time.monotonic() - started)
        self.kube.wait_statefulsets(self.namespace, [WORKLOADS[s] for s in services], timeout_s=600)
        return self.endpoints()

    @contextlib.contextmanager
    def _what_to_apply(self) -> Iterator[Path]:
        """The platform's manifests, or (with a fault's changes) an overlay on them."""
        if not any(self.deploy_changes.values()):
            yield self.manifests
            return
        with tempfile.TemporaryDirectory(prefix="drdrill-overlay-") as tmp:
            overlay = Path(tmp)
            (overlay / "kustomization.yaml").write_text(json.dumps({
                "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                "resources": [os.path.relpath(self.manifests.resolve(), overlay)], **self.deploy_changes}, indent=2))
            yield overlay

    def change_next_deploy(self, *, images: Sequence[dict[str, Any]] = (),
                           patches: Sequence[dict[str, Any]] = ()) -> None:
        """A fault: the next recovery applies the manifests with these kustomize changes."""
        self.deploy_changes["images"] += list(images)
        self.deploy_changes["patches"] += list(patches)

    def clear_deploy_changes(self) -> bool:
        changed = any(self.deploy_changes.values())
        self.deploy_changes = {"images": [], "patches": []}
        return changed

    def hold_traffic(self, service: str) -> None:
        self.kube.patch_service_selector(self.namespace, WORKLOADS[service], {TRAFFIC_HOLD_KEY: "held"},
                                         field_manager=SWITCH_FIELD_MANAGER)
        self.traffic_held = True
        # Held means no client reaches the workload: seen, not assumed.
        self.kube.wait_service_endpoints(self.namespace, WORKLOADS[service], timeout_s=60, empty=True)

    def switch_traffic(self, service: str) -> dict[str, Any]:
        """Step 6: the Service selects the restored workload again; returns what the switch saw."""
        started = time.monotonic()
        self.kube.patch_service_selector(self.namespace, WORKLOADS[service], {TRAFFIC_HOLD_KEY: None},
                                         field_manager=SWITCH_FIELD_MANAGER)
        self.traffic_held = False
        endpoints = self.kube.wait_service_endpoints(self.namespace, WORKLOADS[service], timeout_s=120)
        return {"service": WORKLOADS[service], "endpoints": endpoints,
                "seconds_to_endpoints": round(time.monotonic() - started, 3)}

    def probe_through_service(self, service: str, path: str) -> str:
        """A GET through the Service itself (the API server's service proxy), as a client would."""
        return self.kube.service_proxy_get(self.namespace, WORKLOADS[service], PORTS[service], path)

    def current_image(self, service: str) -> str:
        images = self.kube.workload_images(self.namespace).get(f"statefulset/{WORKLOADS[service]}")
        if not images:
            raise HarnessError(f"no StatefulSet {WORKLOADS[service]} in namespace {self.namespace} to read its image")
        return images[0]

    # --- what a drill stack also offers ----------------------------------------------------

    def process_state(self, service: str) -> str:
        return self.kube.workload_state(self.namespace, WORKLOADS[service])

    def data_disk(self, service: str) -> DiskUsage | None:
        return None  # a PersistentVolume's usage is the node's business

    def signal_service(self, service: str, signum: int) -> None:
        raise HarnessError("signalling a service's processes is not a Kubernetes fault here",
                           hint="run the process faults on the local target")

    def rotate_minio_secret(self) -> None:
        raise HarnessError("rotating the store's keys is not a Kubernetes fault here",
                           hint="run it on the local target")

    def redeploy_hooks(self, services: list[str]) -> None:
        """Nothing: the platform's manifests define its users and rights."""

    def log_tails(self, lines: int = 200) -> dict[str, str]:
        """Each workload's pods' last lines (``elasticsearch``: its first pod; ``elasticsearch-1``...: the others)."""
        out = {}
        for service, workload in WORKLOADS.items():
            with contextlib.suppress(Exception):  # a StatefulSet that is gone has no log to keep
                for pod in sorted(p.metadata.name for p in self.kube.statefulset_pods(self.namespace, workload)):
                    with contextlib.suppress(Exception):  # nor a pod that is gone
                        key = service if pod == f"{workload}-0" else pod
                        out[key] = self.kube.pod_log(self.namespace, pod, tail_lines=lines, container=workload)
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "kubernetes", "namespace": self.namespace, "kubeconfig": str(self.ref.kubeconfig),
                "context": self.ref.context, "manifests": str(self.manifests),
                "cluster": self.kube.facts(self.namespace), **self._es_nodes(),
                **({"applied": self.applied} if self.applied else {}),
                **({"site_loss": self.lost} if self.lost else {})}

    def _es_nodes(self) -> dict[str, Any]:
        """Elasticsearch's pods as they run now, and what each was given (heap, memory limit)."""
        pods = sorted(self.kube.statefulset_pods(self.namespace, WORKLOADS["elasticsearch"]),
                      key=lambda p: p.metadata.name)
        given = set()
        for pod in pods:
            for container in pod.spec.containers:
                if container.name == WORKLOADS["elasticsearch"]:
                    java = next((e.value for e in container.env or [] if e.name == "ES_JAVA_OPTS"), None)
                    limit = ((container.resources and container.resources.limits) or {}).get("memory")
                    given.add((java, limit))
        return {"elasticsearch_nodes": len(pods), "elasticsearch_pods": [p.metadata.name for p in pods],
                "elasticsearch_memory": [{"ES_JAVA_OPTS": java, "limit": limit} for java, limit in sorted(
                    given, key=str)]}

    def down(self, *, purge: bool = False) -> list[str]:
        """Close the port-forwards and give a held Service back; the platform stays."""
        if self.traffic_held:
            with contextlib.suppress(Exception):
                self.switch_traffic("elasticsearch")
        self._forwards.close()
        self._ports.clear()
        self.kube.close()
        return []
