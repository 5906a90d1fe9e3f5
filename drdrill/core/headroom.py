"""Will a restore beside the live indices fit under the disk watermarks? (pure)

Elasticsearch stops allocating shards to a node above its high watermark and makes indices
read-only above flood stage: a restore test that crosses them fails halfway (and the report
would blame the backups) or, worse, blocks the platform's own writes. So the size of what will
be restored is compared with each data node's free space above the high watermark before
anything is restored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BYTES = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|pb)?", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40, "pb": 2**50}
# Elasticsearch's defaults for the high watermark.
DEFAULT_HIGH = "90%"


def reserved_bytes(watermark: str, total_bytes: int) -> int:
    """Bytes that must stay free on a disk of ``total_bytes`` under ``watermark``: a used
    percentage ("90%") or ratio ("0.9"), or an absolute free amount ("500mb")."""
    text = watermark.strip().lower()
    if text.endswith("%"):
        used = float(text[:-1]) / 100
        return round(total_bytes * (1 - used))
    try:
        ratio = float(text)
    except ValueError:
        ratio = None
    if ratio is not None and ratio <= 1.0:
        return round(total_bytes * (1 - ratio))
    found = _BYTES.fullmatch(text)
    if not found:
        raise ValueError(f"not a disk watermark: {watermark!r}")
    return int(float(found.group(1)) * _UNITS[(found.group(2) or "b").lower()])


@dataclass(frozen=True)
class NodeRoom:
    node: str
    total_bytes: int
    available_bytes: int
    reserved_bytes: int  # what the high watermark keeps free

    @property
    def room_bytes(self) -> int:
        return max(0, self.available_bytes - self.reserved_bytes)


def headroom_problem(restore_bytes: int, largest_index_bytes: int, nodes: list[NodeRoom]) -> str | None:
    """Why the restore would cross a node's high watermark (with the figures), or None."""
    if not nodes:
        return "Elasticsearch reports no data node"
    room = sum(n.room_bytes for n in nodes)
    best = max(n.room_bytes for n in nodes)
    figures = "; ".join(f"{n.node}: {_mib(n.available_bytes)} free, {_mib(n.reserved_bytes)} kept free by the "
                        f"high watermark" for n in nodes)
    if restore_bytes > room:
        return (f"restoring {_mib(restore_bytes)} would cross the high disk watermark: the data nodes have "
                f"{_mib(room)} below it ({figures})")
    if largest_index_bytes > best:
        return (f"the largest index to restore ({_mib(largest_index_bytes)}) fits on no data node below its "
                f"high disk watermark ({figures})")
    return None


def _mib(value: int) -> str:
    if value < 2**20:
        return f"{value / 2**10:.1f} KiB"
    return f"{value / 2**20:.1f} MiB" if value < 2**30 else f"{value / 2**30:.2f} GiB"
