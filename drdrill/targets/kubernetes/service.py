"""`drdrill cluster up|down|status`: the single-node cluster (:mod:`drdrill.targets.kubernetes.node`) with
the platform deployed in it (:mod:`drdrill.targets.kubernetes.platform`)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from drdrill.adapters.docker_engine import DockerEngine
from drdrill.errors import StackError
from drdrill.settings import Paths, StackSettings
from drdrill.targets.kubernetes import platform as plat
from drdrill.targets.kubernetes.config_files import ClusterLayout
from drdrill.targets.kubernetes.node import ClusterHost
from drdrill.targets.workdir import write_private_json

log = logging.getLogger(__name__)

IMPORTED_FILE = "imported.json"


class ClusterService:
    """No I/O in the constructor."""

    def __init__(self, paths: Paths, settings: StackSettings) -> None:
        self.paths, self.settings = paths, settings
        self.host = ClusterHost(paths)

    @property
    def secrets_dir(self) -> Path:
        return self.host.root / "secrets"

    @property
    def config_path(self) -> Path:
        return self.host.root / "drdrill-live.toml"

    @property
    def evidence_key(self) -> Path:
        """The in-cluster restore test's signing key, made once and kept across `down` (beside
        the cluster's state, which `down` removes) so that older packs still verify."""
        return self.paths.state_dir / "cluster-evidence" / "key"

    def image_refs(self) -> dict[str, str]:
        from drdrill.provision.cluster_images import PUSHGATEWAY_TAG, drdrill_tag
        from drdrill.provision.images import PG_MAJOR, TOOLBOX_TAG
        from drdrill.settings import DEFAULT_ES_VERSION

        return {"elasticsearch": f"drdrill/elasticsearch:{self.settings.es_version or DEFAULT_ES_VERSION}",
                "minio": f"drdrill/minio:{self.settings.minio_version}", "postgres": f"drdrill/postgres:{PG_MAJOR}",
                "toolbox": TOOLBOX_TAG, "drdrill": drdrill_tag(), "pushgateway": PUSHGATEWAY_TAG}

    # --- up --------------------------------------------------------------------------------

    def up(self) -> dict[str, Any]:
        timings: dict[str, float] = {}
        started = time.monotonic()
        with self.host.locked():
            self.host.check_not_running()  # before anything: a refused `up` must not stop a running cluster
            mark = time.monotonic()
            bindir = self.host.ensure_software()
            timings["software"] = time.monotonic() - mark
            # The images come from a Docker engine, started for `up` if none runs, and stopped
            # again however `up` ends (an engine left running would outlive its starter).
            engine = DockerEngine(self.paths.state_dir, self.paths.cache_dir)
            try:
                mark = time.monotonic()
                images = self._build_images(engine)
                timings["images"] = time.monotonic() - mark
                try:
                    mark = time.monotonic()
                    layout = self.host.start(bindir, import_images=lambda lay: self._import_images(engine, lay, images),
                                             on_started=lambda c: log.info("cluster: %s ready (%.1fs)", c,
                                                                            time.monotonic() - started))
                    timings["components"] = time.monotonic() - mark
                    mark = time.monotonic()
                    applied = self._deploy(layout, bindir)
                    timings["platform"] = time.monotonic() - mark
                except BaseException:
                    log.error("cluster up failed; stopping what it started (logs stay in %s)",
                              self.host.root / "logs")
                    with contextlib.suppress(Exception):
                        self._down_locked()
                    raise
            finally:
                engine.stop()  # only if `up` started it
        state = self.host.read_state() or {}
        state.update({"namespace": plat.NAMESPACE, "config": str(self.config_path), "applied": applied,
                      "images": images, "timings": {k: round(v, 2) for k, v in timings.items()},
                      "up_seconds": round(time.monotonic() - started, 2)})
        write_private_json(self.host.state_path, state)
        return self.summary(state)

    def _build_images(self, engine: DockerEngine) -> dict[str, str]:
        """The platform's images and the pod sandbox, from the containers target's builds;
        returns tag -> image id."""
        from drdrill.provision.images import PAUSE_TAG, ImageBuilder
        from drdrill.settings import DEFAULT_ES_VERSION

        engine.ensure()
        builder = ImageBuilder(engine, self.paths.cache_dir)
        built = builder.ensure(self.settings.es_version or DEFAULT_ES_VERSION, self.settings.minio_version)
        built.update(builder.ensure_cluster_images())
        wanted = {*self.image_refs().values(), PAUSE_TAG}
        return {image.tag: image.id for image in built.values() if image.tag in wanted}

    def _import_images(self, engine: DockerEngine, layout: ClusterLayout, images: dict[str, str]) -> None:
        """``docker save | ctr images import`` for each image the node's containerd does not
        hold at the same id (kept across `down`: the image store is in the cache)."""
        record = layout.images_root / IMPORTED_FILE
        try:
            done = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):
            done = {}
        present = subprocess.run(["ctr", "--address", str(layout.containerd_socket), "-n", "k8s.io", "images", "ls",
                                  "-q"], capture_output=True, text=True, timeout=60).stdout.split()
        try:
            for tag, image_id in sorted(images.items()):
                if done.get(tag) == image_id and f"docker.io/{tag}" in present:
                    continue
                mark = time.monotonic()
                importer = subprocess.Popen(["ctr", "--address", str(layout.containerd_socket), "-n", "k8s.io",
                                             "images", "import", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE)
                assert importer.stdin is not None
                try:
                    engine.save(tag, importer.stdin)
                finally:
                    importer.stdin.close()
                assert importer.stderr is not None
                err = importer.stderr.read()
                importer.wait(timeout=600)
                if importer.returncode:
                    raise StackError(f"importing {tag} into the node's containerd failed: "
                                     f"{err.decode(errors='replace').strip()[-300:]}")
                done[tag] = image_id
                record.write_text(json.dumps(done, indent=2))
                log.info("cluster: image %s imported (%.1fs)", tag, time.monotonic() - mark)
        finally:
            engine.stop()  # the node has them: the engine is not needed while the cluster runs

    def _deploy(self, layout: ClusterLayout, bindir: Path) -> list[str]:
        from drdrill.adapters.kubernetes import DRILL_NAMESPACE_LABEL, KubeCluster

        kube = KubeCluster(layout.admin_kubeconfig, kubectl=str(bindir / "kubectl"))
        try:
            kube.ensure_storage_class(plat.storage_class())
            kube.ensure_namespace(plat.NAMESPACE, {DRILL_NAMESPACE_LABEL: "true"})
            credentials = {"MINIO_ROOT_USER": f"backup-{secrets.token_hex(4)}",
                           "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(24), "DB_USER": plat.DB_USER,
                           "DB_PASSWORD": secrets.token_urlsafe(24)}
            kube.put_secret(plat.NAMESPACE, plat.SECRET, credentials)
            kube.put_secret(plat.NAMESPACE, plat.EVIDENCE_KEY_SECRET, {"key": self._evidence_key_pem()})
            overlay = self.host.root / "platform"
            overlay.mkdir(exist_ok=True)
            deploy = plat.deploy_dir()

            def write_overlay(host_aliases: dict[str, str] | None = None) -> None:
                (overlay / "kustomization.yaml").write_text(plat.overlay_kustomization(
                    deploy / "base", overlay, self.image_refs(), resources=(deploy / "pushgateway",),
                    components=(deploy / "restore-test",), host_aliases=host_aliases))

            write_overlay()
            (overlay / "snapshots-volume.yaml").write_text(plat.snapshot_volume())
            (overlay / plat.ES_TRANSPORT_FILE).write_text(plat.es_transport_services())
            self._write_live_config(layout, credentials)
            kube.apply(overlay)
            # No DNS add-on here: once the Services have their addresses, the restore test's
            # pods get them as host names (a platform's own cluster resolves them itself).
            write_overlay({name: str(kube.core().read_namespaced_service(name, plat.NAMESPACE).spec.cluster_ip)
                           for name in plat.RESTORE_TEST_SERVICES})
            applied = kube.apply(overlay)
            log.info("cluster: platform applied (%d objects); waiting for its StatefulSets", len(applied))
            # Three Elasticsearch JVMs start together here: on two busy cores that took up to
            # ~4 min on the local target (issue 24's figures), so the wait is the redeploy's.
            kube.wait_statefulsets(plat.NAMESPACE, list(plat.STATEFULSETS), timeout_s=600)
            plat.DRILL_REPOSITORY_DIR.mkdir(parents=True, exist_ok=True)
            # Elasticsearch (uid 1000, group 0) writes the drills' own snapshots there too.
            os.chown(plat.DRILL_REPOSITORY_DIR, 1000, 0)
            os.chmod(plat.DRILL_REPOSITORY_DIR, 0o775)
            with kube.port_forward(plat.NAMESPACE, "app=minio", 9000, "minio") as port:
                from drdrill.adapters.s3 import ObjectStore
                from drdrill.core.layout import DRILL_MARKER_KEY

                store = ObjectStore(f"http://127.0.0.1:{port}", credentials["MINIO_ROOT_USER"],
                                    credentials["MINIO_ROOT_PASSWORD"], plat.BUCKET)
                store.ensure_bucket()
                # This platform exists to be drilled: destructive drills may run on it.
                store.put_bytes(DRILL_MARKER_KEY, b"drdrill cluster up: a drill environment\n")
                # The in-cluster restore test's evidence store: its own bucket, made here because
                # the restore test never creates buckets on a store it was not told it may.
                ObjectStore(f"http://127.0.0.1:{port}", credentials["MINIO_ROOT_USER"],
                            credentials["MINIO_ROOT_PASSWORD"], plat.EVIDENCE_BUCKET).ensure_bucket()
            return applied
        finally:
            kube.close()

    def _evidence_key_pem(self) -> str:
        """The signing key's PEM for Secret drdrill-evidence-key, generated on first use."""
        from drdrill.evidence.keys import generate

        if not self.evidence_key.exists():
            self.evidence_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            generate(self.evidence_key)
        return self.evidence_key.read_text()

    def _write_live_config(self, layout: ClusterLayout, credentials: dict[str, str]) -> None:
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        values = {"s3_access_key": credentials["MINIO_ROOT_USER"], "s3_secret_key": credentials["MINIO_ROOT_PASSWORD"],
                  # host and port are replaced by a port-forward to the postgres Service
                  "postgres_dsn": f"postgresql://{plat.DB_USER}:{credentials['DB_PASSWORD']}@postgres:5432/"
                                  f"{plat.DB_NAME}",
                  "dump_password": credentials["DB_PASSWORD"]}
        for name, value in values.items():
            path = self.secrets_dir / name
            path.touch(mode=0o600)
            path.write_text(value)
        self.config_path.write_text(plat.live_target_toml(layout.admin_kubeconfig, self.secrets_dir,
                                                          self.host.root / "platform"))

    # --- down and status -------------------------------------------------------------------

    def down(self) -> dict[str, Any]:
        with self.host.locked():
            return self._down_locked()

    def _down_locked(self) -> dict[str, Any]:
        from drdrill.adapters.kubernetes import KubeCluster

        state = self.host.read_state() or {}
        kube = KubeCluster(Path(state["kubeconfig"])) if state.get("kubeconfig") else None
        started = time.monotonic()

        def delete_pods() -> None:
            if kube is not None:
                kube.delete_all_pods(timeout_s=60)

        try:
            stopped, removed_logs = self.host.stop(before_kubelet_stops=delete_pods)
        finally:
            if kube is not None:
                kube.close()
        shutil.rmtree(plat.SNAPSHOT_DIR, ignore_errors=True)
        self.host.forget()
        return {"stopped": stopped, "seconds": round(time.monotonic() - started, 2),
                "removed_logs": removed_logs, "leftovers": self.host.leftovers()}

    def status(self) -> dict[str, Any]:
        from drdrill.adapters.kubernetes import KubeCluster

        state = self.host.read_state()
        if not state or not state.get("processes"):
            return {"up": False, "root": str(self.host.root)}
        processes = self.host.processes()
        out: dict[str, Any] = {"up": all(s == "running" for s in processes.values()), "root": str(self.host.root),
                               "processes": processes, **self.summary(state)}
        kube = KubeCluster(Path(state["kubeconfig"]))
        try:
            out["version"] = kube.version()
            out["nodes"] = kube.nodes()
            out["statefulsets"] = {name: kube.statefulset_ready(plat.NAMESPACE, name)[1] for name in plat.STATEFULSETS}
            out["backup_cronjob"] = kube.cronjob_health(plat.NAMESPACE, plat.BACKUP_CRONJOB).to_dict()
        except Exception as exc:  # status reports what it can reach
            out["up"] = False
            out["api_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            kube.close()
        return out

    def summary(self, state: dict[str, Any]) -> dict[str, Any]:
        keys = ("kubeconfig", "namespace", "config", "node_ip", "up_seconds", "timings")
        out: dict[str, Any] = {key: state[key] for key in keys if key in state}
        public = self.evidence_key.with_name(self.evidence_key.name + ".pub")
        if public.exists():
            out["evidence_public_key"] = str(public)
        return out
