"""`drdrill provision` and `drdrill images`: what the targets run on, built once per machine."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def add_commands(sub: argparse._SubParsersAction) -> None:
    prov = sub.add_parser("provision", help="fetch and build the local target's services (once per machine)")
    prov.add_argument("--es-version", action="append", dest="es_versions",
                      help="Elasticsearch version(s) to fetch (default: the pinned 9.x and 8.19.x)")
    prov.add_argument("--json", action="store_true")
    prov.set_defaults(handler=cmd_provision)

    images = sub.add_parser("images", help="the containers target's images")
    images_sub = images.add_subparsers(dest="images_command", required=True)
    build = images_sub.add_parser("build", help="build drdrill's images (Debian base, PostgreSQL, Elasticsearch, "
                                  "MinIO, drdrill itself, a Pushgateway) into the Docker engine; cached, rebuilt "
                                  "only when an input changes")
    build.add_argument("--es-version", action="append", dest="es_versions",
                       help="Elasticsearch version(s) (default: the pinned 9.x)")
    build.add_argument("--json", action="store_true")
    build.set_defaults(handler=cmd_images_build)


def cmd_provision(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from drdrill.settings import DEFAULT_ES8_VERSION, DEFAULT_ES_VERSION, load_paths, stack_settings_from_env
    from drdrill.targets.local.stack import LocalStack

    paths = load_paths()
    base = stack_settings_from_env()
    versions = args.es_versions or [DEFAULT_ES_VERSION, DEFAULT_ES8_VERSION]
    started = time.monotonic()
    report: dict[str, Any] = {"cache_dir": str(paths.cache_dir), "elasticsearch": {}}
    for version in versions:
        prov = LocalStack(paths, replace(base, es_version=version)).provision()
        report["elasticsearch"][version] = {
            "home": str(prov.es_home), "java": f"{prov.java.major} ({prov.java.source}) {prov.java.home}"}
        report.update(minio=str(prov.minio_binary), postgres=str(prov.pg_bindir),
                      service_user=prov.user.name if prov.user else None)
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"provisioned in {report['seconds']}s under {paths.cache_dir}")
        for version, info in report["elasticsearch"].items():
            print(f"  elasticsearch {version}: {info['home']} (java {info['java']})")
        print(f"  minio:    {report['minio']}")
        print(f"  postgres: {report['postgres']}")
    return 0


def cmd_images_build(args: argparse.Namespace) -> int:
    from drdrill.adapters.docker_engine import DockerEngine
    from drdrill.provision.images import ImageBuilder
    from drdrill.settings import DEFAULT_ES_VERSION, StackSettings, load_paths, stack_settings_from_env

    paths = load_paths()
    settings = stack_settings_from_env()
    versions = args.es_versions or [settings.es_version or DEFAULT_ES_VERSION]
    for version in versions:
        StackSettings(es_version=version)  # a usage error for a version drdrill cannot run
    engine = DockerEngine(paths.state_dir, paths.cache_dir)
    started = time.monotonic()
    rows: dict[str, Any] = {}
    try:
        engine.ensure()
        builder = ImageBuilder(engine, paths.cache_dir)
        for version in versions:
            for service, image in builder.ensure(version, settings.minio_version).items():
                rows[image.tag] = {"service": service, "id": image.id, "built": image.built,
                                   "seconds": round(image.seconds, 1)}
        # drdrill's own cluster: drdrill itself (the in-cluster restore test) and a Pushgateway
        for service, image in builder.ensure_cluster_images().items():
            rows[image.tag] = {"service": service, "id": image.id, "built": image.built,
                               "seconds": round(image.seconds, 1)}
    finally:
        engine.stop()  # only if this command started it
    total = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps({"images": rows, "seconds": total}, indent=2))
    else:
        for tag, row in rows.items():
            state = f"built in {row['seconds']}s" if row["built"] else "up to date"
            print(f"  {tag:<58} {row['id'][:19]}  {state}")
        print(f"images ready in {total}s")
    return 0
