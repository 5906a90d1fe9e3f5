"""Toxiproxy's HTTP API: the proxy in front of MinIO on the containers target, and the toxics
that make the object store's network slow (latency, bandwidth) or reset connections.
All of drdrill's talk to Toxiproxy goes through here (stdlib HTTP: the API is four verbs)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from drdrill.errors import ServiceError

STORE_PROXY = "minio"  # the one proxy: every client's way to the object store


@dataclass(frozen=True)
class Toxic:
    """One toxic on the proxy; ``stream`` is ``downstream`` (what clients receive) or
    ``upstream`` (what they send)."""

    name: str
    kind: str  # latency | bandwidth | reset_peer | timeout ...
    stream: str
    attributes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "stream": self.stream, "toxicity": 1.0,
                "attributes": self.attributes}


def latency(ms: int, *, jitter_ms: int = 0, stream: str = "downstream") -> Toxic:
    return Toxic(f"latency_{stream}", "latency", stream, {"latency": ms, "jitter": jitter_ms})


def bandwidth(kib_per_s: int, *, stream: str = "downstream") -> Toxic:
    return Toxic(f"bandwidth_{stream}", "bandwidth", stream, {"rate": kib_per_s})


def reset_peer(after_ms: int = 0) -> Toxic:
    """Connections are reset (TCP RST) ``after_ms`` after they open: what a store that crashes
    under load, or a load balancer dropping it, looks like to its clients."""
    return Toxic("reset_peer_upstream", "reset_peer", "upstream", {"timeout": after_ms})


class Toxiproxy:
    def __init__(self, api_url: str, *, timeout_s: float = 5) -> None:
        self.api_url, self.timeout_s = api_url.rstrip("/"), timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_url + path, data=data, method=method,  # noqa: S310  # http only
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"Toxiproxy {method} {path}: HTTP {exc.code} {exc.read().decode()[:200]}") from exc
        except OSError as exc:
            raise ServiceError(f"Toxiproxy at {self.api_url} did not answer: {exc}") from exc
        return json.loads(text) if text.strip() else None

    def probe(self) -> tuple[bool, str]:
        try:
            return True, f"version {self._call('GET', '/version')}"
        except ServiceError as exc:
            return False, str(exc)

    def ensure_proxy(self, name: str, listen: str, upstream: str) -> None:
        proxies = self._call("GET", "/proxies") or {}
        if name in proxies:
            self._call("POST", f"/proxies/{name}", {"listen": listen, "upstream": upstream, "enabled": True})
        else:
            self._call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True})

    def add(self, toxic: Toxic, proxy: str = STORE_PROXY) -> None:
        self._call("POST", f"/proxies/{proxy}/toxics", toxic.to_dict())

    def toxics(self, proxy: str = STORE_PROXY) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/proxies/{proxy}/toxics") or [])

    def clear(self, proxy: str = STORE_PROXY) -> None:
        for toxic in self.toxics(proxy):
            self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic['name']}")
