"""The images drdrill's own cluster runs beside the platform (issue 21):

* ``drdrill/drdrill:<version>`` - drdrill itself, for the in-cluster restore test
  (deploy/k8s/restore-test): a wheel built from this checkout (in a temporary copy: the source
  tree gets no build/ or egg-info), installed with its default and ``kubernetes`` dependencies
  from PyPI during the build, and PostgreSQL 15's client programs (the restore test's pg_restore);
* ``drdrill/pushgateway:1`` - Debian's ``prometheus-pushgateway`` (bookworm: 1.5.1), where the
  restore test pushes its metrics.

Pure functions here; :class:`drdrill.provision.images.ImageBuilder` builds them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from drdrill.errors import ProvisionError

PUSHGATEWAY_TAG = "drdrill/pushgateway:1"
# What the wheel is built from: pyproject's package-dir and its build backend (tools/).
SOURCE_ENTRIES = ("pyproject.toml", "README.md", "drdrill", "steps", "features", "deploy", "tools")
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache", ".ruff_cache")


def drdrill_version() -> str:
    return importlib.metadata.version("drdrill")


def drdrill_tag(version: str | None = None) -> str:
    return f"drdrill/drdrill:{version or drdrill_version()}"


def _base_dockerfile(base_tag: str, pg_major: str) -> str:
    # find_pg_bindir wants a major's full bin dir (initdb beside pg_restore): the server package,
    # whose default cluster is not created (create_main_cluster = false) and never started.
    return f"""\
FROM {base_tag}
RUN apt-get update -qq \\
 && mkdir -p /etc/postgresql-common \\
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      python3 python3-venv postgresql-{pg_major} ca-certificates >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
"""


def drdrill_dockerfile(base_tag: str, pg_major: str) -> str:
    """drdrill in a venv at /opt/drdrill, run as uid 1000 group 0 (Elasticsearch's, as the
    platform's backup Job: the repository copies it makes must be Elasticsearch's to read).
    The dependencies are a layer of their own (``requirements.txt``, from pyproject), so that a
    changed checkout rebuilds only the wheel's layer; ``pip-ca.pem`` is the build host's CA
    bundle (public certificates), for the PyPI download."""
    return _base_dockerfile(base_tag, pg_major) + """\
COPY pip-ca.pem requirements.txt /tmp/deps/
RUN python3 -m venv /opt/drdrill \\
 && PIP_CERT=/tmp/deps/pip-ca.pem /opt/drdrill/bin/pip install --no-cache-dir -q --disable-pip-version-check \\
      -r /tmp/deps/requirements.txt \\
 && useradd --uid 1000 --gid 0 --home-dir /var/lib/drdrill --create-home drdrill
COPY wheels /tmp/wheels
RUN /opt/drdrill/bin/pip install --no-cache-dir -q --no-deps --disable-pip-version-check /tmp/wheels/drdrill-*.whl \\
 && rm -rf /tmp/wheels /tmp/deps
ENV PATH=/opt/drdrill/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/var/lib/drdrill PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/drdrill
USER 1000:0
ENTRYPOINT ["drdrill"]
"""


def pushgateway_dockerfile(base_tag: str) -> str:
    return f"""\
FROM {base_tag}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-pushgateway >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 9091
ENTRYPOINT ["/usr/bin/prometheus-pushgateway"]
CMD ["--web.listen-address=:9091"]
"""


def requirements(pyproject: str, extras: tuple[str, ...] = ("kubernetes",)) -> str:
    """The default-install dependencies and ``extras``' from pyproject.toml, one a line."""
    import tomllib

    project = tomllib.loads(pyproject)["project"]
    rows = list(project.get("dependencies", []))
    for extra in extras:
        rows += project.get("optional-dependencies", {}).get(extra, [])
    return "".join(f"{row}\n" for row in rows)


def checkout_root() -> Path:
    """The source checkout drdrill runs from (an editable install): the wheel is built from it."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "drdrill" / "__init__.py").is_file():
        raise ProvisionError(f"{root} is not a drdrill checkout: the drdrill image is built from the source",
                             hint="run `drdrill images build` from a checkout's virtualenv (pip install -e .)")
    return root


def source_digest(root: Path) -> str:
    """A hash of every file the wheel is built from (a wheel's own bytes carry timestamps)."""
    digest = hashlib.sha256()
    for entry in SOURCE_ENTRIES:
        path = root / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                     and "__pycache__" not in p.parts and p.suffix != ".pyc")
        for file in files:
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def build_wheel(root: Path, out_dir: Path, log_path: Path) -> Path:
    """``pip wheel`` of a copy of the checkout (setuptools writes build/ and egg-info beside
    the sources it builds); returns the wheel in ``out_dir``."""
    with tempfile.TemporaryDirectory(prefix="drdrill-wheel-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for entry in SOURCE_ENTRIES:
            path = root / entry
            if path.is_dir():
                shutil.copytree(path, source / entry, ignore=_SKIPPED)
            elif path.is_file():
                shutil.copy2(path, source / entry)
        with open(log_path, "w") as log:
            done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir",
                                   str(out_dir), str(source)], stdout=log, stderr=subprocess.STDOUT, timeout=900,
                                  check=False)
    wheels = sorted(out_dir.glob("drdrill-*.whl"))
    if done.returncode or not wheels:
        raise ProvisionError("building drdrill's wheel failed", hint=f"see {log_path}")
    return wheels[-1]
