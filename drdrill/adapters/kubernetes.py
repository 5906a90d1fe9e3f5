"""Kubernetes: every API call drdrill makes, through the official client (reads, watches,
Jobs, port-forwards), and ``kubectl apply --server-side -k`` for the runbook's step 1 (the
client has no kustomize; the runbook itself says `kubectl apply -k`).

The constructor does no I/O; the client is made on first use from the kubeconfig and context.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from drdrill.adapters.kubernetes_jobs import BackupCronJobs
from drdrill.core.statefulset_parts import StatefulSetParts, statefulset_parts, statefulset_pods
from drdrill.errors import ConfigError, DeployFailed, ServiceError
from drdrill.host.readiness import wait_for
from drdrill.host.tools import require_module

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

DRILL_NAMESPACE_LABEL = "drdrill.io/drill-environment"
# A container waiting for one of these will not start by waiting longer.
STUCK_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                           "CreateContainerConfigError"})



@dataclass
class KubeCluster(BackupCronJobs):
    """One cluster, as a kubeconfig (and optionally a context in it) reaches it."""

    kubeconfig: Path | None  # None: in a pod, as its ServiceAccount (in-cluster config)
    context: str | None = None
    kubectl: str = "kubectl"
    _api: ApiClient | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        require_module("kubernetes", "kubernetes", "drdrill reaches a cluster with the Kubernetes client")

    @property
    def api(self) -> ApiClient:
        if self._api is None and self.kubeconfig is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException as exc:
                raise ConfigError("[target] kubeconfig", f"in-cluster: {exc}",
                                  hint="kubeconfig = \"in-cluster\" works in a pod with a token") from None
            self._api = client.ApiClient(configuration)
        if self._api is None:
            from kubernetes import config

            try:
                self._api = config.new_client_from_config(str(self.kubeconfig), context=self.context)
            except Exception as exc:  # the client raises several kinds for a bad file or context
                raise ConfigError("[target] kubeconfig", f"{self.kubeconfig}: {exc}",
                                  hint="check the file and `context`") from None
        return self._api

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api)

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    # --- the cluster -----------------------------------------------------------------------

    def version(self) -> str:
        from kubernetes import client

        return str(client.VersionApi(self.api).get_code().git_version)

    def nodes(self) -> list[dict[str, Any]]:
        out = []
        for node in self.core().list_node().items:
            ready = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
            out.append({"name": node.metadata.name, "ready": bool(ready and ready.status == "True"),
                        "kubelet": node.status.node_info.kubelet_version,
                        "runtime": node.status.node_info.container_runtime_version})
        return out

    def ensure_namespace(self, name: str, labels: dict[str, str]) -> None:
        from kubernetes.client.exceptions import ApiException

        core = self.core()
        try:
            core.create_namespace({"metadata": {"name": name, "labels": labels}})
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.patch_namespace(name, {"metadata": {"labels": labels}})

    def ensure_storage_class(self, body: dict[str, Any]) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            client.StorageV1Api(self.api).create_storage_class(cast(Any, body))
        except ApiException as exc:
            if exc.status != 409:
                raise

    def namespace_labels(self, name: str) -> dict[str, str]:
        return dict(self.core().read_namespace(name).metadata.labels or {})

    def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        from kubernetes.client.exceptions import ApiException

        body = {"metadata": {"name": name}, "type": "Opaque", "stringData": data}
        core = self.core()
        try:
            core.create_namespaced_secret(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.replace_namespaced_secret(name, namespace, body)

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        import base64

        secret = self.core().read_namespaced_secret(name, namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    # --- step 1-2: apply and roll out ------------------------------------------------------

    def apply(self, kustomization: Path, *, timeout_s: float = 300) -> list[str]:
        """``kubectl apply --server-side -k DIR``; returns the objects applied (kind/name)."""
        argv = [self.kubectl, *([f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else []),
                *([f"--context={self.context}"] if self.context else []),
                "apply", "--server-side", "--force-conflicts", "--field-manager=drdrill", "-k", str(kustomization),
                "-o", "name"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode:
            raise ServiceError(f"kubectl apply -k {kustomization} failed: "
                               f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
        return [line.strip() for line in done.stdout.splitlines() if line.strip()]

    def statefulset_pods(self, namespace: str, name: str) -> list[Any]:
        """The StatefulSet's own pods (its selector and its uid as their owner, as site loss
        selects them: never another workload's pods that share an ``app=`` label); none when
        there is no StatefulSet of that name."""
        from kubernetes.client.exceptions import ApiException

        try:
            sts = self.apps().read_namespaced_stateful_set(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted((sts.spec.selector.match_labels or {}).items()))
        pods = self.core().list_namespaced_pod(namespace, label_selector=selector or None).items
        serialise = self.api.sanitize_for_serialization
        own = set(statefulset_pods(serialise(sts), [serialise(p) for p in pods]))
        return [p for p in pods if p.metadata.name in own]

    def statefulset_ready(self, namespace: str, name: str) -> tuple[bool, str]:
        """Rolled out, or not yet and why; a pod that cannot start (its image cannot be pulled,
        its volume cannot be bound) fails at once with Kubernetes' own words."""
        self._fail_if_stuck(namespace, name)
        sts = self.apps().read_namespaced_stateful_set(name, namespace)
        want, status = sts.spec.replicas or 0, sts.status
        ready, updated = status.ready_replicas or 0, status.updated_replicas or 0
        done = ready >= want and updated >= want and status.observed_generation == sts.metadata.generation
        return done, f"{ready}/{want} ready, {updated} updated" + ("" if done else
                                                                  f"; {self._pod_story(namespace, name)}")

    def _fail_if_stuck(self, namespace: str, workload: str) -> None:
        core = self.core()
        for pod in self.statefulset_pods(namespace, workload):
            for status in (pod.status.init_container_statuses or []) + (pod.status.container_statuses or []):
                waiting = status.state.waiting if status.state else None
                if waiting is not None and waiting.reason in STUCK_WAITING:
                    raise DeployFailed(f"{workload}: pod {pod.metadata.name} cannot start: {waiting.reason}: "
                                       f"{(waiting.message or '')[:300]}",
                                       hint=f"kubectl -n {namespace} describe pod {pod.metadata.name}")
            scheduled = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)
            if pod.status.phase != "Pending" or scheduled is None or scheduled.status == "True":
                continue
            claims = {c.metadata.name: c.metadata.uid for c in
                      core.list_namespaced_persistent_volume_claim(namespace).items}
            for volume in pod.spec.volumes or []:
                claim = volume.persistent_volume_claim
                if claim is None or claim.claim_name not in claims:  # not created yet: nothing failed
                    continue
                failed = self.newest_warning(namespace, claim.claim_name, uid=claims[claim.claim_name],
                                             reasons=("ProvisioningFailed",))
                if failed:
                    raise DeployFailed(f"{workload}: pod {pod.metadata.name} stays Pending: its claim "
                                       f"{claim.claim_name} cannot be bound: {failed}",
                                       hint=f"kubectl -n {namespace} describe pvc {claim.claim_name}")

    def node_health(self) -> list[tuple[str, bool, str]]:
        """Each node: Ready, and its kubelet answering /healthz through the API (a stopped
        kubelet shows there at once, long before the node controller marks the node NotReady)."""
        out = []
        for node in self.core().list_node().items:
            name = node.metadata.name
            ready = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
            try:
                reply = self.core().connect_get_node_proxy_with_path(name, "healthz", _preload_content=False)
                kubelet, answered = bytes(reply.data).decode().strip(), True
            except Exception as exc:  # the API's answer for an unreachable kubelet is the finding
                kubelet, answered = _status_message(getattr(exc, "body", None) or str(exc)), False
            ok = bool(ready and ready.status == "True") and answered and kubelet == "ok"
            out.append((f"node {name} Ready and its kubelet answering (API node proxy /healthz)", ok,
                        f"Ready={ready.status if ready else 'unknown'}; kubelet: {kubelet}"))
        return out

    def _pod_story(self, namespace: str, workload: str) -> str:
        """Why a workload's pods are not ready: phase, waiting reasons, the newest warning event."""
        parts = []
        for pod in self.statefulset_pods(namespace, workload):
            waiting = [f"{c.name}: {c.state.waiting.reason}" for c in (pod.status.container_statuses or [])
                       + (pod.status.init_container_statuses or []) if c.state and c.state.waiting]
            parts.append(f"{pod.metadata.name} {pod.status.phase}" + (f" ({', '.join(waiting)})" if waiting else ""))
            event = self.newest_warning(namespace, pod.metadata.name, uid=pod.metadata.uid)
            if event:
                parts.append(event)
        return "; ".join(parts) if parts else "no pods"

    def newest_warning(self, namespace: str, involved: str, *, uid: str | None = None,
                       reasons: tuple[str, ...] = ()) -> str | None:
        """The newest Warning event about ``involved`` (this very object when ``uid`` is given:
        events outlive an object, and a new one may have the same name), of ``reasons`` if given."""
        selector = f"involvedObject.name={involved}" + (f",involvedObject.uid={uid}" if uid else "")
        events = [e for e in self.core().list_namespaced_event(namespace, field_selector=selector).items
                  if e.type == "Warning" and (not reasons or e.reason in reasons)]
        if not events:
            return None
        newest = max(events, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        return f"{newest.reason}: {newest.message}"

    def wait_statefulsets(self, namespace: str, names: list[str], *, timeout_s: float) -> float:
        started = time.monotonic()
        for name in names:
            wait_for(f"StatefulSet {namespace}/{name} rollout",
                     functools.partial(self.statefulset_ready, namespace, name),
                     timeout_s=max(1.0, timeout_s - (time.monotonic() - started)), interval_s=1.0,
                     hint=f"kubectl -n {namespace} describe statefulset {name}")
        return time.monotonic() - started

    def facts(self, namespace: str) -> dict[str, Any]:
        """What a report records of the cluster: version, nodes, the namespace's images."""
        return {"version": self.version(), "nodes": self.nodes(), "images": self.workload_images(namespace)}

    def workload_images(self, namespace: str) -> dict[str, list[str]]:
        """Each StatefulSet's, Deployment's and CronJob's container images."""
        out: dict[str, list[str]] = {}
        for kind, items in (("statefulset", self.apps().list_namespaced_stateful_set(namespace).items),
                            ("deployment", self.apps().list_namespaced_deployment(namespace).items)):
            for item in items:
                out[f"{kind}/{item.metadata.name}"] = [c.image for c in item.spec.template.spec.containers]
        for cron in self.batch().list_namespaced_cron_job(namespace).items:
            out[f"cronjob/{cron.metadata.name}"] = [c.image for c in
                                                     cron.spec.job_template.spec.template.spec.containers]
        return out

    def workload_state(self, namespace: str, name: str) -> str:
        """``running`` when every pod of the StatefulSet ``name`` runs and is ready (a cluster
        of several is not all there with one), else ``not running`` and why (the words the
        other stacks use for a process)."""
        pods = self.statefulset_pods(namespace, name)
        if not pods:
            return "not running (no pod)"
        if all(_pod_ready(pod) for pod in pods):
            return "running"
        return f"not running ({self._pod_story(namespace, name)})"

    def pod_log(self, namespace: str, pod: str, *, tail_lines: int, container: str | None = None) -> str:
        """``container``: which one, in a pod of several (Elasticsearch's has its transport relay)."""
        return str(self.core().read_namespaced_pod_log(pod, namespace, tail_lines=tail_lines, container=container))

    # --- site loss and the traffic switch ---------------------------------------------------

    def delete_statefulset(self, namespace: str, name: str, *, with_claims: bool,
                           timeout_s: float) -> StatefulSetParts | None:
        """The StatefulSet, its own pods and (``with_claims``) its own PersistentVolumeClaims
        (:mod:`drdrill.core.statefulset_parts`: never another StatefulSet's of a similar name),
        waited for until none of them is left; returns what was deleted (None: it was gone)."""
        from kubernetes.client.exceptions import ApiException

        apps, core = self.apps(), self.core()
        try:
            sts = apps.read_namespaced_stateful_set(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            log.info("StatefulSet %s/%s is already gone: nothing of it to delete", namespace, name)
            return None
        serialise = self.api.sanitize_for_serialization
        pods = core.list_namespaced_pod(namespace).items
        claims = core.list_namespaced_persistent_volume_claim(namespace).items if with_claims else []
        parts = statefulset_parts(serialise(sts), [serialise(p) for p in pods], [serialise(c) for c in claims])
        # Each deletion names the uid it read: an object of the same name made since is not touched.
        uids = {("pod", p.metadata.name): p.metadata.uid for p in pods if p.metadata.name in parts.pods}
        uids |= {("claim", c.metadata.name): c.metadata.uid for c in claims if c.metadata.name in parts.claims}
        log.info("site loss: StatefulSet %s/%s (uid %s), its pods %s and claims %s", namespace, name, parts.uid,
                 list(parts.pods), list(parts.claims))

        def options(uid: str, grace: int | None = None, propagation: str | None = None) -> Any:
            from kubernetes import client

            return client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid),
                                          grace_period_seconds=grace, propagation_policy=propagation)

        # The StatefulSet first: its controller would make a deleted pod again.
        with contextlib.suppress(ApiException):  # gone meanwhile: lost all the same
            apps.delete_namespaced_stateful_set(name, namespace, body=options(parts.uid, 0, "Foreground"))
        for (kind, object_name), uid in uids.items():
            with contextlib.suppress(ApiException):  # gone, or replaced (uid precondition): left alone
                if kind == "pod":
                    core.delete_namespaced_pod(object_name, namespace, body=options(uid, 0))
                else:
                    core.delete_namespaced_persistent_volume_claim(object_name, namespace, body=options(uid))

        def gone() -> tuple[bool, str]:
            left = [f"pod {p.metadata.name}" for p in core.list_namespaced_pod(namespace).items
                    if p.metadata.uid in uids.values()]
            left += [f"claim {c.metadata.name}" for c in core.list_namespaced_persistent_volume_claim(namespace).items
                     if c.metadata.uid in uids.values()]
            left += [f"statefulset {s.metadata.name}" for s in apps.list_namespaced_stateful_set(namespace).items
                     if s.metadata.uid == parts.uid]
            return not left, f"still there: {', '.join(left)}"

        wait_for(f"StatefulSet {namespace}/{name} and its volumes deleted", gone, timeout_s=timeout_s,
                 interval_s=0.5)
        return parts

    def patch_service_selector(self, namespace: str, name: str, keys: dict[str, str | None], *,
                               field_manager: str) -> None:
        """Add (value) or remove (None) keys of a Service's selector, as ``field_manager``: a
        later server-side apply of the manifests leaves the keys it does not own alone."""
        self.core().patch_namespaced_service(name, namespace, {"spec": {"selector": keys}},
                                             field_manager=field_manager)

    def wait_service_endpoints(self, namespace: str, name: str, *, timeout_s: float, empty: bool = False) -> list[str]:
        """The Service's ready endpoints (pod names), once it has at least one (``empty``: once
        it has none)."""
        from kubernetes import client

        discovery = client.DiscoveryV1Api(self.api)

        def ready() -> list[str]:
            slices = discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=f"kubernetes.io/service-name={name}").items
            return sorted(str(e.target_ref.name if e.target_ref else (e.addresses or ["?"])[0])
                          for s in slices for e in s.endpoints or [] if e.conditions and e.conditions.ready)

        def probe() -> tuple[bool, str]:
            found = ready()
            return bool(found) != empty, f"ready: {found}"

        wait_for(f"Service {namespace}/{name} {'without' if empty else 'with'} endpoints", probe, timeout_s=timeout_s,
                 interval_s=0.1)
        return ready()

    def service_proxy_get(self, namespace: str, name: str, port: int, path: str) -> str:
        """GET ``path`` through the Service (the API server's service proxy picks one of its
        endpoints, as a client's connection to the Service would)."""
        reply = self.core().connect_get_namespaced_service_proxy_with_path(
            f"{name}:{port}", namespace, path.lstrip("/"), _preload_content=False)
        return bytes(reply.data).decode()  # unparsed: the client would turn JSON into a Python repr

    # --- reaching the services -------------------------------------------------------------

    def service_selector(self, namespace: str, service: str) -> str:
        """The Service's pod selector as a label selector (what a port-forward follows)."""
        svc = self.core().read_namespaced_service(service, namespace)
        return ",".join(f"{k}={v}" for k, v in sorted((svc.spec.selector or {}).items()))

    def ready_pod(self, namespace: str, selector: str, what: str) -> str:
        """A running, ready pod matching ``selector`` (as `kubectl port-forward svc/...` picks one);
        ``statefulset/NAME``: one of that StatefulSet's own pods."""
        if selector.startswith("statefulset/"):
            pods = self.statefulset_pods(namespace, selector.split("/", 1)[1])
        else:
            pods = self.core().list_namespaced_pod(namespace, label_selector=selector).items
        for pod in pods:
            if _pod_ready(pod) and pod.metadata.deletion_timestamp is None:
                return str(pod.metadata.name)
        raise ServiceError(f"no ready pod for {what} in namespace {namespace} ({selector})",
                           hint=f"kubectl -n {namespace} get pods" + ("" if selector.startswith("statefulset/")
                                                                      else f" -l {selector}"))

    @contextlib.contextmanager
    def port_forward(self, namespace: str, selector: str, port: int, what: str) -> Iterator[int]:
        """A local port on 127.0.0.1 forwarded to ``port`` of a ready pod matching ``selector``
        (chosen again for each connection: a replaced pod is followed), one API port-forward
        stream per connection, for as long as the context lasts."""
        from drdrill.adapters.kube_forward import Forwarder

        streams = KubeCluster(self.kubeconfig, self.context)
        forwarder = Forwarder(lambda: self.ready_pod(namespace, selector, what), streams.api, namespace, port, what)
        forwarder.start()
        try:
            yield forwarder.local_port
        finally:
            forwarder.stop()
            streams.close()

    def delete_all_pods(self, *, timeout_s: float) -> None:
        core = self.core()
        for pod in core.list_pod_for_all_namespaces().items:
            with contextlib.suppress(Exception):
                core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=5)

        def gone() -> tuple[bool, str]:
            left = core.list_pod_for_all_namespaces().items
            return not left, f"{len(left)} pods left"

        wait_for("every pod deleted", gone, timeout_s=timeout_s, interval_s=1.0)


def _pod_ready(pod: Any) -> bool:
    ready = next((c for c in pod.status.conditions or [] if c.type == "Ready"), None)
    return bool(pod.status.phase == "Running" and ready and ready.status == "True")


def _status_message(body: object) -> str:
    """The ``message`` of a Kubernetes Status reply, else the text itself (one line)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    with contextlib.suppress(ValueError, AttributeError):  # not a Status: the text as it is
        text = str(json.loads(text).get("message", text))
    return " ".join(text.split())[:300]
