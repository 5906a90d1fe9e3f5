"""Port-forwards through the Kubernetes API: a local listener, and per accepted connection one
API port-forward stream to a ready pod (chosen again each time, so a replaced pod is followed)."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Forwarder:
    """``pick_pod`` names a ready pod (asked for each connection); ``stream_api`` is an API client
    of the forwarder's own: the client's stream support swaps a method on it for the handshake,
    so it opens one stream at a time and serves nothing else."""

    def __init__(self, pick_pod: Callable[[], str], stream_api: Any, namespace: str, port: int, what: str) -> None:
        self.pick_pod, self.stream_api = pick_pod, stream_api
        self.namespace, self.port, self.what = namespace, port, what
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.local_port = int(self.listener.getsockname()[1])
        self._stopped = threading.Event()
        self._handshake = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"port-forward {what}:{port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        from kubernetes import client
        from kubernetes.stream import portforward

        forward = None
        try:
            pod = self.pick_pod()
            with self._handshake:
                forward = portforward(client.CoreV1Api(self.stream_api).connect_get_namespaced_pod_portforward,
                                      pod, self.namespace, ports=str(self.port))
            remote = forward.socket(self.port)
            remote.setblocking(True)
            _pump(conn, remote)
        except Exception as exc:  # one failed connection: the client sees it closed
            log.debug("port-forward to %s/%s:%d: %s", self.namespace, self.what, self.port, exc)
        finally:
            conn.close()
            if forward is not None:
                with contextlib.suppress(Exception):
                    forward.close()


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes."""
    sockets = [a, b]
    while True:
        readable, _, _ = select.select(sockets, [], [], 300)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(1 << 16)
            if not data:
                return
            (b if sock is a else a).sendall(data)
