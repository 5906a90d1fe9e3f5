"""Faults only Kubernetes makes, for real, on a [target] with Kubernetes (destructive drills):
the next deployment's Elasticsearch claims cannot be bound (a StorageClass that does not
exist), its image cannot be pulled, and (drdrill's own cluster only) the node's kubelet
stopped as the snapshot restore begins. Each is healed after its scenario. The backup
CronJob's own faults (suspended, its last run failed) are the restore test's to find.
On another target each is a usage error naming what it needs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from drdrill.errors import UsageError

if TYPE_CHECKING:
    from drdrill.drill.session import Drill
    from drdrill.targets.kubernetes.target import KubernetesDrillTarget

MISSING_STORAGE_CLASS = "no-such-storage-class"
MISSING_TAG = "no-such-tag"


def _kubernetes(drill: Drill) -> KubernetesDrillTarget:
    from drdrill.targets.kubernetes.target import KubernetesDrillTarget

    if not isinstance(drill.target, KubernetesDrillTarget):
        raise UsageError(f"this fault needs a Kubernetes target (the drill runs on {drill.target.name})",
                         hint="drdrill run features/faults/kubernetes.feature --target live --config <a [target] "
                              "with kubeconfig, namespace and kustomization>")
    return drill.target


def elasticsearch_claims_unbindable(drill: Drill) -> None:
    """The next deployment asks for Elasticsearch's volume from a StorageClass that does not exist."""
    patch = [{"op": "add", "path": "/spec/volumeClaimTemplates/0/spec/storageClassName",
              "value": MISSING_STORAGE_CLASS}]
    _kubernetes(drill).stack.change_next_deploy(patches=[{"target": {"kind": "StatefulSet", "name": "elasticsearch"},
                                                           "patch": json.dumps(patch)}])


def elasticsearch_image_unpullable(drill: Drill) -> None:
    """The next deployment names an Elasticsearch image tag that no registry here serves."""
    target = _kubernetes(drill)
    image = target.stack.current_image("elasticsearch")
    target.stack.change_next_deploy(images=[{"name": image.rsplit(":", 1)[0], "newTag": MISSING_TAG}])


def kubelet_stopped_during_restore(drill: Drill) -> None:
    """Armed: as the snapshot restore begins, the node's kubelet stops (its pods keep running,
    but nothing reaches them through the API: logs, exec, port-forwards)."""
    target = _kubernetes(drill)
    drill.arm("restore-snapshots", target.stop_kubelet)


KUBERNETES_FAULTS: dict[str, Callable[[Drill], None]] = {
    "the Elasticsearch volume claims of the next deployment cannot be bound": elasticsearch_claims_unbindable,
    "the Elasticsearch image of the next deployment cannot be pulled": elasticsearch_image_unpullable,
    "the node's kubelet will be stopped as the snapshot restore begins": kubelet_stopped_during_restore,
}
