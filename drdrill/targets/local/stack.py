"""The ``local`` target: provision, start, inspect and stop the three services.

All state of one stack lives in one work directory: service data and logs, and
``stack.json`` (mode 0600: it holds the generated credentials) recording every process
started, written as soon as each starts so that ``down`` can stop them even after the
harness crashed half-way through ``up``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drdrill.adapters.platform import Endpoints
from drdrill.adapters.postgres import PgConn
from drdrill.errors import ServiceNotReady, StackError, StackNotUp
from drdrill.host import process
from drdrill.host.fatal import bind_port
from drdrill.host.readiness import wait_until_ready
from drdrill.host.tools import tail_text
from drdrill.host.users import ServiceUser, ensure_service_user
from drdrill.provision.elasticsearch import ensure_elasticsearch
from drdrill.provision.java import JavaRuntime, find_java
from drdrill.provision.minio import ensure_minio
from drdrill.provision.postgres import ensure_postgres
from drdrill.settings import es_major
from drdrill.targets.base import DiskUsage
from drdrill.targets.services import (
    ElasticsearchService,
    LocalService,
    MinioService,
    PostgresService,
    probe_es_cluster,
    probe_minio,
    probe_postgres,
)
from drdrill.targets.workdir import PG_ADMIN_USER, StackWorkdir, free_port, write_private_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provisioned:
    es_home: Path
    java: JavaRuntime
    minio_binary: Path
    pg_bindir: Path
    user: ServiceUser | None


class LocalStack(StackWorkdir):
    """Real Elasticsearch, MinIO and PostgreSQL on loopback. The constructor does no I/O."""

    name = "local"

    def _records(self, state: dict[str, Any] | None) -> list[process.ProcessRecord]:
        if not state:
            return []
        return [process.ProcessRecord.from_dict(r) for r in state.get("processes", [])]

    # --- provisioning ------------------------------------------------------------------

    def provision(self, es_version: str | None = None) -> Provisioned:
        """Fetch/build everything once per machine; later calls find it in the cache."""
        cache = self.paths.cache_dir
        cache.mkdir(parents=True, exist_ok=True)
        os.chmod(cache, 0o755)
        version = es_version or self.settings.es_version
        user = ensure_service_user(cache)
        pg_bindir = ensure_postgres(cache)
        es_home = ensure_elasticsearch(cache, version)
        java = find_java(es_major(version), cache)
        minio = ensure_minio(cache, self.settings.minio_version)
        return Provisioned(es_home, java, minio, pg_bindir, user)

    # --- lifecycle ---------------------------------------------------------------------

    def up(self) -> Endpoints:
        with self._locked():
            state = self._read_state()
            if state and any(process.is_running(r) for r in self._records(state)):
                if self._all_healthy(state):
                    log.info("stack %s is already up", self.stack_name)
                    return Endpoints.from_dict(state["endpoints"])
                log.warning("stack %s is half up from an earlier run: stopping it first", self.stack_name)
                self._stop_all(state)
            started = time.monotonic()
            prov = self.provision()
            try:
                endpoints = self._start(prov)
            except ServiceNotReady as exc:
                # A port drawn free was taken before the service bound it: nothing points at a
                # fresh stack's ports yet, so draw new ones once. Any other cause is final.
                if not exc.cause or bind_port(exc.cause) is None:
                    raise
                log.warning("%s; starting the stack again on other ports", exc)
                endpoints = self._start(prov)
            log.info("stack %s up in %.1fs (work dir %s)", self.stack_name, time.monotonic() - started, self.workdir)
            return endpoints

    def _build_services(self, prov: Provisioned, previous: dict[str, Any] | None = None) -> list[LocalService]:
        """Elasticsearch's nodes, MinIO and PostgreSQL with fresh ports and credentials, or
        (``previous`` state) the same ones again: a redeployed service must be reachable where
        clients already point."""
        ports: dict[str, dict[str, Any]] = {}
        ep: Endpoints | None = None
        if previous:
            ports = {k: v for k, v in previous.get("services", {}).items()}
            ep = Endpoints.from_dict(previous["endpoints"])

        def port(service: str, key: str = "port") -> int:
            known = ports.get(service, {}).get(key)
            return int(known) if known else free_port()

        known_nodes = ports.get("elasticsearch", {}).get("nodes") or []
        # A stack keeps the node count it was started with (its state says), not today's setting.
        count = len(known_nodes) or (1 if previous else self.settings.elasticsearch_nodes)
        if known_nodes:
            http = [int(n["port"]) for n in known_nodes]
            transport = [int(n["transport_port"]) for n in known_nodes]
        else:
            http = [port("elasticsearch")] + [free_port() for _ in range(count - 1)]
            transport = [port("elasticsearch", "transport_port")] + [free_port() for _ in range(count - 1)]
        nodes: list[LocalService] = [
            ElasticsearchService(
                self.workdir, http[i], prov.user, home=prov.es_home, java=prov.java, transport_port=transport[i],
                heap_mb=self.settings.es_heap_mb, cluster_name=f"drdrill-{self.stack_name}"[:60], index=i,
                transport_ports=transport)
            for i in range(count)]
        minio = MinioService(
            self.workdir, port("minio"), prov.user, binary=prov.minio_binary, version=self.settings.minio_version,
            access_key=ep.s3_access_key if ep else "drdrill-" + secrets.token_hex(6),
            secret_key=ep.s3_secret_key if ep else secrets.token_urlsafe(24), bucket=self.settings.bucket,
        )
        pg = PostgresService(
            self.workdir, port("postgres"), prov.user, bindir=prov.pg_bindir, admin_user=PG_ADMIN_USER,
            admin_password=ep.pg_admin_password if ep else secrets.token_urlsafe(24),
            database=self.settings.database, db_user=self.settings.db_user,
            db_password=ep.pg_password if ep else secrets.token_urlsafe(24),
        )
        return [*nodes, minio, pg]

    def _start(self, prov: Provisioned) -> Endpoints:
        services = self._build_services(prov)
        es_nodes = [svc for svc in services if isinstance(svc, ElasticsearchService)]
        es = es_nodes[0]
        minio = next(svc for svc in services if isinstance(svc, MinioService))
        pg = next(svc for svc in services if isinstance(svc, PostgresService))
        if es.nodes > 1:  # a fresh cluster: nothing of an earlier one (its nodes, their repo)
            shutil.rmtree(es.service_root, ignore_errors=True)
        state: dict[str, Any] = {
            "stack": self.stack_name,
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "settings": {"es_version": self.settings.es_version, "minio_version": self.settings.minio_version,
                         "java": f"{prov.java.major} ({prov.java.source})", "elasticsearch_nodes": es.nodes,
                         "es_heap_mb": self.settings.es_heap_mb},
            "processes": [],
            "services": {},
        }
        records: list[process.ProcessRecord] = []
        popens = {}
        try:
            for svc in services:
                svc.prepare()
            # Start everything before waiting on any: Elasticsearch's JVM start dominates, and the
            # others come up meanwhile (its nodes must all be starting to form their cluster).
            for svc in services:
                popens[_key(svc)] = self._launch(svc, prov.user, state, records)
            versions: dict[str, str] = {}
            for svc in services:
                versions.update(self._await_ready(svc, popens[_key(svc)]))
        except BaseException:
            # Whatever went wrong (including Ctrl-C), nothing we started may outlive us; its logs
            # stay in the work directory (log_tails finds them without the state) to explain it.
            self._stop_all(state)
            raise
        endpoints = Endpoints(
            elasticsearch_url=es.url, s3_endpoint=minio.url, s3_access_key=minio.access_key,
            s3_secret_key=minio.secret_key, bucket=minio.bucket, pg_host="127.0.0.1", pg_port=pg.port,
            pg_database=pg.database, pg_user=pg.db_user, pg_password=pg.db_password,
            pg_admin_user=pg.admin_user, pg_admin_password=pg.admin_password, es_repo_root=es.repo_root,
            versions=versions, elasticsearch_nodes=[n.url for n in es_nodes] if len(es_nodes) > 1 else [],
        )
        state["endpoints"] = endpoints.to_dict()
        state["service_user"] = prov.user.name if prov.user else None
        write_private_json(self.state_path, state)
        return endpoints

    def _launch(self, svc: LocalService, user: ServiceUser | None, state: dict[str, Any],
                records: list[process.ProcessRecord]) -> subprocess.Popen[bytes]:
        """Start one service and record it in the state file at once, so that a crash of the
        harness right after this still leaves ``down`` able to stop it."""
        argv, env = svc.command()
        popen, record = process.spawn(svc.name, argv, env=env, cwd=svc.root, log_path=svc.log_path,
                                      user=user, stop_signal=svc.stop_signal, node=svc.node)
        records.append(record)
        state["processes"] = [r.to_dict() for r in records]
        services = state.setdefault("services", {})
        if svc.node:  # one node of several: the first node's ports stand for the service
            info = services.setdefault(svc.name, {})
            nodes = [n for n in info.get("nodes", []) if n["node"] != svc.node]
            info["nodes"] = sorted([*nodes, {"node": svc.node, **self._service_info(svc)}], key=lambda n: n["node"])
            info.update({k: v for k, v in info["nodes"][0].items() if k != "node"})
        else:
            services[svc.name] = self._service_info(svc)
        write_private_json(self.state_path, state)
        return popen

    def _await_ready(self, svc: LocalService, popen: subprocess.Popen[bytes]) -> dict[str, str]:
        # N JVMs starting at once share the cores: the cluster's wait grows with its nodes (a
        # 3-node start took up to 2-4x a single node's on a busy 2-core machine).
        nodes = svc.nodes if isinstance(svc, ElasticsearchService) else 1
        waited = wait_until_ready(_key(svc), svc.probe, timeout_s=self.settings.ready_timeout_s * nodes,
                                  log_path=svc.log_path, exited=popen.poll)
        log.info("%s ready on 127.0.0.1:%d (%.1fs)", _key(svc), svc.port, waited)
        return svc.after_ready()

    @staticmethod
    def _service_info(svc: LocalService) -> dict[str, Any]:
        info: dict[str, Any] = {"port": svc.port, "log": str(svc.log_path)}
        if isinstance(svc, ElasticsearchService):
            info["transport_port"] = svc.transport_port
        return info

    # --- disaster and redeployment (drills) ----------------------------------------------

    def destroy(self, services: list[str]) -> list[str]:
        """The disaster: kill the services outright and delete their data (site loss). MinIO,
        the off-site backup store, is never in ``services`` for a site-loss drill."""
        with self._locked():
            state = self._read_state()
            if not state:
                raise StackNotUp(f"stack {self.stack_name!r} is not up", hint="run `drdrill stack up` first")
            destroyed: list[str] = []
            for record in self._records(state):
                if record.service in services:
                    process.kill(record)  # no grace period: a crash, not a shutdown
                    if process.members(record):
                        raise StackError(f"{record.key} survived SIGKILL: the disaster did not happen")
                    shutil.rmtree(self.workdir / record.service, ignore_errors=True)
                    if record.service not in destroyed:
                        destroyed.append(record.service)
            return destroyed

    def redeploy(self, services: list[str], *, wipe: bool = True, es_version: str | None = None) -> Endpoints:
        """Runbook steps 1-2: deploy fresh, empty services at the same addresses with the same
        credentials, and wait until they are ready. ``wipe=False`` restarts them on their data;
        ``es_version`` deploys another Elasticsearch (an upgrade on the way back)."""
        with self._locked():
            state = self._state_of_up_stack()
            prov = self.provision(es_version)
            if es_version is not None and "elasticsearch" in services:
                state.setdefault("settings", {})["es_version"] = es_version
            chosen = [svc for svc in self._build_services(prov, state) if svc.name in services]
            records = [r for r in self._records(state) if r.service not in services]
            popens = {}
            # Every process of a chosen service stops before any starts again: a node still
            # shutting down holds its ports and its data path's node.lock.
            process.stop_together([r for r in self._records(state) if r.service in services],
                                  self.settings.stop_timeout_s)
            for svc in chosen:
                if isinstance(svc, ElasticsearchService) and svc.nodes > 1 and svc.index == 0 and wipe:
                    shutil.rmtree(svc.service_root, ignore_errors=True)
                if wipe or not svc.root.exists():
                    svc.prepare()
                popens[_key(svc)] = self._launch(svc, prov.user, state, records)
            endpoints = Endpoints.from_dict(state["endpoints"])
            for svc in chosen:
                endpoints.versions.update(self._await_ready(svc, popens[_key(svc)]))
            state["endpoints"] = endpoints.to_dict()
            write_private_json(self.state_path, state)
            return endpoints

    def restart_node(self, node: str) -> float:
        """One Elasticsearch node crashes and its supervisor starts it again at once, on its own
        data (a node restarted mid-recovery): killed outright, relaunched, waited for until it
        has rejoined its cluster. Returns the seconds from the kill until it had rejoined."""
        with self._locked():
            state = self._state_of_up_stack()
            prov = self.provision()
            svc = next((s for s in self._build_services(prov, state)
                        if isinstance(s, ElasticsearchService) and s.node == node), None)
            if svc is None:
                raise StackError(f"no Elasticsearch node {node!r} in stack {self.stack_name!r}")
            killed_at = time.monotonic()
            for record in self._matching(f"elasticsearch/{node}"):
                process.kill(record)
            records = [r for r in self._records(state) if not (r.service == svc.name and r.node == node)]
            popen = self._launch(svc, prov.user, state, records)
        self._await_ready(svc, popen)  # not under the lock: a drill's other calls go on meanwhile
        return time.monotonic() - killed_at

    def rotate_minio_secret(self) -> None:
        """A real credential rotation that every client sees: MinIO restarts on its data with a
        root secret nobody holds. The recorded credentials stay the platform's (now stale)
        ones; :meth:`redeploy` of ``minio`` puts them back."""
        with self._locked():
            state = self._state_of_up_stack()
            prov = self.provision()
            minio = next(svc for svc in self._build_services(prov, state) if isinstance(svc, MinioService))
            minio.secret_key = secrets.token_urlsafe(24)
            for old in self._records(state):
                if old.service == minio.name:
                    process.stop(old, self.settings.stop_timeout_s)
            records = [r for r in self._records(state) if r.service != minio.name]
            popen = self._launch(minio, prov.user, state, records)
            self._await_ready(minio, popen)

    def redeploy_hooks(self, services: list[str]) -> None:
        """Re-run the services' idempotent set-up (role, password, bucket) without restarting."""
        state = self._state_of_up_stack()
        for svc in self._build_services(self.provision(), state):
            if svc.name in services and not (isinstance(svc, ElasticsearchService) and svc.index):
                svc.after_ready()

    def log_tails(self, lines: int = 200) -> dict[str, str]:
        """The last lines of each service's console log (Elasticsearch's nodes, MinIO,
        PostgreSQL). Without a state (a start that failed and stopped what it started) the
        work directory's logs are read: they explain the failure."""
        state = self._read_state() or {}
        logs: dict[str, Path] = {}
        for service, info in (state.get("services") or {}).items():
            for node in info.get("nodes") or []:
                logs[f"{service}.{node['node']}"] = Path(node["log"])
            if info.get("log") and not info.get("nodes"):
                logs[service] = Path(info["log"])
        if not logs and self.workdir.is_dir():
            for path in sorted(self.workdir.glob("*/console.log")) + sorted(self.workdir.glob("*/node-*/console.log")):
                logs[".".join(path.relative_to(self.workdir).parts[:-1])] = path  # elasticsearch.node-1
        return {name: tail_text(path, lines) for name, path in logs.items() if path.exists()}

    def _matching(self, service: str) -> list[process.ProcessRecord]:
        """``elasticsearch`` means all its nodes; ``elasticsearch/drdrill-es-1`` one of them."""
        return [r for r in self._records(self._read_state()) if service in (r.service, r.key)]

    def signal_service(self, service: str, signum: int) -> None:
        """Send ``signum`` to a service's whole process group, every node's of Elasticsearch or
        one node's (fault injection: SIGSTOP makes a hung service, SIGCONT resumes it, SIGKILL
        crashes it)."""
        records = self._matching(service)
        if not records:
            raise StackError(f"no {service} in stack {self.stack_name!r}")
        for record in records:
            process.signal_group(record, signum)

    def data_disk(self, service: str) -> DiskUsage | None:
        """The filesystem holding the service's data directory (its first node's)."""
        data = next((p for p in (self.workdir / service / "data", self.workdir / service / "node-0" / "data")
                     if p.is_dir()), self.workdir / service / "data")
        try:
            usage = shutil.disk_usage(data)
        except OSError:
            return None
        return DiskUsage(str(data), usage.total, usage.free)

    def process_state(self, service: str) -> str:
        """running / stopped (paused, e.g. SIGSTOP) / not running; of several nodes, the worst:
        one node gone makes the service "not running" (what undo_faults restarts)."""
        states = [process.state(r) for r in self._matching(service)]
        for worst in ("not running", "stopped (paused)"):
            if worst in states:
                return worst
        return "running" if states else "not running"

    def nodes(self) -> list[dict[str, Any]]:
        """Elasticsearch's nodes as started: name, HTTP and transport port, log (one entry when
        the stack runs a single node)."""
        info = ((self._read_state() or {}).get("services") or {}).get("elasticsearch") or {}
        return list(info.get("nodes") or ([{"node": "drdrill-es", **info}] if info else []))

    def _all_healthy(self, state: dict[str, Any]) -> bool:
        return all(row["healthy"] for row in self._service_rows(state))

    def _stop_all(self, state: dict[str, Any] | None) -> list[str]:
        # All at once: an Elasticsearch cluster's nodes stopped one by one lose their quorum
        # and the last ones hang in shutdown until killed.
        live = [r for r in reversed(self._records(state)) if process.is_running(r) or process.members(r)]
        process.stop_together(live, self.settings.stop_timeout_s)
        self.state_path.unlink(missing_ok=True)
        return [r.key for r in live]

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop every process ``up`` started (and only those); returns the services stopped."""
        with self._locked():
            stopped = self._stop_all(self._read_state())
        if purge and self.workdir.exists():
            shutil.rmtree(self.paths.check_stack_dir(self.workdir), ignore_errors=True)
        return stopped

    def _service_rows(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        services = state.get("services", {})
        for record in self._records(state):
            info = services.get(record.service, {})
            if record.node:
                info = next((n for n in info.get("nodes", []) if n["node"] == record.node), {})
            running = process.is_running(record)
            healthy, detail = False, "not running"
            if running:
                healthy, detail = self._probe(record.service, int(info.get("port", 0)), state)
            rows.append({"service": record.key, "pid": record.pid, "port": info.get("port"),
                         "running": running, "healthy": healthy, "detail": detail, "log": info.get("log")})
        return rows

    def _probe(self, service: str, port: int, state: dict[str, Any]) -> tuple[bool, str]:
        url = f"http://127.0.0.1:{port}"
        try:
            if service == "elasticsearch":
                nodes = len(((state.get("services") or {}).get("elasticsearch") or {}).get("nodes") or []) or 1
                return probe_es_cluster(url, nodes)
            if service == "minio":
                return probe_minio(url)
            if service == "postgres" and state.get("endpoints"):
                ep = Endpoints.from_dict(state["endpoints"])
                return probe_postgres(PgConn("127.0.0.1", port, "postgres", ep.pg_admin_user, ep.pg_admin_password))
            return False, "starting"
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"

    def status(self) -> dict[str, Any]:
        state = self._read_state()
        if not state:
            return {"stack": self.stack_name, "workdir": str(self.workdir), "up": False, "services": []}
        rows = self._service_rows(state)
        return {
            "stack": self.stack_name, "workdir": str(self.workdir),
            "up": bool(rows) and all(r["healthy"] for r in rows) and "endpoints" in state,
            "created_at": state.get("created_at"), "settings": state.get("settings"),
            "versions": (state.get("endpoints") or {}).get("versions", {}),
            "services": rows,
        }


def _key(svc: LocalService) -> str:
    return f"{svc.name}/{svc.node}" if svc.node else svc.name
