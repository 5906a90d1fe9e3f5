"""The containers target's images, built here from what provisioning already fetched:

* ``drdrill/debian:bookworm`` - a Debian root made with ``mmdebstrap --variant=minbase`` and
  ``docker import``ed (no registry needed);
* ``drdrill/postgres:15`` - PostgreSQL 15 from Debian's packages, inside ``docker build``;
* ``drdrill/elasticsearch:<version>`` - the integ-test-zip distribution and the Java runtime
  the local target uses;
* ``drdrill/minio:<version>`` - the pinned MinIO binary built with ``go install``;
* ``drdrill/toxiproxy:<version>`` - Toxiproxy, likewise: the object store's network path;
* ``drdrill/pause:1`` - the Kubernetes pod sandbox (no registry serves ``registry.k8s.io/pause``);
* ``drdrill/toolbox:1`` - the runbook's command-line tools (bash, curl, openssl, psql, pg_dump)
  that the platform's backup CronJob and restore Jobs run on Kubernetes.

Each image carries the hash of its inputs (Dockerfile, scripts, versions, the base image's id)
and is rebuilt only when that hash changes. The images follow the official images' conventions
(environment variables, data paths, ports, users), so that settings naming the official images
(``docker.elastic.co/elasticsearch/elasticsearch:9.5.4``, ``minio/minio``, ``postgres:15``) run
with the same container specs where a registry is reachable; that was not tested here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drdrill.adapters.docker_engine import DockerEngine
from drdrill.errors import ProvisionError, ToolMissing
from drdrill.host.tools import file_lock, run_step
from drdrill.provision.elasticsearch import ensure_elasticsearch
from drdrill.provision.java import find_java, strip_unsupported_jvm_options
from drdrill.provision.minio import ensure_minio
from drdrill.provision.toxiproxy import VERSION as TOXIPROXY_VERSION
from drdrill.provision.toxiproxy import ensure_toxiproxy
from drdrill.settings import es_major

log = logging.getLogger(__name__)

BASE_TAG = "drdrill/debian:bookworm"
MMDEBSTRAP_ARGS = ["--variant=minbase", "bookworm"]
PG_MAJOR = "15"

POSTGRES_DOCKERFILE = f"""\
FROM {BASE_TAG}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-{PG_MAJOR} >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/drdrill-postgres
ENV PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/drdrill-postgres"]
"""

# As the official image: initialise on first start with POSTGRES_PASSWORD for the superuser
# POSTGRES_USER (default "postgres") and create POSTGRES_DB if given; password logins from the
# network; the password is not kept in the environment.
POSTGRES_ENTRYPOINT = f"""\
#!/bin/sh
set -eu
bin=/usr/lib/postgresql/{PG_MAJOR}/bin
user=${{POSTGRES_USER:-postgres}}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth=scram-sha-256 --encoding=UTF8 --no-locale
  rm -f "$pwfile"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ -n "${{POSTGRES_DB:-}}" ] && [ "$POSTGRES_DB" != "$user" ]; then
    echo "CREATE DATABASE \\"$POSTGRES_DB\\" OWNER \\"$user\\"" |
      "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
  fi
fi
unset POSTGRES_PASSWORD
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c log_statement=none
"""

# As the official image: uid 1000, group 0 owns what Elasticsearch writes (so any uid in
# group 0 may run it), settings from environment variables with a dot in their name.
ELASTICSEARCH_DOCKERFILE = f"""\
FROM {BASE_TAG}
COPY java /opt/java
COPY elasticsearch /usr/share/elasticsearch
COPY entrypoint.sh /usr/local/bin/drdrill-elasticsearch
RUN useradd --uid 1000 --gid 0 --home-dir /usr/share/elasticsearch --no-create-home elasticsearch \\
 && mkdir -p /usr/share/elasticsearch/data /usr/share/elasticsearch/logs \\
 && chgrp -R 0 /usr/share/elasticsearch && chmod -R g=u /usr/share/elasticsearch
ENV ES_JAVA_HOME=/opt/java ES_TMPDIR=/tmp
WORKDIR /usr/share/elasticsearch
USER 1000:0
EXPOSE 9200
ENTRYPOINT ["/usr/local/bin/drdrill-elasticsearch"]
"""

ELASTICSEARCH_ENTRYPOINT = """\
#!/bin/bash
set -eu
args=()
while IFS='=' read -r -d '' name value; do
  case "$name" in *.*) args+=("-E$name=$value") ;; esac
