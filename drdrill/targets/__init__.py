"""Drill targets behind one interface (:class:`~drdrill.targets.base.DrillTarget`): one module
per target. ``local`` runs the services as processes on loopback; ``live`` is an environment
drdrill did not start (staging), whose destructive drills run through Kubernetes (``kubernetes``,
when [target] names a cluster); ``containers`` runs the services on a Docker engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drdrill.errors import HarnessError, UsageError

if TYPE_CHECKING:
    from drdrill.settings import DrillSettings, Paths, StackSettings
    from drdrill.targets.base import DrillTarget

TARGETS = ("local", "live", "containers")


def make_target(name: str, paths: Paths, stack_settings: StackSettings, settings: DrillSettings, *,
                drill_id: str, stack: str | None = None, destructive: bool = False) -> DrillTarget:
    """The target a run drills. No I/O: starting it is the run's first phase. ``live`` with
    Kubernetes in [target] and destructive scenarios: the namespace, recovered the runbook's
    way (whether it may be destroyed is :func:`check_destruction_allowed`'s to say)."""
    if name == "local":
        from drdrill.targets.local.stack import LocalStack
        from drdrill.targets.stack_target import StackDrillTarget

        if stack is not None:
            return StackDrillTarget(LocalStack(paths, stack_settings, stack_name=stack), owned=False)
        return StackDrillTarget(LocalStack(paths, stack_settings, stack_name=f"drill-{drill_id}"), owned=True)
    if name == "containers":
        from drdrill.targets.containers.stack import ContainerStack
        from drdrill.targets.containers.target import ContainersDrillTarget

        if stack is not None:
            return ContainersDrillTarget(ContainerStack(paths, stack_settings, stack_name=stack,
                                                        images=settings.images), owned=False)
        return ContainersDrillTarget(ContainerStack(paths, stack_settings, stack_name=f"drill-{drill_id}",
                                                    images=settings.images), owned=True)
    if name == "live":
        if stack is not None:
            raise UsageError("--stack names a local stack; it does not go with --target live",
                             hint="the [target] table says where the live environment is")
        if settings.target is None:
            raise UsageError("--target live needs a [target] table in the settings file",
                             hint="see README, \"Drill your staging environment\", for a complete example")
        from drdrill.provision.postgres import find_pg_bindir
        from drdrill.targets.live.target import LiveTarget

        kubernetes = settings.target.kubernetes
        if destructive and kubernetes is not None:
            from drdrill.targets.kubernetes.stack import KubernetesStack
            from drdrill.targets.kubernetes.target import KubernetesDrillTarget

            if kubernetes.kustomization is None:
                raise UsageError("destructive scenarios on Kubernetes recover by applying the platform's manifests: "
                                 "[target] kustomization is not set",
                                 hint="kustomization = \"path/to/k8s/overlays/<env>\" (what `kubectl apply -k` takes)")
            return KubernetesDrillTarget(KubernetesStack(settings.target, stack_settings,
                                                         manifests=kubernetes.kustomization))

        return LiveTarget(settings.target, drill_id=drill_id, pg_bindir=find_pg_bindir())
    raise UsageError(f"unknown target {name!r}", hint=f"expected one of {', '.join(TARGETS)}")


def check_destruction_allowed(target: DrillTarget, features: list[str]) -> None:
    """Destructive scenarios (everything but the restore test) on a live environment: refused
    (exit 2) unless it is marked as a drill environment twice over (its settings say
    ``environment = "drill"`` and its bucket holds the marker object) and, on Kubernetes, thrice
    (its namespace is labelled ``drdrill.io/drill-environment=true``); without Kubernetes in
    [target], still not possible (exit 3). Nothing is touched either way."""
    from drdrill.targets.kubernetes.target import KubernetesDrillTarget
    from drdrill.targets.live.target import LiveTarget

    if isinstance(target, KubernetesDrillTarget):
        settings = target.stack.target
    elif isinstance(target, LiveTarget):
        settings = target.settings
    else:
        return
    from drdrill.core.layout import DRILL_MARKER_KEY

    what = ", ".join(features[:3]) + (" ..." if len(features) > 3 else "")
    marked = False
    if settings.may_be_destroyed:
        platform = target.platform(request_timeout_s=10)
        try:
            marked = platform.store.exists(DRILL_MARKER_KEY)
        finally:
            platform.close()
    if not marked:
        raise UsageError(
            f"refusing destructive scenarios ({what}) on live environment {settings.environment!r}: it is not "
            "marked as a drill environment",
            hint=f"mark it with environment = \"drill\" in [target] AND an object {DRILL_MARKER_KEY} in bucket "
                 f"{settings.s3_bucket}; or run the restore test (the default for --target live)")
    if isinstance(target, KubernetesDrillTarget):
        target.stack.check_drill_environment()
        return
    raise HarnessError(f"destructive scenarios ({what}) on --target live need Kubernetes in [target]: destroying "
                       "and redeploying the platform is done with its manifests",
                       hint="give kubeconfig, namespace and kustomization in [target]; or run the destructive "
                            "drills with --target local")
