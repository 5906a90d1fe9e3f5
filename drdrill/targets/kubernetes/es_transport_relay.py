"""Elasticsearch's transport between the pods of drdrill's own cluster, run as a sidecar of each
Elasticsearch pod (``python3 -m drdrill.targets.kubernetes.es_transport_relay``; stdlib only).

Why it exists: an Elasticsearch node whose transport is bound to or published on anything but
loopback enforces its bootstrap checks, and on these machines the file-descriptor check cannot
pass (RLIMIT_NOFILE's hard limit is 20000 for every process drdrill starts, 32768 for PID 1,
against the 65535 the check wants, and without CAP_SYS_RESOURCE no process may raise it). So
each node keeps its transport on 127.0.0.1:``transport`` and publishes 127.0.0.1:``publish_base
+ ordinal``; in every pod this relay listens on those loopback ports (one per node) and carries
each connection to that node's pod (through a Service of its own: this cluster has no DNS), and
it takes the other pods' connections on ``inbound`` to the local node's transport. The nodes talk
over the pod network all the same; only the address Elasticsearch sees is loopback.

A platform's own cluster needs none of this (deploy/k8s/base: transport on the pod's address,
peers by their names under the headless Service)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass  # the other side went away: the connection ends, as Elasticsearch expects of a lost peer
    finally:
        writer.close()


class _Route:
    """Connections accepted on one port, each carried to ``host:port``."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name, self.host, self.port = name, host, port
        self._last_report = 0.0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer_reader, peer_writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            # A peer that is not up yet is normal while a cluster forms: said once a minute.
            if time.monotonic() - self._last_report > 60:
                self._last_report = time.monotonic()
                print(f"relay {self.name}: {self.host}:{self.port} unreachable: {exc}", file=sys.stderr, flush=True)
            writer.close()
            return
        await asyncio.gather(_pipe(reader, peer_writer), _pipe(peer_reader, writer))


async def _serve(args: argparse.Namespace) -> None:
    servers = [await asyncio.start_server(_Route("inbound", "127.0.0.1", args.transport), "0.0.0.0",  # noqa: S104
                                          args.inbound)]
    for ordinal, host in enumerate(args.peers):
        # The local node is reached on its own loopback port (not through its Service and back).
        route = (_Route(f"node {ordinal} (self)", "127.0.0.1", args.transport) if ordinal == args.self_ordinal
                 else _Route(f"node {ordinal}", host, args.inbound))
        servers.append(await asyncio.start_server(route, "127.0.0.1", args.publish_base + ordinal))
    print(f"relay: node {args.self_ordinal}, inbound :{args.inbound} -> 127.0.0.1:{args.transport}; "
          f"peers {args.peers} on 127.0.0.1:{args.publish_base}+", file=sys.stderr, flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-ordinal", type=int, required=True)
    parser.add_argument("--transport", type=int, default=9300, help="the local node's transport port (loopback)")
    parser.add_argument("--inbound", type=int, default=9400, help="where the other pods reach this node")
    parser.add_argument("--publish-base", type=int, default=9310, help="node N is 127.0.0.1:(this + N)")
    parser.add_argument("peers", nargs="+", help="each node's address, by ordinal (its Service's cluster IP)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(parse(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