done < <(env -0)
exec /usr/share/elasticsearch/bin/elasticsearch "${args[@]}" "$@"
"""

TOXIPROXY_DOCKERFILE = f"""\
FROM {BASE_TAG}
COPY toxiproxy /usr/bin/toxiproxy-server
EXPOSE 8474
ENTRYPOINT ["/usr/bin/toxiproxy-server"]
"""

MINIO_DOCKERFILE = f"""\
FROM {BASE_TAG}
COPY minio /usr/bin/minio
RUN mkdir -p /data
ENV HOME=/tmp MINIO_BROWSER=off MINIO_UPDATE=off
EXPOSE 9000
ENTRYPOINT ["/usr/bin/minio"]
CMD ["server", "--quiet", "--address", ":9000", "/data"]
"""


PAUSE_TAG = "drdrill/pause:1"
TOOLBOX_TAG = "drdrill/toolbox:1"

# A sandbox only holds the pod's namespaces open; as PID 1 it must exit on SIGTERM itself (the
# kernel gives PID 1 no default handler), or every pod deletion waits out its grace period.
PAUSE_DOCKERFILE = f"""\
FROM {BASE_TAG}
ENTRYPOINT ["/bin/bash", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
"""

TOOLBOX_DOCKERFILE = f"""\
FROM {BASE_TAG}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      postgresql-client-{PG_MAJOR} curl openssl ca-certificates >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
"""


@dataclass(frozen=True)
class BuiltImage:
    service: str
    tag: str
    id: str
    built: bool  # False: the cached image's inputs were unchanged
    seconds: float


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def inputs_digest(base_id: str, dockerfile: str, files: dict[str, str], extra: tuple[str, ...] = ()) -> str:
    """What an image is built from, as one hash: it is rebuilt exactly when this changes."""
    return _digest(base_id, dockerfile, *(f"{k}\0{v}" for k, v in sorted(files.items())), *extra)


class ImageBuilder:
    """Builds the images (their base, the three services, Toxiproxy) into ``engine``; no I/O
    before :meth:`ensure`."""

    def __init__(self, engine: DockerEngine, cache_dir: Path) -> None:
        self.engine, self.cache_dir = engine, cache_dir
        self.root = cache_dir / "images"

    def ensure(self, es_version: str, minio_version: str) -> dict[str, BuiltImage]:
        with file_lock(self.cache_dir / "locks" / "images.lock"):
            base = self._base()
            base_id = base.id
            images = {"base": base}
            images["postgres"] = self._build("postgres", f"drdrill/postgres:{PG_MAJOR}", base_id,
                                             POSTGRES_DOCKERFILE, {"entrypoint.sh": POSTGRES_ENTRYPOINT})
            images["elasticsearch"] = self._elasticsearch(es_version, base_id)
            images["minio"] = self._minio(minio_version, base_id)
            images["toxiproxy"] = self._toxiproxy(base_id)
            images["pause"] = self._build("pause", PAUSE_TAG, base_id, PAUSE_DOCKERFILE, {})
            images["toolbox"] = self._build("toolbox", TOOLBOX_TAG, base_id, TOOLBOX_DOCKERFILE, {})
            return images

    def ensure_cluster_images(self) -> dict[str, BuiltImage]:
        """What drdrill's own cluster runs beside the platform: drdrill itself (the in-cluster
        restore test) and a Pushgateway (:mod:`drdrill.provision.cluster_images`)."""
        from drdrill.provision import cluster_images as ci

        with file_lock(self.cache_dir / "locks" / "images.lock"):
            base_id = self._base().id
            root = ci.checkout_root()
            ca_bundle = Path("/etc/ssl/certs/ca-certificates.crt")

            def stage(context: Path) -> None:
                (context / "wheels").mkdir()
                ci.build_wheel(root, context / "wheels", self.cache_dir / "logs" / "drdrill-wheel.log")
                (context / "requirements.txt").write_text(ci.requirements((root / "pyproject.toml").read_text()))
                if ca_bundle.is_file():
                    shutil.copy2(ca_bundle, context / "pip-ca.pem")
                else:
                    (context / "pip-ca.pem").write_text("")

            version = ci.drdrill_version()
            return {
                "drdrill": self._build("drdrill", ci.drdrill_tag(version), base_id,
                                       ci.drdrill_dockerfile(BASE_TAG, PG_MAJOR), {}, stage=stage,
                                       extra=(version, ci.source_digest(root))),
                "pushgateway": self._build("pushgateway", ci.PUSHGATEWAY_TAG, base_id,
                                           ci.pushgateway_dockerfile(BASE_TAG), {}),
            }

    def ensure_toxiproxy(self) -> BuiltImage:
        """Only the proxy (the services' images are named in the settings)."""
        with file_lock(self.cache_dir / "locks" / "images.lock"):
            return self._toxiproxy(self._base().id)

    def _toxiproxy(self, base_id: str) -> BuiltImage:
        binary = ensure_toxiproxy(self.cache_dir)

        def stage(context: Path) -> None:
            shutil.copy2(binary, context / "toxiproxy")

        return self._build("toxiproxy", f"drdrill/toxiproxy:{TOXIPROXY_VERSION}", base_id, TOXIPROXY_DOCKERFILE, {},
                           stage=stage, extra=(TOXIPROXY_VERSION,))

    def _base(self) -> BuiltImage:
        inputs = _digest("mmdebstrap", *MMDEBSTRAP_ARGS)
        started = time.monotonic()
        found = self.engine.image(BASE_TAG)
        if found is not None and found.inputs == inputs:
            return BuiltImage("base", BASE_TAG, found.id, False, 0.0)
        tarball = self.root / "debian-bookworm-minbase.tar"
        if not tarball.exists():
            mmdebstrap = shutil.which("mmdebstrap")
            if mmdebstrap is None:
                raise ToolMissing("mmdebstrap", "apt-get install mmdebstrap (it makes the images' Debian base)")
            self.root.mkdir(parents=True, exist_ok=True)
            partial = tarball.with_suffix(".partial.tar")
            run_step("making a Debian bookworm base with mmdebstrap", [mmdebstrap, "--quiet", *MMDEBSTRAP_ARGS,
                     str(partial)], log_path=self.cache_dir / "logs" / "mmdebstrap.log", timeout_s=900)
            os.replace(partial, tarball)
        self.engine.import_rootfs(tarball, BASE_TAG, inputs)
        return BuiltImage("base", BASE_TAG, self._id(BASE_TAG), True, time.monotonic() - started)

    def _elasticsearch(self, version: str, base_id: str) -> BuiltImage:
        home = ensure_elasticsearch(self.cache_dir, version)
        java = find_java(es_major(version), self.cache_dir)
        java_release = (java.home / "release").read_text(errors="replace")
        files = {"entrypoint.sh": ELASTICSEARCH_ENTRYPOINT}

        def stage(context: Path) -> None:
            shutil.copytree(java.home, context / "java", symlinks=False)
            shutil.copytree(home, context / "elasticsearch", symlinks=True)
            strip_unsupported_jvm_options(context / "elasticsearch" / "config", java)

        return self._build("elasticsearch", f"drdrill/elasticsearch:{version}", base_id, ELASTICSEARCH_DOCKERFILE,
                           files, stage=stage, extra=(version, str(java.home), java_release))

    def _minio(self, version: str, base_id: str) -> BuiltImage:
        binary = ensure_minio(self.cache_dir, version)

        def stage(context: Path) -> None:
            shutil.copy2(binary, context / "minio")

        return self._build("minio", f"drdrill/minio:{version}", base_id, MINIO_DOCKERFILE, {}, stage=stage,
                           extra=(version,))

    def _build(self, service: str, tag: str, base_id: str, dockerfile: str, files: dict[str, str], *,
               stage: Callable[[Path], None] | None = None, extra: tuple[str, ...] = ()) -> BuiltImage:
        inputs = inputs_digest(base_id, dockerfile, files, extra)
        found = self.engine.image(tag)
        if found is not None and found.inputs == inputs:
            return BuiltImage(service, tag, found.id, False, 0.0)
        started = time.monotonic()
        context = self.root / "context" / service
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir(parents=True)
        try:
            (context / "Dockerfile").write_text(dockerfile)
            for name, text in files.items():
                (context / name).write_text(text)
                os.chmod(context / name, 0o755)
            if stage is not None:
                stage(context)
            self.engine.build(context, tag, inputs, self.cache_dir / "logs" / f"image-{service}.log")
        finally:
            shutil.rmtree(context, ignore_errors=True)
        return BuiltImage(service, tag, self._id(tag), True, time.monotonic() - started)

    def _id(self, tag: str) -> str:
        found = self.engine.image(tag)
        if found is None:
            raise ProvisionError(f"image {tag} is missing right after it was built", hint="see the build log")
        return found.id
