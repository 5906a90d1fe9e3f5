"""Which pods and PersistentVolumeClaims are one StatefulSet's own: what a site loss deletes when
several StatefulSets share a namespace (pure: Kubernetes objects in, as the API serialises them,
names out).

Names and labels alone are not enough. A prefix such as ``data-elasticsearch-`` also matches the
claims of a StatefulSet ``elasticsearch-warm`` (``data-elasticsearch-warm-0``), and ``app=`` is
a convention any pod may carry. So:

* a pod is the StatefulSet's when the StatefulSet's own selector matches its labels *and* it is
  owned by that very StatefulSet (an owner reference with its uid);
* a claim is the StatefulSet's when it is named ``<template>-<statefulset>-<ordinal>`` for one of
  its ``volumeClaimTemplates`` and an ordinal it runs (``spec.ordinals.start`` onwards,
  ``replicas`` of them): the claim that pod mounts, whoever made it. A claim of the same exact
  pattern at another ordinal (left by a scale-down) is its own only when it carries the labels
  the StatefulSet controller puts on the claims it makes (the selector's ``matchLabels``) and no
  other StatefulSet owns it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class StatefulSetParts:
    """The names of one StatefulSet's pods and claims, sorted."""

    statefulset: str
    uid: str
    pods: tuple[str, ...]
    claims: tuple[str, ...]


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _labels(obj: Obj) -> Mapping[str, str]:
    return _meta(obj).get("labels") or {}


def selector_matches(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector`` (``matchLabels`` and ``matchExpressions``, all must hold)
    against ``labels``. An empty or missing selector selects nothing here: Kubernetes reads it
    as "everything", which is never what a site loss means."""
    if not selector:
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for expression in expressions:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # an operator this rule does not know selects nothing
    return True


def _owned_by(obj: Obj, kind: str, uid: str) -> bool:
    return any(ref.get("kind") == kind and ref.get("uid") == uid for ref in _meta(obj).get("ownerReferences") or [])


def _owned_by_another_statefulset(obj: Obj, uid: str) -> bool:
    return any(ref.get("kind") == "StatefulSet" and ref.get("uid") != uid
               for ref in _meta(obj).get("ownerReferences") or [])


def ordinals(statefulset: Obj) -> range:
    """The ordinals the StatefulSet runs: ``spec.ordinals.start`` (default 0), ``replicas`` of
    them (Kubernetes' default 1 when unset)."""
    spec = statefulset.get("spec") or {}
    replicas = spec.get("replicas")
    start = (spec.get("ordinals") or {}).get("start") or 0
    return range(start, start + (1 if replicas is None else replicas))


def claim_templates(statefulset: Obj) -> list[str]:
    return [_meta(t)["name"] for t in (statefulset.get("spec") or {}).get("volumeClaimTemplates") or []]


def statefulset_pods(statefulset: Obj, pods: Iterable[Obj]) -> list[str]:
    """The StatefulSet's pods: its selector matches them and it owns them (by uid)."""
    uid = _meta(statefulset).get("uid")
    selector = (statefulset.get("spec") or {}).get("selector")
    if not uid:
        return []  # not read from the API: nothing can be shown to be its own
    return sorted(_meta(p)["name"] for p in pods
                  if _owned_by(p, "StatefulSet", uid) and selector_matches(selector, _labels(p)))


def statefulset_claims(statefulset: Obj, claims: Iterable[Obj]) -> list[str]:
    """The StatefulSet's claims: its templates × the ordinals it runs, exactly; other ordinals
    of that exact pattern only when they carry its labels and no other StatefulSet owns them."""
    name, uid = _meta(statefulset)["name"], _meta(statefulset).get("uid", "")
    templates = claim_templates(statefulset)
    running = ordinals(statefulset)
    expected = {f"{t}-{name}-{i}" for t in templates for i in running}
    # Ordinals as the controller writes them: decimal, no sign, no leading zero.
    patterns = [re.compile(rf"{re.escape(t)}-{re.escape(name)}-(0|[1-9][0-9]*)") for t in templates]
    match_labels = ((statefulset.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selected = []
    for claim in claims:
        claim_name = _meta(claim)["name"]
        if claim_name in expected:
            selected.append(claim_name)
            continue
        if not any(p.fullmatch(claim_name) for p in patterns) or not match_labels:
            continue
        labels = _labels(claim)
        if all(labels.get(k) == v for k, v in match_labels.items()) and not _owned_by_another_statefulset(claim, uid):
            selected.append(claim_name)
    return sorted(selected)


def statefulset_parts(statefulset: Obj, pods: Iterable[Obj], claims: Iterable[Obj]) -> StatefulSetParts:
    meta = _meta(statefulset)
    return StatefulSetParts(meta["name"], meta.get("uid", ""), tuple(statefulset_pods(statefulset, pods)),
                            tuple(statefulset_claims(statefulset, claims)))
