"""drdrill's own single-node Kubernetes cluster (`drdrill cluster up|down|status`): etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, a containerd of its own, kubelet and
kube-proxy as host processes, one per machine under ``<state>/cluster``.

Every process is recorded (pid + create time, :mod:`drdrill.host.process`) in ``cluster.json``
as soon as it starts, so `down` stops exactly what `up` started, also after a crash half-way.
`down` then removes what the kubelet and the CNI plugins leave on the host, and only the
cluster's own (:mod:`drdrill.targets.kubernetes.host_parts`): its pods' network namespaces and
logs (as its containerd lists them, recorded before it stops), its bridge, its iptables chains
(the ``KUBE-*``/``CNI-*`` chains on the host before `up` are recorded and kept) and the mounts
under its own directories.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from drdrill.errors import StackError, StackNotUp, UsageError
from drdrill.host import process
from drdrill.host.readiness import wait_until_ready
from drdrill.host.tools import apt_install, file_lock, require_tool
from drdrill.provision.kubernetes import ensure_kubernetes
from drdrill.settings import Paths
from drdrill.targets.kubernetes.config_files import (
    BRIDGE,
    CLUSTER_CIDR,
    CNI_NETWORK,
    CONTROLLER_MANAGER_PORT,
    ETCD_CLIENT_PORT,
    HOSTPATH_PROVISIONER_DIR,
    NODE_NAME,
    POD_SUBNET,
    SCHEDULER_PORT,
    SERVICE_CIDR,
    SERVICE_IP,
    START_ORDER,
    ClusterLayout,
    cni_conflist,
    command_lines,
    containerd_toml,
    kubelet_yaml,
)
from drdrill.targets.kubernetes.host_parts import (
    ClusterNetworks,
    ContainerFacts,
    OwnParts,
    chains_before_up,
    container_facts,
    netns_with_inode,
    owned_chains,
    parse_save,
    removal_scripts,
)
from drdrill.targets.kubernetes.pki import client_identities, kubeconfig, make_pki
from drdrill.targets.workdir import read_state_file, write_private_json

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
DEBIAN_PACKAGES = ("etcd-server", "containerd", "runc", "containernetworking-plugins", "iptables")
NETWORKS = ClusterNetworks((CLUSTER_CIDR, POD_SUBNET, SERVICE_CIDR), CNI_NETWORK)
IPTABLES = ("iptables", "ip6tables")
NETNS_DIR = Path("/var/run/netns")
POD_LOGS, CONTAINER_LOGS = Path("/var/log/pods"), Path("/var/log/containers")


def node_address() -> str:
    """The address the node advertises: the source of the default route (a UDP connect sends
    nothing), else loopback on a machine without one (pods then cannot reach the apiserver)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.254", 9))
        return str(sock.getsockname()[0])
    return "127.0.0.1"


