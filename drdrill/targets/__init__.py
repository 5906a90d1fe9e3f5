"""Drill targets behind one interface (:class:`~drdrill.targets.base.DrillTarget`): one module
per target. ``local`` runs the services as processes on loopback; ``live`` is an environment
drdrill did not start (staging); ``containers`` runs the services on a Docker engine; Kubernetes
is to come."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drdrill.errors import HarnessError, UsageError

if TYPE_CHECKING:
    from drdrill.config import DrillSettings, Paths, StackSettings
    from drdrill.targets.base import DrillTarget

TARGETS = ("local", "live", "containers")


def make_target(name: str, paths: Paths, stack_settings: StackSettings, settings: DrillSettings, *,
                drill_id: str, stack: str | None = None) -> DrillTarget:
    """The target a run drills. No I/O: starting it is the run's first phase."""
    if name == "local":
        from drdrill.stack.local import LocalStack
        from drdrill.targets.local import LocalDrillTarget

        if stack is not None:
            return LocalDrillTarget(LocalStack(paths, stack_settings, stack_name=stack), owned=False)
        return LocalDrillTarget(LocalStack(paths, stack_settings, stack_name=f"drill-{drill_id}"), owned=True)
    if name == "containers":
        from drdrill.stack.containers import ContainerStack
        from drdrill.targets.containers import ContainersDrillTarget

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
        from drdrill.targets.live import LiveTarget

        return LiveTarget(settings.target, drill_id=drill_id, pg_bindir=find_pg_bindir())
    raise UsageError(f"unknown target {name!r}", hint=f"expected one of {', '.join(TARGETS)}")


def check_destruction_allowed(target: DrillTarget, features: list[str]) -> None:
    """Destructive scenarios (everything but the restore test) on a live environment: refused
    (exit 2) unless it is marked as a drill environment twice over (its settings say
    ``environment = "drill"`` and its bucket holds the marker object); where it is, still not
    possible without Kubernetes (exit 3). Nothing is touched either way."""
    from drdrill.targets.live import LiveTarget

    if not isinstance(target, LiveTarget):
        return
    from drdrill.core.layout import DRILL_MARKER_KEY

    what = ", ".join(features[:3]) + (" ..." if len(features) > 3 else "")
    settings = target.settings
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
    raise HarnessError(f"destructive scenarios ({what}) cannot run on --target live yet: destroying and redeploying "
                       "services needs Kubernetes, which this version cannot drive",
                       hint="run the restore test, or the destructive drills with --target local")
