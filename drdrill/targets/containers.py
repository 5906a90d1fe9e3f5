"""The containers target: the same drills on a Docker engine (:mod:`drdrill.stack.containers`),
with images drdrill builds locally or the ones the settings name."""

from __future__ import annotations

from typing import Any

from drdrill.stack.containers import ContainerStack
from drdrill.targets.local import LocalDrillTarget


class ContainersDrillTarget(LocalDrillTarget):
    """Everything a drill does to its target is what the local target does, through the
    container stack's verbs (kill + remove volume, new container, pause); only what starts,
    describes and ends it differs."""

    name = "containers"
    stack: ContainerStack

    def __init__(self, stack: ContainerStack, *, owned: bool = True) -> None:
        super().__init__(stack, owned=owned)

    def describe(self) -> dict[str, Any]:
        engine = self.stack.engine.info
        described: dict[str, Any] = {
            "kind": "containers", "stack": self.stack.stack_name,
            "lifetime": "started for this drill and removed after it" if self.owned else
            "an existing stack, kept running",
            "elasticsearch": self.stack.settings.es_version, "minio": self.stack.settings.minio_version,
            "engine": {"host": engine.host, "version": engine.version, "started_by_drdrill": engine.managed}
            if engine else None}
        if self.stack.state_path.exists():
            described["images"] = self.stack.image_facts()
        if self.stack.built:
            described["image_builds"] = self.stack.built
        return described

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.stack.engine.stop()  # only if this run started it
