"""Index names sent to Elasticsearch in a URL, kept under its request-line limit."""

from __future__ import annotations

# Elasticsearch refuses a request line over 4 KB (http.max_initial_line_length): index names
# go in batches that keep well under it; above this many, listing every index is cheaper.
_URL_NAMES_CHARS = 3000
LIST_ALL_ABOVE = 200


def batches(names: list[str], *, suffix: str = "") -> list[list[str]]:
    batches: list[list[str]] = []
    length = 0
    for name in names:
        cost = len(name) + len(suffix) + 3  # the comma, URL-encoded
        if not batches or length + cost > _URL_NAMES_CHARS:
            batches.append([])
            length = 0
        batches[-1].append(name)
        length += cost
    return batches
