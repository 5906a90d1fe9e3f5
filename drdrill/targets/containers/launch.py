"""Starting one container of the containers target from its spec, what a failed start is
explained with (the first container that died, its log), and which images ran."""

from __future__ import annotations

from typing import Any

from drdrill.adapters.docker_engine import DockerEngine
from drdrill.host.readiness import CAUSE_LINES
from drdrill.targets.containers.specs import ContainerSpec


def run_container(name: str, spec: ContainerSpec, *, labels: dict[str, str], network: str,
                  engine: DockerEngine) -> None:
    """Start ``spec`` as container ``name`` (on ``network``, unless the spec joins another
    container's network namespace), its named volumes created with ``labels`` first."""
    from testcontainers.core.container import DockerContainer

    for volume in spec.volumes:
        if not volume.startswith("/"):
            engine.create_volume(volume, labels)
    container = DockerContainer(spec.image, name=name, env=spec.env)
    for inside, outside in spec.publish.items():
        # Loopback only: docker-py takes (address, port), testcontainers' typing an int.
        container.ports[f"{inside}/tcp"] = ("127.0.0.1", outside)  # type: ignore[assignment]
    for source, target in spec.volumes.items():
        container.with_volume_mapping(source, target, "rw")
    for path, options in spec.tmpfs.items():
        container.tmpfs[path] = options
    if spec.command:
        container.with_command(spec.command)
    joined = {"network_mode": spec.network_mode} if spec.network_mode else {"network": network}
    entrypoint = {"entrypoint": spec.entrypoint} if spec.entrypoint else {}
    container.with_kwargs(labels=labels, user=spec.user, mem_limit=spec.mem_limit, **joined, **entrypoint)
    container.start()
    container.get_docker_client().client.close()  # the container runs on; its client is done


def first_exit(engine: DockerEngine, names: list[str]) -> int | None:
    """The exit status of the first of ``names`` that died: one dead node fails a cluster's
    start at once, not at the timeout."""
    return next((code for code in (engine.container_state(n)[1] for n in names) if code is not None), None)


def failed_log(engine: DockerEngine, names: list[str]) -> str:
    """The log of the first of ``names`` that died (else the first's), CAUSE_LINES of it: the
    fatal error is far back."""
    dead = next((n for n in names if engine.container_state(n)[1] is not None), names[0])
    return engine.logs(dead, CAUSE_LINES)


def image_facts(engine: DockerEngine, images: dict[str, str]) -> dict[str, Any]:
    """Which images ran, with their ids (digests of the local builds), for the report."""
    facts = {}
    for service, tag in images.items():
        found = engine.image(tag)
        facts[service] = {"image": tag, "id": found.id if found else None, "inputs": found.inputs if found else None}
    return facts
