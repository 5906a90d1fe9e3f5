"""The ``containers`` target's stack: Elasticsearch, MinIO and PostgreSQL as containers on a
Docker engine, started with testcontainers.

One container per service on a user-defined network, ports published on 127.0.0.1 only, data
on named volumes; everything labelled with the stack's name (:data:`LABEL_STACK`) so that
``down`` removes exactly it, also after a crash. The disaster is real: the Elasticsearch and
PostgreSQL containers are killed and their volumes removed; a redeployment is new containers
from the same images, at the same addresses with the same credentials.

Elasticsearch's snapshot repository is a host directory bind-mounted at the same path inside
the container (the integ-test-zip has no repository-s3): snapshots are copied between it and
MinIO, the store of record, exactly as on the local target.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drdrill.adapters.docker_engine import LABEL_SERVICE, LABEL_STACK, DockerEngine
from drdrill.adapters.platform import Endpoints
from drdrill.adapters.postgres import PgConn
from drdrill.adapters.toxiproxy import STORE_PROXY, Toxic, Toxiproxy
from drdrill.errors import EngineMissing, StackError, UsageError
from drdrill.host.readiness import wait_for
from drdrill.host.tools import require_module
from drdrill.host.users import current_user, ensure_service_user
from drdrill.provision.images import PG_MAJOR, ImageBuilder
from drdrill.provision.postgres import find_pg_bindir
from drdrill.settings import ContainerImages, Paths, StackSettings
from drdrill.targets.base import DiskUsage
from drdrill.targets.containers import es_nodes
from drdrill.targets.containers.launch import failed_log, first_exit, image_facts, run_container
from drdrill.targets.containers.specs import (
    CONTAINERS,
    DATA_PATHS,
    SERVICES,
    ContainerSpec,
    container_name,
    container_specs,
    volume_name,
)
from drdrill.targets.services import (
    elasticsearch_version,
    ensure_bucket,
    ensure_platform_database,
    probe_es_cluster,
    probe_minio,
    probe_postgres,
)
from drdrill.targets.workdir import PG_ADMIN_USER, StackWorkdir, free_port, write_private_json

log = logging.getLogger(__name__)

def _admin(ep: Endpoints) -> PgConn:
    return PgConn(ep.pg_host, ep.pg_port, "postgres", ep.pg_admin_user, ep.pg_admin_password)


class ContainerStack(StackWorkdir):
    """The three services as containers. The constructor does no I/O."""

    name = "containers"

    def __init__(self, paths: Paths, settings: StackSettings, *, stack_name: str = "default",
                 images: ContainerImages | None = None, engine: DockerEngine | None = None) -> None:
        super().__init__(paths, settings, stack_name=stack_name)
        require_module("testcontainers", "containers", "the containers target starts its services with testcontainers")
        self.images = images or ContainerImages()
        self.engine = engine or DockerEngine(paths.state_dir, paths.cache_dir)
        self.built: dict[str, Any] = {}  # image facts of this run (build times, ids)

    def _connect(self, state: dict[str, Any] | None, *, may_start: bool = False) -> None:
        """The engine this stack's containers run on (its state file says which), else any."""
        prefer = (state or {}).get("engine")
        try:
            self.engine.ensure(may_start=may_start, prefer=prefer)
        except EngineMissing:
            if may_start or prefer != self.engine.own_host:
                raise
            # drdrill's own engine stopped since (a reboot): start it again on its data.
            self.engine.ensure(may_start=True, prefer=prefer)

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_STACK: self.stack_name}

    @property
    def repo_root(self) -> Path:
        return self.workdir / "elasticsearch" / "repo"

    def _es_uid(self) -> int:
        user = ensure_service_user(self.paths.cache_dir) or current_user()
        return user.uid

    def provision(self, es_version: str | None = None) -> dict[str, str]:
        """The image of each service: the ones the settings name, else drdrill's own builds
        (made once per machine and inputs)."""
        self.engine.ensure()
        version = es_version or self.settings.es_version
        named = self.images.named()
        if es_version is not None and es_version != self.settings.es_version and "elasticsearch" in named:
            raise UsageError(f"Elasticsearch {es_version} was asked for, but [containers] elasticsearch_image names "
                             f"{named['elasticsearch']}: drdrill cannot tell which version that image runs",
                             hint="drop elasticsearch_image for drills that change the Elasticsearch version")
        builder = ImageBuilder(self.engine, self.paths.cache_dir)
        if len(named) < len(SERVICES):
            built = builder.ensure(version, self.settings.minio_version)
        else:  # only the proxy is drdrill's own
            built = {"toxiproxy": builder.ensure_toxiproxy()}
        self.built = {k: {"tag": v.tag, "id": v.id, "built": v.built, "seconds": round(v.seconds, 1)}
                      for k, v in built.items()}
        own = {"elasticsearch": f"drdrill/elasticsearch:{version}", "postgres": f"drdrill/postgres:{PG_MAJOR}",
               "minio": f"drdrill/minio:{self.settings.minio_version}"}
        return {service: named.get(service) or own[service] for service in SERVICES} | \
            {"toxiproxy": built["toxiproxy"].tag}

    # --- lifecycle ---------------------------------------------------------------------

    def up(self) -> Endpoints:
        with self._locked():
            state = self._read_state()
            if state and "endpoints" in state:
                if all(self._probe(s, state)[0] for s in SERVICES):
                    log.info("stack %s is already up", self.stack_name)
                    return Endpoints.from_dict(state["endpoints"])
                log.warning("stack %s is half up from an earlier run: removing it first", self.stack_name)
                self._remove_all()
            started = time.monotonic()
            images = self.provision()
            state = self._new_state(images)
            write_private_json(self.state_path, state)
            try:
                self.engine.ensure_network(self._network, self.labels)
                self._start(list(CONTAINERS), state)
            except BaseException:
                # Nothing drdrill started may outlive a failed up (Ctrl-C too); a failing clean-up
                # must not hide why up failed.
                try:
                    self._remove_all()
                except Exception as cleanup:
                    log.warning("could not remove stack %s after the failed start: %s", self.stack_name, cleanup)
                self.state_path.unlink(missing_ok=True)
                self.engine.stop()  # only if this object started it
                raise
            log.info("stack %s up in %.1fs (containers on %s)", self.stack_name, time.monotonic() - started,
                     self.engine.info.host if self.engine.info else "?")
            return Endpoints.from_dict(state["endpoints"])

    @property
    def _network(self) -> str:
        return f"drdrill-{self.stack_name}"

    def _new_state(self, images: dict[str, str]) -> dict[str, Any]:
        endpoints = Endpoints(
            elasticsearch_url="", s3_endpoint="", s3_access_key="drdrill-" + secrets.token_hex(6),
            s3_secret_key=secrets.token_urlsafe(24), bucket=self.settings.bucket, pg_host="127.0.0.1", pg_port=0,
            pg_database=self.settings.database, pg_user=self.settings.db_user,
            pg_password=secrets.token_urlsafe(24), pg_admin_user=PG_ADMIN_USER,
            pg_admin_password=secrets.token_urlsafe(24), es_repo_root=self.repo_root)
        nodes = self.settings.elasticsearch_nodes
        ports: dict[str, Any] = {service: free_port() for service in CONTAINERS}
        if nodes > 1:  # node 0's port is the service's (elasticsearch_url)
            ports["elasticsearch_nodes"] = [ports["elasticsearch"]] + [free_port() for _ in range(nodes - 1)]
            # What holds the nodes' network: drdrill's pause image (else any with bash, see es_nodes).
            if self.built.get("pause"):
                images = images | {"pause": self.built["pause"]["tag"]}
        data = endpoints.to_dict() | {
            "elasticsearch_url": f"http://127.0.0.1:{ports['elasticsearch']}",
            "s3_endpoint": f"http://127.0.0.1:{ports['minio']}", "pg_port": ports["postgres"]}
        state = {"stack": self.stack_name, "kind": "containers",
                 "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                 "settings": {"es_version": self.settings.es_version, "minio_version": self.settings.minio_version,
                              "elasticsearch_nodes": nodes, "es_heap_mb": self.settings.es_heap_mb},
                 "engine": self.engine.info.host if self.engine.info else None,
                 "images": images, "ports": ports, "endpoints": data}
        data["elasticsearch_nodes"] = es_nodes.node_urls(state)
        return state

    def _prepare_repo(self, uid: int) -> None:
        shutil.rmtree(self.repo_root.parent, ignore_errors=True)
        self.repo_root.mkdir(parents=True)
        for path in (self.repo_root.parent, self.repo_root):
            if os.geteuid() == 0:
                os.chown(path, uid, 0)
            os.chmod(path, 0o770)

    def _start(self, services: list[str], state: dict[str, Any]) -> None:
        uid = self._es_uid()
        nodes = es_nodes.node_count(state)
        specs = container_specs(self.stack_name, state, uid, self.settings.es_heap_mb)
        if nodes > 1:
            specs = {k: v for k, v in specs.items() if k != "elasticsearch"} | \
                es_nodes.cluster_specs(self.stack_name, state, uid, self.settings.es_heap_mb)
        if "elasticsearch" in services and not self.repo_root.exists():
            self._prepare_repo(uid)
        for service in services:
            if service != "elasticsearch" or nodes == 1:
                self._run(container_name(self.stack_name, service), specs[service])
                continue
            sandbox = container_name(self.stack_name, es_nodes.SANDBOX)
            if self.engine.container_state(sandbox)[0] != "running":
                self.engine.kill_and_remove(sandbox)
                self._run(sandbox, specs[es_nodes.SANDBOX])
            for i in range(nodes):  # all started before any is waited for: they form their cluster
                self._run(es_nodes.node_container(self.stack_name, i), specs[es_nodes.node_key(i)])
        endpoints = Endpoints.from_dict(state["endpoints"])
        # The proxy first: MinIO's readiness is probed through it.
        for service in sorted(services, key=lambda s: s != "toxiproxy"):
            names = es_nodes.matching(self.stack_name, state, service)
            # N JVMs starting at once share the cores: the cluster's wait grows with its nodes.
            waited = wait_for(
                service, functools.partial(self._probe, service, state),
                timeout_s=self.settings.ready_timeout_s * len(names),
                log_tail=functools.partial(failed_log, self.engine, names),
                exited=functools.partial(first_exit, self.engine, names), hint=f"see `docker logs {names[0]}`")
            log.info("%s ready (%.1fs)", service if len(names) == 1 else f"{service} ({len(names)} nodes)", waited)
            endpoints.versions.update(self._after_ready(service, endpoints, state))
        state["endpoints"] = endpoints.to_dict()
        write_private_json(self.state_path, state)

    def _run(self, name: str, spec: ContainerSpec) -> None:
        run_container(name, spec, labels=self.labels | {LABEL_SERVICE: spec.service}, network=self._network,
                      engine=self.engine)

    def toxiproxy(self, state: dict[str, Any] | None = None) -> Toxiproxy:
        ports = (state or self._state_of_up_stack())["ports"]
        return Toxiproxy(f"http://127.0.0.1:{ports['toxiproxy']}")

    def _after_ready(self, service: str, ep: Endpoints, state: dict[str, Any]) -> dict[str, str]:
        if service == "toxiproxy":
            self.toxiproxy(state).ensure_proxy(STORE_PROXY, "0.0.0.0:9000",  # inside the container
                                               f"{container_name(self.stack_name, 'minio')}:9000")
            return {}
        if service == "elasticsearch":
            return {"elasticsearch": elasticsearch_version(ep.elasticsearch_url)}
        if service == "minio":
            ensure_bucket(ep.s3_endpoint, ep.s3_access_key, ep.s3_secret_key, ep.bucket)
            return {"minio": self.settings.minio_version}
        return ensure_platform_database(_admin(ep), ep.pg_database, ep.pg_user, ep.pg_password, find_pg_bindir())

    def _probe(self, service: str, state: dict[str, Any]) -> tuple[bool, str]:
        ep = Endpoints.from_dict(state["endpoints"])
        for name in es_nodes.matching(self.stack_name, state, service):
            status, _code = self.engine.container_state(name)
            if status != "running":
                return False, f"container {name} {status}"
        if service.startswith("elasticsearch"):  # the cluster, all its nodes joined
            url = ep.elasticsearch_url
            if service != "elasticsearch":  # one node: asked at its own address
                url = dict(zip(es_nodes.es_containers(self.stack_name, state), ep.elasticsearch_nodes,
                               strict=True))[service]
            return probe_es_cluster(url, es_nodes.node_count(state))
        if service == "minio":
            return probe_minio(ep.s3_endpoint)
        if service == "toxiproxy":
            return self.toxiproxy(state).probe()
        return probe_postgres(_admin(ep))

    # --- disaster and redeployment ---------------------------------------------------------

    def destroy(self, services: list[str]) -> list[str]:
        """The disaster: the containers killed (no grace) and their volumes removed; for
        Elasticsearch also its repository directory (the node's own disk)."""
        with self._locked():
            state = self._state_of_up_stack()
            self._connect(state)
            for service in services:
                self._remove(service, state, wipe=True)
                for name in es_nodes.matching(self.stack_name, state, service):
                    if self.engine.container(name) is not None:
                        raise StackError(f"container {name} survived removal: the disaster did not happen")
            return list(services)

    def _remove(self, service: str, state: dict[str, Any], *, wipe: bool) -> None:
        """The service's containers gone (every node's; SIGKILL, no grace); with ``wipe`` their
        data too: the volumes, and for Elasticsearch its repository directory (the nodes' disk)."""
        for name in es_nodes.matching(self.stack_name, state, service):
            self.engine.kill_and_remove(name)
        if wipe:
            volumes = es_nodes.es_volumes(self.stack_name, state) if service == "elasticsearch" else \
                [volume_name(self.stack_name, service)]
            for volume in volumes:
                self.engine.remove_volume(volume)
            if service == "elasticsearch":
                shutil.rmtree(self.repo_root.parent, ignore_errors=True)

    def redeploy(self, services: list[str], *, wipe: bool = True, es_version: str | None = None,
                 es_data_limit_mb: int | None = None) -> Endpoints:
        """New containers from the same images (or another Elasticsearch version), at the same
        addresses with the same credentials; ``wipe=False`` keeps their volumes (a restart);
        ``es_data_limit_mb`` puts Elasticsearch's data on a disk of that size."""
        with self._locked():
            state = self._state_of_up_stack()
            self._connect(state)
            if "elasticsearch" in services:
                state["es_data_limit_mb"] = es_data_limit_mb
            if es_version is not None and "elasticsearch" in services:
                state["images"]["elasticsearch"] = self.provision(es_version)["elasticsearch"]
                state["settings"]["es_version"] = es_version
            for service in services:
                self._remove(service, state, wipe=wipe)
            self._start(services, state)
            return Endpoints.from_dict(state["endpoints"])

    def restart_node(self, node: str) -> float:
        """One node's container crashes (SIGKILL) and is started again at once on its own volume,
        as a supervisor would (a node restarted mid-recovery); waited for until it has rejoined
        its cluster. Returns the seconds from the kill until it had rejoined."""
        key = f"elasticsearch/{node}"
        with self._locked():
            state = self._state_of_up_stack()
            names = es_nodes.matching(self.stack_name, state, key)
            container = self.engine.container(names[0]) if names else None
            if container is None:
                raise StackError(f"no Elasticsearch node {node!r} in stack {self.stack_name!r}")
            killed_at = time.monotonic()
            container.kill()  # SIGKILL: a crash, not a shutdown
            container.wait()  # gone before it starts again (start on a running container does nothing)
            container.start()
        wait_for(key, functools.partial(self._probe, key, state), timeout_s=self.settings.ready_timeout_s,
                 log_tail=functools.partial(failed_log, self.engine, names),
                 exited=functools.partial(first_exit, self.engine, names), hint=f"see `docker logs {names[0]}`")
        return time.monotonic() - killed_at

    def rotate_minio_secret(self) -> None:
        """MinIO restarts on its data with a root secret nobody holds (the recorded credentials
        stay the platform's, now stale); :meth:`redeploy` of ``minio`` puts them back."""
        with self._locked():
            state = self._state_of_up_stack()
            rotated = {**state, "endpoints": {**state["endpoints"], "s3_secret_key": secrets.token_urlsafe(24)}}
            self._remove("minio", state, wipe=False)
            self._start(["minio"], rotated)
            write_private_json(self.state_path, state)  # the platform's credentials stay recorded

    def redeploy_hooks(self, services: list[str]) -> None:
        state = self._state_of_up_stack()
        ep = Endpoints.from_dict(state["endpoints"])
        for service in services:
            self._after_ready(service, ep, state)

    def _containers(self) -> dict[str, str]:
        return es_nodes.all_containers(self.stack_name, self._read_state() or {}, CONTAINERS)

    def log_tails(self, lines: int = 200) -> dict[str, str]:
        return {key: self.engine.logs(name, lines) for key, name in self._containers().items()}

    def _matching(self, service: str) -> list[str]:
        """``elasticsearch`` means all its nodes; ``elasticsearch/drdrill-es-1`` one of them."""
        return es_nodes.matching(self.stack_name, self._read_state() or {}, service)

    def signal_service(self, service: str, signum: int) -> None:
        """SIGSTOP / SIGCONT pause and resume the containers (the cgroup freezer: every process
        in them); SIGKILL kills them. ``elasticsearch`` is every node, ``elasticsearch/<node>`` one."""
        found = [(n, c) for n in self._matching(service) if (c := self.engine.container(n)) is not None]
        if not found:
            raise StackError(f"no {service} in stack {self.stack_name!r}")
        for name, container in found:
            if signum == signal.SIGSTOP:
                self.engine.pause(name)
            elif signum == signal.SIGCONT:
                self.engine.unpause(name)
            else:
                container.kill(signal=signum)

    def process_state(self, service: str) -> str:
        """running / stopped (paused) / not running, as the local target says it; a container
        the kernel OOM-killed says so. Of several nodes, the worst: one node gone makes the
        service "not running" (what undo_faults restarts)."""
        states = [self._container_state(name) for name in self._matching(service)]
        for worst in ("not running", "stopped"):
            found = next((s for s in states if s.startswith(worst)), None)
            if found:
                return found
        return "running" if states else "not running"

    def _container_state(self, name: str) -> str:
        status, code = self.engine.container_state(name)
        if status in ("running", "paused"):
            return {"running": "running", "paused": "stopped (paused)"}[status]
        oom = self.engine.oom_killed(name) if status != "missing" else None
        if oom:
            return f"not running ({oom})"
        return "not running" if code is None else f"not running (exited with status {code})"

    def data_disk(self, service: str) -> DiskUsage | None:
        """``df`` of the service's data path, inside its (first node's) container (None: not running)."""
        name = self._matching(service)[0]
        if self.engine.container_state(name)[0] != "running":
            return None
        code, out = self.engine.exec(name, ["df", "-Pk", DATA_PATHS[service]])
        fields = out.strip().splitlines()[-1].split() if code == 0 and out.strip() else []
        if len(fields) < 6 or not (fields[1].isdigit() and fields[3].isdigit()):
            return None
        return DiskUsage(f"{DATA_PATHS[service]} in container {name}", int(fields[1]) * 1024, int(fields[3]) * 1024)

    # --- faults only containers can make ------------------------------------------------------

    def slow_store(self, toxics: list[Toxic]) -> None:
        proxy = self.toxiproxy()
        for toxic in toxics:
            proxy.add(toxic)

    def heal_store_network(self) -> None:
        """No toxics, MinIO back on the network."""
        self.toxiproxy().clear()
        minio = container_name(self.stack_name, "minio")
        if self.engine.container(minio) is not None and self._network not in self.engine.networks_of(minio):
            self.engine.connect(self._network, minio)

    def partition_store(self) -> None:
        """MinIO leaves the network: nothing reaches it (its process runs on, as behind a cut link)."""
        self.engine.disconnect(self._network, container_name(self.stack_name, "minio"))

    def oom_kill(self, service: str) -> None:
        """The container's memory runs out: the kernel's OOM killer ends its largest process."""
        limit = self.engine.exhaust_memory(self._matching(service)[0])
        log.info("%s's memory cgroup filled to its limit (%d MiB)", service, limit // 2**20)

    def fill_disk(self, size_mb: int = 256) -> str:
        """A real full disk: Elasticsearch redeployed with its data on a ``size_mb`` filesystem,
        which ``dd`` inside the container then fills to the last block. Returns what ``df``
        says of it."""
        self.redeploy(["elasticsearch"], es_data_limit_mb=size_mb)
        path = DATA_PATHS["elasticsearch"]
        filler = f"{path}/drdrill-disk-filler"
        _code, out = self.engine.exec(self._matching("elasticsearch")[0],
                                      ["sh", "-c", f"dd if=/dev/zero of={filler} bs=1M count={size_mb} 2>&1; "
                                                   f"df -k {path} | tail -1"])
        if "No space left on device" not in out:
            raise StackError(f"filling Elasticsearch's disk did not fill it: {out.strip()[-200:]}")
        return out.strip().splitlines()[-1]

    def _remove_all(self) -> list[str]:
        removed = self.engine.remove_labelled(self.stack_name)
        return [c.removeprefix(f"drdrill-{self.stack_name}-") for c in removed["containers"]]

    def down(self, *, purge: bool = False) -> list[str]:
        """Remove every container, network and volume labelled with this stack."""
        with self._locked():
            state = self._read_state()
            try:
                self._connect(state)
            except EngineMissing:
                if state:
                    raise  # containers may run there: the state must stay for a later `down`
                stopped = []  # never started anything: nothing to remove but the work directory
            else:
                stopped = self._remove_all()
            self.state_path.unlink(missing_ok=True)
        if purge and self.workdir.exists():
            shutil.rmtree(self.paths.check_stack_dir(self.workdir), ignore_errors=True)
        return stopped

    def status(self) -> dict[str, Any]:
        state = self._read_state()
        if not state:
            return {"stack": self.stack_name, "workdir": str(self.workdir), "up": False, "services": []}
        try:
            self.engine.ensure(may_start=False, prefer=state.get("engine"))  # status starts nothing
        except EngineMissing as exc:
            return {"stack": self.stack_name, "workdir": str(self.workdir), "up": False, "services": [],
                    "engine": state.get("engine"), "detail": exc.one_line()}
        rows = []
        node_ports = dict(zip(es_nodes.es_containers(self.stack_name, state),
                              state["ports"].get("elasticsearch_nodes") or [], strict=False))
        for key, name in self._containers().items():
            service = key.replace(".", "/")
            healthy, detail = self._probe(service, state)
            base = service.split("/")[0]
            rows.append({"service": service, "container": name, "image": state["images"][base],
                         "port": node_ports.get(service, state["ports"][base]),
                         "running": self.process_state(service) == "running", "healthy": healthy, "detail": detail})
        return {"stack": self.stack_name, "workdir": str(self.workdir), "kind": "containers",
                "up": all(r["healthy"] for r in rows), "created_at": state.get("created_at"),
                "engine": state.get("engine"), "images": state.get("images"),
                "versions": state["endpoints"].get("versions", {}), "services": rows,
                "settings": state.get("settings")}

    def started_settings(self) -> dict[str, Any]:
        """The settings the stack was started with (node count, heap), else today's."""
        state = self._read_state() or {}
        return state.get("settings") or {"elasticsearch_nodes": self.settings.elasticsearch_nodes,
                                         "es_heap_mb": self.settings.es_heap_mb}

    def image_facts(self) -> dict[str, Any]:
        """Which images ran, with their ids (digests of the local builds), for the report."""
        state = self._read_state() or {}
        try:
            self.engine.ensure(may_start=False, prefer=state.get("engine"))  # describing starts nothing
        except EngineMissing:
            return {}
        return image_facts(self.engine, state.get("images") or {})
