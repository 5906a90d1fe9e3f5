"""The Docker engine: find one, or start drdrill's own; build and import images; create, inspect
and remove the containers, networks and volumes drdrill labels. All of drdrill's Docker I/O goes
through here (containers themselves are started with testcontainers by the containers stack).

No Ryuk: its image cannot be pulled where no registry answers, and a reaper container is not
needed when everything drdrill makes carries :data:`LABEL_STACK` and is removed by that label,
also after the harness crashed (``drdrill stack down --target containers``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from drdrill.errors import EngineMissing, ProvisionError, StackError
from drdrill.host.tools import apt_install, require_module

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

log = logging.getLogger(__name__)

LABEL_STACK = "io.drdrill.stack"  # on every container, network and volume drdrill makes
LABEL_SERVICE = "io.drdrill.service"
LABEL_INPUTS = "io.drdrill.inputs"  # on images: the hash of what they were built from
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
ENGINE_START_TIMEOUT_S = 60.0
_UNSET = object()


@dataclass(frozen=True)
class ImageFacts:
    id: str
    inputs: str  # the LABEL_INPUTS hash ('' for an image drdrill did not build)


@dataclass(frozen=True)
class EngineInfo:
    host: str
    version: str
    managed: bool  # started by drdrill (and stopped by whoever started it)


class DockerEngine:
    """One Docker engine. The constructor does no I/O; :meth:`ensure` finds or starts one."""

    def __init__(self, state_dir: Path, cache_dir: Path, *, environ: Mapping[str, str] | None = None) -> None:
        require_module("docker", "containers", "the containers target drives a Docker engine")
        self.root = state_dir / "docker"
        self.cache_dir = cache_dir
        self.environ = os.environ if environ is None else environ
        self._client: docker.DockerClient | None = None
        self._started: subprocess.Popen[bytes] | None = None
        self.info: EngineInfo | None = None
        self._docker_host_before: str | object | None = _UNSET

    @property
    def own_host(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    def candidates(self, prefer: str | None = None) -> list[str]:
        """Where an engine may answer: ``prefer`` first (the engine a stack was started on);
        then ``DOCKER_HOST`` if set (then only there: the user chose), else the default socket,
        then the engine drdrill started earlier."""
        chosen = self.environ.get("DOCKER_HOST")
        found = [chosen] if chosen else [DEFAULT_SOCKET, self.own_host]
        return list(dict.fromkeys([prefer, *found])) if prefer else found

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self.ensure()
        assert self._client is not None
        return self._client

    def _try(self, host: str) -> tuple[docker.DockerClient | None, str]:
        import docker

        client = None
        try:
            client = docker.DockerClient(base_url=host, timeout=120)
            client.ping()
            return client, ""
        except Exception as exc:  # any failure to reach it is "not there"
            if client is not None:
                client.close()
            return None, f"{host}: {type(exc).__name__}: {str(exc)[:200]}"

    def ensure(self, *, may_start: bool = True, prefer: str | None = None) -> EngineInfo:
        """An engine that answers, started (and installed, where drdrill may) if none does.
        testcontainers reads ``DOCKER_HOST``, so it is pointed at the engine found. ``prefer``:
        the engine a stack runs on (its state file says which), tried first."""
        if self.info is not None:
            return self.info
        tried = []
        for host in self.candidates(prefer):
            client, why = self._try(host)
            if client is not None:
                return self._use(client, host, managed=host == self.own_host and self._started is not None)
            tried.append(why)
        if not may_start or self.environ.get("DOCKER_HOST") not in (None, "", self.own_host):
            raise EngineMissing(f"no Docker engine answers ({'; '.join(tried)})",
                                hint="start dockerd, or unset DOCKER_HOST to let drdrill start its own")
        self._start_own("; ".join(tried))
        client, why = self._try(self.own_host)
        if client is None:
            raise EngineMissing(f"the Docker engine drdrill started does not answer: {why}",
                                hint=f"see {self.root / 'dockerd.log'}")
        return self._use(client, self.own_host, managed=True)

    def _use(self, client: docker.DockerClient, host: str, *, managed: bool) -> EngineInfo:
        self._client = client
        if self._docker_host_before is _UNSET:
            self._docker_host_before = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = host  # for testcontainers, which reads only the environment
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        version = str(client.version().get("Version", "unknown"))
        self.info = EngineInfo(host, version, managed)
        log.info("Docker engine %s at %s%s", version, host, " (started by drdrill)" if managed else "")
        return self.info

    def _start_own(self, tried: str) -> None:
        """dockerd as a child of this process, its state under drdrill's state directory."""
        if os.geteuid() != 0:
            raise EngineMissing(f"no Docker engine answers ({tried}), and only root can start one",
                                hint="start dockerd and join the docker group (or set DOCKER_HOST), or run as root")
        dockerd = shutil.which("dockerd") or self._install()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        socket = self.root / "docker.sock"
        socket.unlink(missing_ok=True)
        (self.root / "starter.pid").write_text(f"{os.getpid()}\n")
        logfile = open(self.root / "dockerd.log", "ab")  # noqa: SIM115  # owned by the child
        argv = [dockerd, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "dockerd.pid"), "-H", self.own_host]
        log.info("starting dockerd (state in %s)", self.root)
        self._started = subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        logfile.close()
        deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._started.poll() is not None:
                break
            if socket.exists() and self._try(self.own_host)[0] is not None:
                return
            time.sleep(0.3)
        from drdrill.host.tools import tail_text

        last = tail_text(self.root / "dockerd.log", 1) or "no output"
        self.stop()
        raise EngineMissing(f"dockerd did not start: {last}", hint=f"see {self.root / 'dockerd.log'}")

    def _install(self) -> str:
        apt_install(self.cache_dir, "docker", "installing the Docker engine from Debian's packages (docker.io)",
                    ["docker.io", "mmdebstrap"], present=lambda: shutil.which("dockerd") is not None,
                    how="install Docker (Debian: apt-get install docker.io), or set DOCKER_HOST")
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise ProvisionError("docker.io installed but no dockerd on PATH", hint="see the apt log in the cache")
        return dockerd

    def stop(self) -> None:
        """Stop the engine this object started (its containers stop with it); others are left."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self.info = None
        if self._started is None:
            return
        proc, self._started = self._started, None
        # The engine is gone: DOCKER_HOST goes back to what it was (a later ensure() may start one).
        if self._docker_host_before is not _UNSET:
            before, self._docker_host_before = self._docker_host_before, _UNSET
            if isinstance(before, str):
                os.environ["DOCKER_HOST"] = before
            else:
                os.environ.pop("DOCKER_HOST", None)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.info("dockerd stopped")

    def stop_own_if_idle(self) -> bool:
        """Stop the engine drdrill started in an earlier, finished process (``stack up``) once
        nothing runs on it. An engine drdrill did not start, or whose starter still runs (a
        drill, a test session), is left alone: its starter stops it."""
        if self.info is None or self.info.host != self.own_host or self._client is None:
            return False
        if self._client.containers.list(all=True):
            return False
        try:
            starter = int((self.root / "starter.pid").read_text().strip())
        except (OSError, ValueError):
            starter = 0
        if starter and starter != os.getpid() and Path(f"/proc/{starter}").exists():
            return False
        try:
            pid = int((self.root / "dockerd.pid").read_text().strip())
        except (OSError, ValueError):
            return False
        self._client.close()
        self._client, self.info = None, None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
        log.info("dockerd (pid %d) stopped: nothing runs on it", pid)
        return True

    # --- images --------------------------------------------------------------------------

    def image(self, tag: str) -> ImageFacts | None:
        """Image ``tag``'s id and inputs label, in one lookup (None: no such image)."""
        import docker

        try:
            found = self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None
        return ImageFacts(str(found.id), str((found.labels or {}).get(LABEL_INPUTS, "")))

    def import_rootfs(self, tarball: Path, tag: str, inputs: str) -> None:
        repository, _, version = tag.partition(":")
        self.ensure()
        with contextlib.closing(self._long_calls()) as api:
            api.import_image_from_file(str(tarball), repository=repository, tag=version,
                                       changes=[f"LABEL {LABEL_INPUTS}={inputs}", 'CMD ["/bin/bash"]'])

    def save(self, tag: str, into: IO[bytes]) -> None:
        """``docker save TAG`` streamed into ``into`` (a tar another runtime imports)."""
        self.ensure()
        with contextlib.closing(self._long_calls()) as api:
            for chunk in api.get_image(tag, chunk_size=1 << 20):
                into.write(chunk)

    def _long_calls(self) -> docker.APIClient:
        """A client for builds and imports: a silent build step (apt-get -qq) may take minutes,
        which the everyday client's timeout would cut."""
        import docker

        assert self.info is not None
        return docker.APIClient(base_url=self.info.host, timeout=3600)

    def build(self, context: Path, tag: str, inputs: str, log_path: Path) -> None:
        """``docker build`` of a prepared context, its output to ``log_path``."""
        started = time.monotonic()
        log.info("building image %s ...", tag)
        self.ensure()
        api = self._long_calls()
        with open(log_path, "w") as out, contextlib.closing(api):
            for chunk in api.build(path=str(context), tag=tag, labels={LABEL_INPUTS: inputs}, rm=True,
                                               forcerm=True, decode=True):
                if "stream" in chunk:
                    out.write(chunk["stream"])
                if "error" in chunk:
                    out.write(chunk["error"] + "\n")
                    raise ProvisionError(f"building image {tag} failed: {chunk['error'].strip()[:300]}",
                                         hint=f"full log: {log_path}")
        log.info("image %s built in %.1fs", tag, time.monotonic() - started)

    # --- containers, networks, volumes -----------------------------------------------------

    def container(self, name: str) -> Container | None:
        import docker

        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def container_state(self, name: str) -> tuple[str, int | None]:
        """(status, exit code once exited): ``running``, ``paused``, ``exited``, ``missing``..."""
        found = self.container(name)
        if found is None:
            return "missing", None
        found.reload()
        state = found.attrs.get("State", {})
        status = str(state.get("Status", "unknown"))
        return status, int(state["ExitCode"]) if status in ("exited", "dead") else None

    def oom_killed(self, name: str) -> str | None:
        """How the kernel's OOM killer ended the container, or None if it did not."""
        found = self.container(name)
        if found is None:
            return None
        found.reload()
        if not found.attrs.get("State", {}).get("OOMKilled"):
            return None
        limit = int(found.attrs.get("HostConfig", {}).get("Memory") or 0)
        return f"killed by the kernel's OOM killer (memory limit {limit // 2**20} MiB)" if limit else \
            "killed by the kernel's OOM killer"

    def exhaust_memory(self, name: str) -> int:
        """Make the container run out of memory: its limit drops to just above what it uses now
        (lowering it below is refused on cgroup v1), then a second process pushes past it. That
        process stays far smaller than the service's own, so the kernel's OOM killer picks the
        service (shielding the hog with oom_score_adj needs a capability the engine may not
        grant). Returns the new limit in bytes."""
        found = self._must(name)
        stats = found.stats(stream=False).get("memory_stats", {})
        usage = int(stats.get("usage", 0))
        detail = stats.get("stats") or {}
        # Page cache: "cache" on cgroup v1, "file" on v2 (reclaimable, so not what the kernel kills for).
        resident = max(0, usage - int(detail.get("cache", detail.get("file", detail.get("inactive_file", 0)))))
        limit = usage + 128 * 2**20
        hog = limit - resident + 64 * 2**20  # past the limit even once all page cache is reclaimed
        if not resident or hog >= resident:
            raise StackError(f"container {name} holds {resident // 2**20} MiB: a process of {hog // 2**20} MiB "
                             "would be the OOM killer's choice, not the service")
        found.update(mem_limit=limit, memswap_limit=limit)
        found.exec_run(["sh", "-c", f"head -c {hog} /dev/zero | tail"], detach=True)
        return limit

    def exec(self, name: str, argv: list[str], *, user: str | None = None) -> tuple[int, str]:
        result = self._must(name).exec_run(argv, user=user or "")
        return int(result.exit_code or 0), bytes(result.output or b"").decode("utf-8", "replace")

    def disconnect(self, network: str, name: str) -> None:
        self.client.networks.get(network).disconnect(name, force=True)

    def connect(self, network: str, name: str) -> None:
        self.client.networks.get(network).connect(name, aliases=[name])

    def networks_of(self, name: str) -> list[str]:
        found = self._must(name)
        found.reload()
        return sorted((found.attrs.get("NetworkSettings", {}).get("Networks") or {}).keys())

    def logs(self, name: str, lines: int = 200) -> str:
        found = self.container(name)
        if found is None:
            return ""
        return bytes(found.logs(tail=lines)).decode("utf-8", "replace")

    def kill_and_remove(self, name: str) -> None:
        """SIGKILL, no grace (a crash), then the container is gone."""
        found = self.container(name)
        if found is None:
            return
        found.remove(force=True, v=True)  # v: anonymous volumes of the image go too

    def pause(self, name: str) -> None:
        self._must(name).pause()

    def unpause(self, name: str) -> None:
        self._must(name).unpause()

    def _must(self, name: str) -> Container:
        found = self.container(name)
        if found is None:
            raise StackError(f"no container {name}")
        return found

    def ensure_network(self, name: str, labels: dict[str, str]) -> str:
        import docker

        try:
            return str(self.client.networks.get(name).name)
        except docker.errors.NotFound:
            return str(self.client.networks.create(name, driver="bridge", labels=labels).name)

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        import docker

        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            self.client.volumes.create(name, labels=labels)

    def remove_volume(self, name: str) -> None:
        import docker

        with contextlib.suppress(docker.errors.NotFound):
            self.client.volumes.get(name).remove(force=True)

    def labelled(self, stack: str | None = None) -> dict[str, list[str]]:
        """Names of the containers, networks and volumes drdrill made (for ``stack``, or any)."""
        selector = {"label": f"{LABEL_STACK}={stack}" if stack else LABEL_STACK}
        return {
            "containers": [c.name for c in self.client.containers.list(all=True, filters=selector)],
            "networks": [n.name for n in self.client.networks.list(filters=selector)],
            "volumes": [v.name for v in self.client.volumes.list(filters=selector)],
        }

    def remove_labelled(self, stack: str | None = None) -> dict[str, list[str]]:
        """Remove everything :meth:`labelled` lists; containers first (they hold the rest)."""
        found = self.labelled(stack)
        for name in found["containers"]:
            self.kill_and_remove(name)
        for name in found["networks"]:
            self.client.networks.get(name).remove()
        for name in found["volumes"]:
            self.remove_volume(name)
        return found
