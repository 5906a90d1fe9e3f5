"""The containers target: the same drills on a Docker engine (:mod:`drdrill.targets.containers.stack`),
with images drdrill builds locally or the ones the settings name."""

from __future__ import annotations

import logging
from typing import Any

from drdrill.adapters.toxiproxy import Toxic
from drdrill.targets.containers.stack import ContainerStack
from drdrill.targets.stack_target import StackDrillTarget

log = logging.getLogger(__name__)


class ContainersDrillTarget(StackDrillTarget):
    """Everything a drill does to its target is what the local target does, through the
    container stack's verbs (kill + remove volume, new container, pause); only what starts,
    describes and ends it differs."""

    name = "containers"
    stack: ContainerStack

    def __init__(self, stack: ContainerStack, *, owned: bool = True) -> None:
        super().__init__(stack, owned=owned)
        self._store_faulted = False
        self._disk_filled = False

    # --- faults only containers can make (drdrill.drill.faults.containers) -------------------

    def partition_store(self) -> None:
        self._store_faulted = True
        self.stack.partition_store()

    def slow_store(self, toxics: list[Toxic]) -> None:
        self._store_faulted = True
        self.stack.slow_store(toxics)

    def oom_kill(self, service: str) -> None:
        self.stack.oom_kill(service)

    def fill_disk(self) -> str:
        self._disk_filled = True
        usage = self.stack.fill_disk()
        log.info("Elasticsearch's data disk is full: %s", usage)
        self._endpoints = self.stack.endpoints()
        return usage

    def undo_faults(self) -> None:
        """The store's network whole again, Elasticsearch back on its own volume; then what
        every target undoes (paused or dead containers, rotated keys)."""
        if self._store_faulted:
            self.stack.heal_store_network()
            self._store_faulted = False
        if self._disk_filled:
            self.redeploy(["elasticsearch"])
            self._disk_filled = False
        super().undo_faults()

    def describe(self) -> dict[str, Any]:
        engine = self.stack.engine.info
        described: dict[str, Any] = {
            "kind": "containers", "stack": self.stack.stack_name,
            "lifetime": "started for this drill and removed after it" if self.owned else
            "an existing stack, kept running",
            "elasticsearch": self.stack.settings.es_version, "minio": self.stack.settings.minio_version,
            "engine": {"host": engine.host, "version": engine.version, "started_by_drdrill": engine.managed}
            if engine else None}
        # What each node was given: the figures a drill's times depend on (the stack's own
        # count, from its state: an existing stack keeps the count it was started with).
        settings = self.stack.started_settings()
        described["elasticsearch_nodes"] = int(settings.get("elasticsearch_nodes") or 1)
        described["elasticsearch_heap_mb_per_node"] = int(settings.get("es_heap_mb") or self.stack.settings.es_heap_mb)
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
