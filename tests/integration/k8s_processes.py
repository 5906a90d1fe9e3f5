"""What a test sees of a Kubernetes cluster left running, independently of drdrill's own check."""

from __future__ import annotations

import subprocess

COMPONENTS = {"kube-apiserver", "kubelet", "kube-proxy", "etcd"}


def cluster_processes() -> list[str]:
    """The cluster's processes still running, seen with ps: its components, and containerd shims
    of its containerd's namespace (k8s.io; Docker's, of another test's containers, are moby's)."""
    rows = subprocess.run(["ps", "-eo", "comm=,args="], capture_output=True, text=True, check=True).stdout
    found = []
    for row in rows.splitlines():
        comm, _, args = row.strip().partition(" ")
        if comm in COMPONENTS or (comm.startswith("containerd-shim") and "-namespace k8s.io" in args):
            found.append(row.strip()[:200])
    return found
