"""What the benchmarks share: the settings of this run, the budget, and ONE local stack
(started on first use, torn down with purge at the end), with a reset between measurements."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Budget, progress, stopwatch
from drdrill.adapters.platform import Platform
from drdrill.settings import load_paths, stack_settings_from_env
from drdrill.targets.base import SITE_SERVICES
from drdrill.targets.local.stack import LocalStack
from drdrill.targets.stack_target import StackDrillTarget


@dataclass(frozen=True)
class Options:
    only: tuple[str, ...]
    smoke: bool
    repeat: int
    budget_s: float
    workdir: Path
    # Documents per index of the ``nodes`` benchmark (None: its default size).
    nodes_docs: int | None = None


@dataclass
class Bench:
    """One benchmark run. The stack is shared by the overhead, restore, scale and forecast
    benchmarks; each measurement starts from an empty platform (:meth:`reset`) with fresh
    tenant names, so no earlier backup or index can take part in a later measurement."""

    options: Options
    budget: Budget
    stack: LocalStack | None = None
    target: StackDrillTarget | None = None
    stack_up_s: float | None = None
    stack_name: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    # Drills measured in this run, by shape: a later benchmark may reuse an identical one.
    drills: dict[Any, Any] = field(default_factory=dict)
    _serial: int = 0

    def next_tag(self, prefix: str) -> str:
        """A fresh, short name component (tenants, drill ids) unique in this run."""
        self._serial += 1
        return f"{prefix}{self._serial}"

    # --- the stack ---------------------------------------------------------------------

    def ensure_stack(self) -> StackDrillTarget:
        if self.target is not None:
            return self.target
        stack = LocalStack(load_paths(), stack_settings_from_env(), stack_name=f"bench-{uuid.uuid4().hex[:8]}")
        self.stack, self.stack_name = stack, stack.stack_name  # set before up(): down() must run if up() fails
        progress(f"starting local stack {stack.stack_name}")
        with stopwatch() as took:
            endpoints = stack.up()
        self.stack_up_s = took()
        self.versions = dict(endpoints.versions)
        # owned=False: the drills must not stop the shared stack; the bench stops it at the end.
        self.target = StackDrillTarget(stack, owned=False)
        self.target.start()
        progress(f"stack up in {self.stack_up_s:.1f}s: {', '.join(f'{k} {v}' for k, v in self.versions.items())}")
        return self.target

    def platform(self) -> Platform:
        return self.ensure_stack().platform(request_timeout_s=600)

    def stop_stack(self) -> None:
        if self.stack is not None:
            progress(f"stopping local stack {self.stack.stack_name} (purge)")
            self.stack.down(purge=True)
            self.stack, self.target = None, None

    def reset(self) -> None:
        """An empty platform: what :meth:`StackDrillTarget.heal` resets for owned targets,
        done here because the bench's target is not owned. Only objects this run wrote go."""
        target = self.ensure_stack()
        for service in SITE_SERVICES:  # a failed measurement may have left the site down
            if target.process_state(service) != "running":
                progress(f"{service} is {target.process_state(service)}: redeploying it")
                target.redeploy([service])
        platform = target.platform()
        try:
            platform.store.delete([o.key for o in platform.store.list("") if o.key not in target.protected])
            for name in platform.cluster.client.snapshot.get_repository():
                platform.cluster.delete_repository(name)
            platform.cluster.delete_indices("*")
            platform.cluster.client.cluster.put_settings(transient={"indices.recovery.max_bytes_per_sec": None},
                                                         persistent={"cluster.max_shards_per_node": None})
            if platform.admin is not None:
                platform.db.recreate_database(platform.admin)
            platform.db.ensure_schema()
            if platform.repo_root is not None and platform.repo_root.exists():
                for child in platform.repo_root.iterdir():
                    shutil.rmtree(child, ignore_errors=True)
        finally:
            platform.close()

    def facts(self) -> dict[str, Any]:
        return {"stack_up_seconds": self.stack_up_s, "versions": self.versions,
                "stack": self.stack_name}
