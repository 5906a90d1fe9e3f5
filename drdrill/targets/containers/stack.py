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
from drdrill.host.readiness import CAUSE_LINES, wait_for
from drdrill.host.tools import require_module
from drdrill.host.users import current_user, ensure_service_user
from drdrill.provision.images import PG_MAJOR, ImageBuilder
from drdrill.provision.postgres import find_pg_bindir
from drdrill.settings import ContainerImages, Paths, StackSettings
from drdrill.targets.base import DiskUsage
from drdrill.targets.containers.specs import (
    CONTAINERS,
    DATA_PATHS,
    SERVICES,
    container_name,
    container_specs,
    volume_name,
)
from drdrill.targets.services import (
    elasticsearch_version,
    ensure_bucket,
    ensure_platform_database,
    probe_elasticsearch,
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
        ports = {service: free_port() for service in CONTAINERS}
        data = endpoints.to_dict() | {
            "elasticsearch_url": f"http://127.0.0.1:{ports['elasticsearch']}",
            "s3_endpoint": f"http://127.0.0.1:{ports['minio']}", "pg_port": ports["postgres"]}
        return {"stack": self.stack_name, "kind": "containers",
                "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "settings": {"es_version": self.settings.es_version, "minio_version": self.settings.minio_version},
                "engine": self.engine.info.host if self.engine.info else None,
                "images": images, "ports": ports, "endpoints": data}

    def _prepare_repo(self, uid: int) -> None:
        shutil.rmtree(self.repo_root.parent, ignore_errors=True)
        self.repo_root.mkdir(parents=True)
        for path in (self.repo_root.parent, self.repo_root):
            if os.geteuid() == 0:
                os.chown(path, uid, 0)
            os.chmod(path, 0o770)

    def _start(self, services: list[str], state: dict[str, Any]) -> None:
        from testcontainers.core.container import DockerContainer

        uid = self._es_uid()
        specs = container_specs(self.stack_name, state, uid, self.settings.es_heap_mb)
        if "elasticsearch" in services and not self.repo_root.exists():
            self._prepare_repo(uid)
        for service in services:
            spec = specs[service]
            for volume in spec.volumes:
                if not volume.startswith("/"):
                    self.engine.create_volume(volume, self.labels | {LABEL_SERVICE: service})
            container = DockerContainer(spec.image, name=container_name(self.stack_name, service), env=spec.env)
            for inside, outside in spec.publish.items():
                # Loopback only: docker-py takes (address, port), testcontainers' typing an int.
                container.ports[f"{inside}/tcp"] = ("127.0.0.1", outside)  # type: ignore[assignment]
            for source, target in spec.volumes.items():
                container.with_volume_mapping(source, target, "rw")
            for path, options in spec.tmpfs.items():
                container.tmpfs[path] = options
            if spec.command:
                container.with_command(spec.command)
            container.with_kwargs(labels=self.labels | {LABEL_SERVICE: service}, network=self._network,
                                  user=spec.user, mem_limit=spec.mem_limit)
            container.start()
            container.get_docker_client().client.close()  # the container runs on; its client is done
        endpoints = Endpoints.from_dict(state["endpoints"])
        # The proxy first: MinIO's readiness is probed through it.
        for service in sorted(services, key=lambda s: s != "toxiproxy"):
            name = container_name(self.stack_name, service)
            waited = wait_for(
                service, functools.partial(self._probe, service, state), timeout_s=self.settings.ready_timeout_s,
                log_tail=functools.partial(self.engine.logs, name, CAUSE_LINES),  # the fatal error is far back
                exited=functools.partial(self._exit_code, name), hint=f"see `docker logs {name}`")
            log.info("%s ready (%.1fs)", service, waited)
            endpoints.versions.update(self._after_ready(service, endpoints, state))
        state["endpoints"] = endpoints.to_dict()
        write_private_json(self.state_path, state)

    def toxiproxy(self, state: dict[str, Any] | None = None) -> Toxiproxy:
        ports = (state or self._state_of_up_stack())["ports"]
        return Toxiproxy(f"http://127.0.0.1:{ports['toxiproxy']}")

    def _exit_code(self, name: str) -> int | None:
        return self.engine.container_state(name)[1]

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
        status, _code = self.engine.container_state(container_name(self.stack_name, service))
        if status != "running":
            return False, f"container {status}"
        if service == "elasticsearch":
            return probe_elasticsearch(ep.elasticsearch_url)
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
            self._connect(self._state_of_up_stack())
            for service in services:
                self._remove(service, wipe=True)
                name = container_name(self.stack_name, service)
                if self.engine.container(name) is not None:
                    raise StackError(f"container {name} survived removal: the disaster did not happen")
            return list(services)

    def _remove(self, service: str, *, wipe: bool) -> None:
        """The service's container gone (SIGKILL, no grace); with ``wipe`` its data too: the
        volume, and for Elasticsearch its repository directory (the node's own disk)."""
        self.engine.kill_and_remove(container_name(self.stack_name, service))
        if wipe:
            self.engine.remove_volume(volume_name(self.stack_name, service))
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
                self._remove(service, wipe=wipe)
            self._start(services, state)
            return Endpoints.from_dict(state["endpoints"])

    def rotate_minio_secret(self) -> None:
        """MinIO restarts on its data with a root secret nobody holds (the recorded credentials
        stay the platform's, now stale); :meth:`redeploy` of ``minio`` puts them back."""
        with self._locked():
            state = self._state_of_up_stack()
            rotated = {**state, "endpoints": {**state["endpoints"], "s3_secret_key": secrets.token_urlsafe(24)}}
            self._remove("minio", wipe=False)
            self._start(["minio"], rotated)
            write_private_json(self.state_path, state)  # the platform's credentials stay recorded

    def redeploy_hooks(self, services: list[str]) -> None:
        state = self._state_of_up_stack()
        ep = Endpoints.from_dict(state["endpoints"])
        for service in services:
            self._after_ready(service, ep, state)

    def log_tails(self, lines: int = 200) -> dict[str, str]:
        return {service: self.engine.logs(container_name(self.stack_name, service), lines) for service in CONTAINERS}

    def signal_service(self, service: str, signum: int) -> None:
        """SIGSTOP / SIGCONT pause and resume the container (the cgroup freezer: every process in
        it); SIGKILL kills it."""
        name = container_name(self.stack_name, service)
        if signum == signal.SIGSTOP:
            self.engine.pause(name)
        elif signum == signal.SIGCONT:
            self.engine.unpause(name)
        else:
            found = self.engine.container(name)
            if found is None:
                raise StackError(f"no {service} in stack {self.stack_name!r}")
            found.kill(signal=signum)

    def process_state(self, service: str) -> str:
        """running / stopped (paused) / not running, as the local target says it; a container
        the kernel OOM-killed says so."""
        name = container_name(self.stack_name, service)
        status, code = self.engine.container_state(name)
        if status in ("running", "paused"):
            return {"running": "running", "paused": "stopped (paused)"}[status]
        oom = self.engine.oom_killed(name) if status != "missing" else None
        if oom:
            return f"not running ({oom})"
        return "not running" if code is None else f"not running (exited with status {code})"

    def data_disk(self, service: str) -> DiskUsage | None:
        """``df`` of the service's data path, inside its container (None: not running)."""
        name = container_name(self.stack_name, service)
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
        limit = self.engine.exhaust_memory(container_name(self.stack_name, service))
        log.info("%s's memory cgroup filled to its limit (%d MiB)", service, limit // 2**20)

    def fill_disk(self, size_mb: int = 256) -> str:
        """A real full disk: Elasticsearch redeployed with its data on a ``size_mb`` filesystem,
        which ``dd`` inside the container then fills to the last block. Returns what ``df``
        says of it."""
        self.redeploy(["elasticsearch"], es_data_limit_mb=size_mb)
        path = DATA_PATHS["elasticsearch"]
        filler = f"{path}/drdrill-disk-filler"
        _code, out = self.engine.exec(container_name(self.stack_name, "elasticsearch"),
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
        for service in CONTAINERS:
            name = container_name(self.stack_name, service)
            healthy, detail = self._probe(service, state)
            rows.append({"service": service, "container": name, "image": state["images"][service],
                         "port": state["ports"][service], "running": self.process_state(service) == "running",
                         "healthy": healthy, "detail": detail})
        return {"stack": self.stack_name, "workdir": str(self.workdir), "kind": "containers",
                "up": all(r["healthy"] for r in rows), "created_at": state.get("created_at"),
                "engine": state.get("engine"), "images": state.get("images"),
                "versions": state["endpoints"].get("versions", {}), "services": rows}

    def image_facts(self) -> dict[str, Any]:
        """Which images ran, with their ids (digests of the local builds), for the report."""
        state = self._read_state() or {}
        try:
            self.engine.ensure(may_start=False, prefer=state.get("engine"))  # describing starts nothing
        except EngineMissing:
            return {}
        facts = {}
        for service, tag in (state.get("images") or {}).items():
            found = self.engine.image(tag)
            facts[service] = {"image": tag, "id": found.id if found else None,
                              "inputs": found.inputs if found else None}
        return facts
