"""Kubernetes v1.34 binaries built from the Go module proxy (no release downloads reach here).

``k8s.io/kubernetes`` cannot be ``go install``ed: its go.mod replaces 31 staging modules with
``./staging/...``. A wrapper module requires it and replaces each staging module with the
published ``k8s.io/<name> v0.34.x``; the version variables are set at link time, or the
binaries report ``v0.0.0-master``. Built once per machine into the cache.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from drdrill.errors import ProvisionError
from drdrill.host.tools import file_lock, make_world_readable, require_tool, run_step

VERSION = "v1.34.4"
STAGING_VERSION = "v0.34.4"
COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")


def wrapper_go_mod(kubernetes_go_mod: str, version: str = VERSION, staging_version: str = STAGING_VERSION) -> str:
    """The wrapper module's go.mod, from k8s.io/kubernetes's own (pure)."""
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_go_mod, re.M)
    if not staging:
        raise ProvisionError("k8s.io/kubernetes's go.mod names no staging modules: the wrapper cannot be made")
    replaces = "".join(f"\t{module} => {module} {staging_version}\n" for module in staging)
    return (f"module drdrill.local/kubernetes-build\n\ngo 1.24\n\nrequire k8s.io/kubernetes {version}\n\n"
            f"replace (\n{replaces})\n")


def link_flags(version: str = VERSION) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.gitVersion={version}", f"-X {package}.gitMajor={major}",
                  f"-X {package}.gitMinor={minor}"]
    return " ".join(flags)


def kubernetes_bin(cache_dir: Path, version: str = VERSION) -> Path:
    return cache_dir / "kubernetes" / version / "bin"


def ensure_kubernetes(cache_dir: Path, version: str = VERSION) -> Path:
    """The bin directory holding :data:`COMMANDS`, built on first use (several minutes)."""
    bindir = kubernetes_bin(cache_dir, version)
    if all((bindir / cmd).exists() for cmd in COMMANDS):
        return bindir
    go = require_tool("go", "install Go 1.24 or newer (https://go.dev/doc/install or apt-get install golang)")
    with file_lock(cache_dir / "locks" / f"kubernetes-{version}.lock"):
        if all((bindir / cmd).exists() for cmd in COMMANDS):
            return bindir
        work = bindir.parent / "build"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        logs = cache_dir / "logs" / f"kubernetes-{version}-build.log"
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
        run_step("fetching k8s.io/kubernetes's module file", [go, "mod", "download", f"k8s.io/kubernetes@{version}"],
                 log_path=logs, env=env, cwd=work)
        gomodcache = Path(os.environ.get("GOMODCACHE") or Path(os.environ.get("GOPATH") or Path.home() / "go")
                          / "pkg" / "mod")
        upstream = gomodcache / "cache" / "download" / "k8s.io" / "kubernetes" / "@v" / f"{version}.mod"
        (work / "go.mod").write_text(wrapper_go_mod(upstream.read_text()))
        run_step("resolving Kubernetes' dependencies", [go, "get", *(f"k8s.io/kubernetes/cmd/{c}@{version}"
                                                                      for c in COMMANDS)],
                 log_path=logs, env=env, cwd=work)
        staging = bindir.with_name("bin.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for cmd in COMMANDS:
            run_step(f"building {cmd} {version} (the first one takes minutes)",
                     [go, "build", "-ldflags", link_flags(version), "-o", str(staging / cmd),
                      f"k8s.io/kubernetes/cmd/{cmd}"], log_path=logs, env=env, cwd=work, timeout_s=3600)
        make_world_readable(staging)
        shutil.rmtree(bindir, ignore_errors=True)
        os.replace(staging, bindir)
        shutil.rmtree(work, ignore_errors=True)
    return bindir
