"""Destructive drills on Kubernetes: the platform's namespace in a cluster (a [target] with
kubeconfig and namespace, marked as a drill environment), driven with the same verbs as the
local target (:mod:`drdrill.targets.kubernetes.stack`), so that the same scenarios and steps run.
The restore test on such a target runs on :class:`~drdrill.targets.live.LiveTarget`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drdrill.adapters.pg_owned import EnvironmentLock
from drdrill.adapters.platform import Endpoints, Platform
from drdrill.errors import ServiceError, UsageError, VerificationFailed
from drdrill.host.readiness import wait_for
from drdrill.targets.kubernetes.stack import WORKLOADS, KubernetesStack
from drdrill.targets.stack_target import StackDrillTarget

if TYPE_CHECKING:
    from drdrill.targets.kubernetes.node import ClusterHost

log = logging.getLogger(__name__)


class KubernetesDrillTarget(StackDrillTarget):
    name = "kubernetes"
    stack: KubernetesStack

    def __init__(self, stack: KubernetesStack) -> None:
        super().__init__(stack, owned=False)
        self._kubelet_stopped = False

    def start(self) -> Endpoints:
        """Connect, then empty the platform (a namespace marked for drills: its indices,
        repositories and es_metadata go; the backup store's objects stay): scenarios seed
        their own tenants, as on a stack started for the drill."""
        endpoints = super().start()
        platform = self.platform()
        self._not_held(platform)
        self._reset(platform)
        return endpoints

    def _not_held(self, platform: Platform) -> None:
        """A restore test in progress holds the environment's lock: a destructive drill must not
        start under it (exit 2 naming the holder). The lock is not kept: the drill destroys the
        server that would hold it."""
        lock = EnvironmentLock(platform.db.conn, "drdrill destructive drill (checking)")
        try:
            lock.acquire()
        except ServiceError:
            return  # no PostgreSQL answering yet: nothing can hold it
        finally:
            lock.release()

    @property
    def traffic_held(self) -> bool:
        return self.stack.traffic_held

    def switch_traffic(self, probe_index: str, expected_docs: int) -> dict[str, Any]:
        """Runbook step 6: the Service goes back to the restored Elasticsearch; done when a
        read through the Service itself returns the restored documents of ``probe_index``."""
        switched = self.stack.switch_traffic("elasticsearch")
        started = time.monotonic()
        reply = json.loads(self.stack.probe_through_service("elasticsearch", f"/{probe_index}/_count"))
        count = int(reply.get("count", -1))
        switched.update(probe=f"GET /{probe_index}/_count through Service elasticsearch", probe_count=count,
                        probe_seconds=round(time.monotonic() - started, 3))
        if count != expected_docs:
            raise VerificationFailed(f"through the Service, {probe_index} holds {count} documents, not the "
                                     f"{expected_docs} restored")
        return switched

    def describe(self) -> dict[str, Any]:
        return self.stack.describe()

    def node_probes(self) -> list[tuple[str, bool, str]]:
        return self.stack.kube.node_health()

    # --- faults (drdrill.drill.faults.kubernetes) --------------------------------------------

    def _own_cluster(self) -> ClusterHost:
        """The node-failure fault needs the node's processes: drdrill's own cluster only."""
        from drdrill.settings import load_paths
        from drdrill.targets.kubernetes.node import ClusterHost

        host = ClusterHost(load_paths())
        state = host.read_state() or {}
        if Path(state.get("kubeconfig", "")) != self.stack.ref.kubeconfig or not host.is_running("kubelet"):
            raise UsageError("stopping the node's kubelet needs drdrill's own cluster (`drdrill cluster up`)",
                             hint="on another cluster, stop a node's kubelet by hand and run the drill")
        return host

    def stop_kubelet(self) -> None:
        self._own_cluster().stop_component("kubelet")
        self._kubelet_stopped = True
        log.info("fault: the node's kubelet is stopped")

    def undo_faults(self) -> None:
        """The kubelet running again, the next deployment as the manifests say; then what every
        target undoes (a workload that is not running is deployed again)."""
        if self._kubelet_stopped:
            from drdrill.settings import load_paths
            from drdrill.targets.kubernetes.node import ClusterHost

            ClusterHost(load_paths()).start_component("kubelet")
            self._kubelet_stopped = False
            # The kubelet takes its pods back: wait until they, and Elasticsearch through them, answer.
            self.stack.kube.wait_statefulsets(self.stack.namespace, list(WORKLOADS.values()), timeout_s=300)
            platform = self.platform(request_timeout_s=5)
            try:
                wait_for("Elasticsearch answering after the kubelet's restart", lambda: platform.cluster.probe(5),
                         timeout_s=120, interval_s=1.0)
            finally:
                platform.close()
        if self.stack.clear_deploy_changes():
            for service in ("elasticsearch", "postgres"):
                if self.process_state(service) != "running":
                    self.stack.destroy([service])  # a StatefulSet that cannot start is replaced whole
                    self.redeploy([service])
        super().undo_faults()

    def stop(self) -> None:
        self.stack.down()