class ClusterHost:
    """The cluster's processes and host state. The constructor does no I/O."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.root = paths.state_dir / "cluster"
        self.images_root = paths.cache_dir / "cluster-images"
        self._own: OwnParts | None = None  # what the last `stop` found of the cluster on the host

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    def layout(self, node_ip: str) -> ClusterLayout:
        return ClusterLayout(self.root, self.images_root, node_ip)

    def read_state(self) -> dict[str, Any] | None:
        return read_state_file(self.state_path, "cluster", "drdrill cluster down")

    def _write_state(self, state: dict[str, Any]) -> None:
        write_private_json(self.state_path, state)

    @contextlib.contextmanager
    def locked(self) -> Any:
        with file_lock(self.paths.state_dir / "locks" / "cluster.lock"):
            yield

    # --- up --------------------------------------------------------------------------------

    def ensure_software(self) -> Path:
        """Kubernetes' binaries (built once per machine) and Debian's etcd, containerd, runc and
        CNI plugins (installed once)."""
        apt_install(self.paths.cache_dir, "kubernetes-host", "installing etcd, containerd, runc and CNI plugins",
                    DEBIAN_PACKAGES, present=lambda: all(shutil.which(t) for t in ("etcd", "containerd", "runc",
                                                                                     "iptables-save"))
                    and (Path("/usr/lib/cni") / "bridge").exists(),
                    how="apt-get install etcd-server containerd runc containernetworking-plugins")
        return ensure_kubernetes(self.paths.cache_dir)

    def start(self, bindir: Path, *, on_started: Callable[[str], None] | None = None,
              import_images: Callable[[ClusterLayout], None]) -> ClusterLayout:
        """Start every component in order, each waited for; ``import_images`` runs once
        containerd answers and before the kubelet starts."""
        if os.geteuid() != 0:
            raise StackError("a Kubernetes node needs root (network namespaces, iptables, mounts)",
                             hint="run `drdrill cluster up` as root, or point [target] kubeconfig at a cluster")
        self.check_not_running()
        for leftover in ("etcd", "kubelet", "pki", "kubeconfig", "containerd", "cni"):
            shutil.rmtree(self.root / leftover, ignore_errors=True)
        layout = self.layout(node_address())
        for directory in (layout.logs, layout.cni_conf_dir, layout.kubelet_root, layout.containerd_state,
                          layout.runc_root, layout.images_root, layout.root / "kubeconfig"):
            directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        make_pki(layout.pki, node=NODE_NAME, node_ip=layout.node_ip, service_ip=SERVICE_IP)
        for who in client_identities(NODE_NAME):
            layout.kubeconfig(who.name).write_text(kubeconfig(layout.server, layout.pki, who.name))
        (layout.root / "containerd.toml").write_text(containerd_toml(layout, "docker.io/drdrill/pause:1"))
        (layout.cni_conf_dir / "10-drdrill.conflist").write_text(cni_conflist())
        (layout.root / "kubelet.yaml").write_text(kubelet_yaml(layout))
        etcd = require_tool("etcd", "apt-get install etcd-server")
        containerd = require_tool("containerd", "apt-get install containerd")
        argv = command_lines(layout, bindir, etcd, containerd)
        records: list[dict[str, Any]] = []
        # Chains someone else made before this cluster starts are never its own to remove.
        own = OwnParts(chains_before_up={tool: chains_before_up(_save(tool), NETWORKS) for tool in IPTABLES})
        state = {"node_ip": layout.node_ip, "kubeconfig": str(layout.admin_kubeconfig), "processes": records,
                 "argv": argv, "started_at": time.time(), "host": own.to_dict()}
        self._write_state(state)
        for component in START_ORDER:
            log_path = layout.logs / f"{component}.log"
            proc, record = process.spawn(component, argv[component], env=dict(os.environ), cwd=layout.root,
                                         log_path=log_path, user=None)
            records.append(record.to_dict())
            self._write_state(state)  # recorded before it is waited for: `down` finds it after a crash
            wait_until_ready(component, self._probe(component, layout), timeout_s=120, log_path=log_path,
                             exited=proc.poll)
            if on_started:
                on_started(component)
            if component == "containerd":
                import_images(layout)
        return layout

    def check_not_running(self) -> None:
        if any(process.is_running(r) for r in self.records()):
            raise UsageError(f"a cluster is already running ({self.state_path})",
                             hint="`drdrill cluster status`, or `drdrill cluster down` first")

    def _probe(self, component: str, layout: ClusterLayout) -> Callable[[], tuple[bool, str]]:
        import requests

        cert = (str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))

        def get(path: str) -> requests.Response:
            return requests.get(f"{layout.server}{path}", cert=cert, verify=str(layout.pki / "ca.crt"), timeout=5)

        def api(path: str) -> tuple[bool, str]:
            reply = get(path)
            return reply.ok, f"HTTP {reply.status_code}: {reply.text[:200]}"

        def own_healthz(port: int) -> tuple[bool, str]:
            # Their serving certificates are made in memory at start-up, so nothing can verify
            # them; this is loopback, and the check reads only "ok".
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reply = requests.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=5)  # noqa: S501
            return reply.text.strip() == "ok", f"HTTP {reply.status_code}: {reply.text[:200]}"

        def etcd() -> tuple[bool, str]:
            reply = requests.get(f"http://127.0.0.1:{ETCD_CLIENT_PORT}/health", timeout=5)
            return '"true"' in reply.text, reply.text[:200]

        def containerd() -> tuple[bool, str]:
            done = subprocess.run(["ctr", "--address", str(layout.containerd_socket), "version"],
                                  capture_output=True, text=True, timeout=10)
            return done.returncode == 0, (done.stderr or done.stdout).strip()[-200:]

        def node_ready() -> tuple[bool, str]:
            reply = get(f"/api/v1/nodes/{NODE_NAME}")
            if not reply.ok:
                return False, f"HTTP {reply.status_code}: {reply.text[:200]}"
            conditions = {c["type"]: c for c in reply.json()["status"].get("conditions", [])}
            ready = conditions.get("Ready", {})
            if ready.get("status") != "True":
                return False, f"Ready={ready.get('status')}: {ready.get('message', '')}"
            # Ready may be an old report (a restarted kubelet): the API must reach it too.
            healthz = get(f"/api/v1/nodes/{NODE_NAME}/proxy/healthz")
            return healthz.ok and healthz.text.strip() == "ok", f"kubelet /healthz: {healthz.text[:200]}"

        def proxy() -> tuple[bool, str]:
            done = subprocess.run(["iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES"], capture_output=True,
                                  text=True, timeout=10)
            return done.returncode == 0 and "default/kubernetes" in done.stdout, "no KUBE-SERVICES rule yet"

        return {"etcd": etcd, "kube-apiserver": lambda: api("/readyz"),
                "kube-controller-manager": lambda: own_healthz(CONTROLLER_MANAGER_PORT),
                "kube-scheduler": lambda: own_healthz(SCHEDULER_PORT),
                "containerd": containerd, "kubelet": node_ready, "kube-proxy": proxy}[component]

    # --- one component (the node-failure fault) -----------------------------------------

    def stop_component(self, component: str) -> None:
        """Stop one running component (its pods' containers go on without it)."""
        record = next((r for r in self.records() if r.service == component), None)
        if record is None or not process.is_running(record):
            raise StackError(f"{component} of drdrill's cluster is not running")
        process.stop(record, timeout_s=30)

    def start_component(self, component: str) -> None:
        """Start a stopped component again with the command line `up` gave it, and wait for it."""
        with self.locked():
            state = self.require_up()
            layout = self.layout(state["node_ip"])
            log_path = layout.logs / f"{component}.log"
            proc, record = process.spawn(component, state["argv"][component], env=dict(os.environ), cwd=layout.root,
                                         log_path=log_path, user=None)
            state["processes"] = [r for r in state["processes"] if r["service"] != component] + [record.to_dict()]
            self._write_state(state)
            wait_until_ready(component, self._probe(component, layout), timeout_s=120, log_path=log_path,
                             exited=proc.poll)

    def is_running(self, component: str) -> bool:
        return any(r.service == component and process.is_running(r) for r in self.records())

    # --- down ------------------------------------------------------------------------------

    def records(self) -> list[process.ProcessRecord]:
        state = self.read_state()
        return [process.ProcessRecord.from_dict(r) for r in (state or {}).get("processes", [])]

    def stop(self, *, before_kubelet_stops: Callable[[], None]) -> tuple[list[str], list[str]]:
        """Stop every recorded process (controllers first, so that nothing recreates the pods
        ``before_kubelet_stops`` deletes), then clean the host; returns what was stopped and the
        log paths removed (the kubelet's own log GC removes others meanwhile: this says which
        were drdrill's doing)."""
        by_name = {r.service: r for r in self.records()}
        stopped: list[str] = []
        own = self.record_own_parts()  # while its containerd and shims still run

        def halt(*names: str) -> None:
            for name in names:
                record = by_name.get(name)
                if record and process.is_running(record):
                    process.stop(record, timeout_s=30)
                    stopped.append(name)

        halt("kube-controller-manager", "kube-scheduler")
        if by_name.get("kube-apiserver") and process.is_running(by_name["kube-apiserver"]) and \
                by_name.get("kubelet") and process.is_running(by_name["kubelet"]):
            try:
                before_kubelet_stops()  # the kubelet tears pods down through CNI: nothing leaks
            except Exception as exc:  # the host clean-up below removes what is left
                log.warning("could not delete the pods before stopping the kubelet: %s", exc)
        halt("kubelet", "kube-proxy", "containerd")
        self._kill_shims()
        halt("kube-apiserver", "etcd")
        return stopped, self._clean_host(own)

    def record_own_parts(self) -> OwnParts:
        """What the cluster has on the host now: its containerd's pod sandboxes (their network
        namespaces, pod uids, container ids) and the network namespaces its shims' processes
        live in; merged into what `up` recorded, written to the state (a `down` that dies
        half-way is run again on the same record) and returned."""
        state = self.read_state() or {}
        own = OwnParts.from_dict(state.get("host"))
        own.add(self._containerd_facts())
        own.netns |= self._netns_of_shims()
        if state:
            state["host"] = own.to_dict()
            self._write_state(state)
        self._own = own
        return own

    def _containerd_facts(self) -> list[ContainerFacts]:
        socket_path = self.root / "containerd" / "containerd.sock"
        if not socket_path.exists():
            return []
        ctr = ["ctr", "--address", str(socket_path), "-n", "k8s.io", "containers"]
        try:
            ids = subprocess.run([*ctr, "ls", "-q"], capture_output=True, text=True, timeout=30, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:  # not answering: the shims still tell
            log.warning("the cluster's containerd did not list its containers: %s", exc)
            return []
        facts = []
        for container in ids.split():
            info = subprocess.run([*ctr, "info", container], capture_output=True, text=True, timeout=30)
            with contextlib.suppress(ValueError):  # removed meanwhile: nothing to record
                facts.append(container_facts(json.loads(info.stdout)))
        return facts

    def _netns_of_shims(self) -> set[str]:
        """The named network namespaces that the processes under the cluster's shims live in."""
        entries = {}
        for entry in NETNS_DIR.iterdir() if NETNS_DIR.is_dir() else []:
            with contextlib.suppress(OSError):
                entries[entry.name] = entry.stat().st_ino
        if not entries:
            return set()
        inodes = []
        for proc in self._shims_and_children():
            with contextlib.suppress(OSError):
                inodes.append(os.stat(f"/proc/{proc.pid}/ns/net").st_ino)
        return netns_with_inode(entries, inodes, host_inode=os.stat("/proc/self/ns/net").st_ino)

    def _shims_and_children(self) -> list[psutil.Process]:
        """containerd's shims (and the containers under them) daemonize away from containerd's
        process group: found by the socket address on their command line."""
        address = str(self.root / "containerd" / "containerd.sock")
        shims = [p for p in psutil.process_iter(["cmdline"]) if address in " ".join(p.info["cmdline"] or ())]
        found: list[psutil.Process] = []
        for shim in shims:
            with contextlib.suppress(psutil.NoSuchProcess):
                found += [*shim.children(recursive=True), shim]
        return found

    def _kill_shims(self) -> None:
        victims = self._shims_and_children()
        for proc in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(victims, timeout=10)

    def _clean_host(self, own: OwnParts) -> list[str]:
        """Everything of its own off the host; returns the log paths it removed."""
        self._unmount_under(self.root)
        for name in sorted(own.netns):
            if (NETNS_DIR / name).exists():
                subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, timeout=30)
        for tool in IPTABLES:
            self._remove_chains(tool, own)
        shutil.rmtree(HOSTPATH_PROVISIONER_DIR, ignore_errors=True)
        logs = self._own_logs(own)
        for path in map(Path, logs):
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            else:
                shutil.rmtree(path, ignore_errors=True)
        return logs

    @staticmethod
    def _own_logs(own: OwnParts) -> list[str]:
        pod_dirs = [e.name for e in POD_LOGS.iterdir()] if POD_LOGS.is_dir() else []
        links = {e.name: os.readlink(e) if e.is_symlink() else str(e)
                 for e in (CONTAINER_LOGS.iterdir() if CONTAINER_LOGS.is_dir() else [])}
        return own.own_logs(pod_dirs, links)

    @staticmethod
    def _unmount_under(root: Path) -> None:
        prefix = str(root.resolve()) + "/"
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            if subprocess.run(["umount", point], capture_output=True, timeout=30).returncode:
                subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)

    @staticmethod
    def _remove_chains(tool: str, own: OwnParts) -> None:
        """The cluster's chains and rules only (``--noflush``: every other rule stays as it is)."""
        restore = shutil.which(f"{tool}-restore")
        saved = _save(tool)
        if not restore or not saved:
            return
        for table, script in removal_scripts(saved, NETWORKS, own.chains_before_up.get(tool, {})).items():
            done = subprocess.run([restore, "-w", "5", "--noflush"], input=script, capture_output=True, text=True,
                                  timeout=30)
            if done.returncode:
                log.warning("%s: could not remove the cluster's chains from %s: %s", tool, table,
                            done.stderr.strip()[:300])

    def forget(self) -> None:
        """Remove the state (but the logs, for a post-mortem of a failed `up`)."""
        for entry in self.root.glob("*") if self.root.is_dir() else []:
            if entry.name == "logs":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    # --- status ----------------------------------------------------------------------------

    def processes(self) -> dict[str, str]:
        return {r.service: process.state(r) for r in self.records()}

    def require_up(self) -> dict[str, Any]:
        state = self.read_state()
        if not state or not state.get("processes"):
            raise StackNotUp("no cluster is up", hint="run `drdrill cluster up` first")
        return state

    def leftovers(self) -> list[str]:
        """What of the cluster is on the host while (or if) it runs: what `down` must remove.
        Only its own: its processes, bridge, recorded network namespaces, chains, mounts, logs."""
        own = self._own or OwnParts.from_dict((self.read_state() or {}).get("host"))
        found = [f"process {p.info['name']} (pid {p.pid})" for p in psutil.process_iter(["name", "cmdline"])
                 if str(self.root) in " ".join(p.info["cmdline"] or ())]
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            found.append(f"interface {BRIDGE}")
        found += [f"netns {name}" for name in sorted(own.netns) if (NETNS_DIR / name).exists()]
        for tool in IPTABLES:
            for table in parse_save(_save(tool)):
                before = own.chains_before_up.get(tool, {}).get(table.name, ())
                found += [f"{tool} {table.name} chain {c}" for c in sorted(owned_chains(table, NETWORKS, before))]
        prefix = str(self.root.resolve()) + "/"
        found += [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(prefix)]
        found += [f"log {path}" for path in self._own_logs(own)]
        return found


def _save(tool: str) -> str:
    """``iptables-save`` (or ``ip6tables-save``) of every table; empty where there is none."""
    save = shutil.which(f"{tool}-save")
    if not save:
        return ""
    done = subprocess.run([save], capture_output=True, text=True, timeout=30)
    return done.stdout if done.returncode == 0 else ""
