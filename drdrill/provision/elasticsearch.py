"""Elasticsearch from Maven Central's integ-test-zip distribution, fetched with ``mvn``."""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
from pathlib import Path

from drdrill.errors import ProvisionError
from drdrill.host.tools import file_lock, make_world_readable, require_tool, run_step

log = logging.getLogger(__name__)

ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


def es_home(cache_dir: Path, version: str) -> Path:
    return cache_dir / "elasticsearch" / version / f"elasticsearch-{version}"


def ensure_elasticsearch(cache_dir: Path, version: str) -> Path:
    """Return the unpacked Elasticsearch home for ``version``, fetching it on first use."""
    home = es_home(cache_dir, version)
    if (home / "bin" / "elasticsearch").exists():
        return home
    with file_lock(cache_dir / "locks" / f"elasticsearch-{version}.lock"):
        if (home / "bin" / "elasticsearch").exists():
            return home
        mvn = require_tool("mvn", "install Maven: apt-get install -y maven")
        downloads = cache_dir / "downloads"
        archive = downloads / f"elasticsearch-{version}.zip"
        if not archive.exists():
            run_step(
                f"downloading Elasticsearch {version} from Maven Central",
                [mvn, "-B", "-q", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={ARTIFACT}:{version}:zip",
                 f"-DoutputDirectory={downloads}"],
                log_path=cache_dir / "logs" / f"elasticsearch-{version}-download.log",
            )
        if not archive.exists():
            raise ProvisionError(
                f"Maven did not produce {archive.name}",
                hint=f"is {version} published as {ARTIFACT}? see the download log in {cache_dir / 'logs'}",
            )
        staging = home.parent.with_name(home.parent.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        log.info("unpacking %s", archive.name)
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(staging)
            # zipfile drops the executable bit; restore it from the archive's Unix mode.
            for info in bundle.infolist():
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(staging / info.filename, mode)
        make_world_readable(staging)
        shutil.rmtree(home.parent, ignore_errors=True)
        os.replace(staging, home.parent)
    if not (home / "bin" / "elasticsearch").exists():
        raise ProvisionError(f"{archive.name} did not contain elasticsearch-{version}/bin/elasticsearch")
    return home
