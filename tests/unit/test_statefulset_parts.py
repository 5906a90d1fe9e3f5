"""Site loss selects each StatefulSet's own pods and claims exactly (drdrill.core.statefulset_parts)."""

from __future__ import annotations

from typing import Any

from drdrill.core.statefulset_parts import (
    ordinals,
    selector_matches,
    statefulset_claims,
    statefulset_parts,
    statefulset_pods,
)

ES_UID, WARM_UID = "uid-es", "uid-warm"


def sts(name: str, uid: str, labels: dict[str, str], *, replicas: int | None = 1, templates=("data",),
        start: int | None = None, expressions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": labels, **({"matchExpressions": expressions}
                                                                   if expressions else {})},
                            "volumeClaimTemplates": [{"metadata": {"name": t}} for t in templates]}
    if replicas is not None:
        spec["replicas"] = replicas
    if start is not None:
        spec["ordinals"] = {"start": start}
    return {"metadata": {"name": name, "uid": uid}, "spec": spec}


def pod(name: str, labels: dict[str, str], owner_uid: str | None, kind: str = "StatefulSet") -> dict[str, Any]:
    refs = [{"kind": kind, "name": "x", "uid": owner_uid, "controller": True}] if owner_uid else []
    return {"metadata": {"name": name, "labels": labels, "ownerReferences": refs}}


def claim(name: str, labels: dict[str, str] | None = None, owner_uid: str | None = None) -> dict[str, Any]:
    refs = [{"kind": "StatefulSet", "name": "x", "uid": owner_uid}] if owner_uid else []
    return {"metadata": {"name": name, "labels": labels or {}, "ownerReferences": refs}}


ES = sts("elasticsearch", ES_UID, {"app": "elasticsearch"}, replicas=3)
WARM = sts("elasticsearch-warm", WARM_UID, {"app": "elasticsearch-warm"}, replicas=1)
PODS = [pod(f"elasticsearch-{i}", {"app": "elasticsearch"}, ES_UID) for i in range(3)] + [
    pod("elasticsearch-warm-0", {"app": "elasticsearch-warm"}, WARM_UID),
    # app=elasticsearch alone does not make a pod the StatefulSet's: this one is nobody's.
    pod("elasticsearch-debug", {"app": "elasticsearch"}, None),
    # owned by the StatefulSet's uid but outside its selector (relabelled out of it): not its own.
    pod("elasticsearch-quarantined", {"app": "elasticsearch-quarantine"}, ES_UID),
]
CLAIMS = [claim(f"data-elasticsearch-{i}", {"app": "elasticsearch"}) for i in range(3)] + [
    claim("data-elasticsearch-warm-0", {"app": "elasticsearch-warm"}),
    claim("data-elasticsearch-warm-0-backup", {"app": "elasticsearch"}),
    claim("es-snapshots", {"app": "elasticsearch"}),
]


def test_the_elasticsearch_warm_pods_and_claims_are_not_elasticsearchs():
    parts = statefulset_parts(ES, PODS, CLAIMS)
    assert parts.pods == ("elasticsearch-0", "elasticsearch-1", "elasticsearch-2")
    assert parts.claims == ("data-elasticsearch-0", "data-elasticsearch-1", "data-elasticsearch-2")
    warm = statefulset_parts(WARM, PODS, CLAIMS)
    assert warm.pods == ("elasticsearch-warm-0",) and warm.claims == ("data-elasticsearch-warm-0",)
    assert (parts.statefulset, parts.uid) == ("elasticsearch", ES_UID)


def test_pods_need_both_the_selector_and_the_owner_uid():
    same_labels_other_owner = pod("elasticsearch-9", {"app": "elasticsearch"}, WARM_UID)
    a_replicaset_of_the_same_uid = pod("elasticsearch-rs", {"app": "elasticsearch"}, ES_UID, kind="ReplicaSet")
    assert statefulset_pods(ES, [same_labels_other_owner, a_replicaset_of_the_same_uid]) == []
    assert statefulset_pods({**ES, "metadata": {"name": "elasticsearch"}}, PODS) == []  # no uid: nothing


def test_claims_are_templates_times_the_ordinals_it_runs_whoever_labelled_them():
    made_by_hand = claim("data-elasticsearch-1")  # no labels: the pod mounts it all the same
    assert statefulset_claims(ES, [made_by_hand]) == ["data-elasticsearch-1"]
    two = sts("db", "u", {"app": "db"}, replicas=2, templates=("data", "wal"))
    names = ["data-db-0", "data-db-1", "wal-db-0", "wal-db-1", "data-db-2", "logs-db-0", "data-dbx-0"]
    assert statefulset_claims(two, [claim(n) for n in names]) == ["data-db-0", "data-db-1", "wal-db-0", "wal-db-1"]


def test_higher_ordinals_left_by_a_scale_down_need_the_statefulsets_labels():
    left = [claim("data-elasticsearch-3", {"app": "elasticsearch", "extra": "kept"}),
            claim("data-elasticsearch-7"),                                    # no labels: not shown to be its own
            claim("data-elasticsearch-4", {"app": "elasticsearch-warm"}),     # another's labels
            claim("data-elasticsearch-5", {"app": "elasticsearch"}, owner_uid=WARM_UID),  # another owns it
            claim("data-elasticsearch-6", {"app": "elasticsearch"}, owner_uid=ES_UID),
            claim("data-elasticsearch-03", {"app": "elasticsearch"}),         # not how an ordinal is written
            claim("data-elasticsearch--1", {"app": "elasticsearch"}),
            claim("data-elasticsearch-warm-3", {"app": "elasticsearch"})]     # the prefix is not the pattern
    assert statefulset_claims(ES, left) == ["data-elasticsearch-3", "data-elasticsearch-6"]


def test_a_start_ordinal_shifts_the_expected_names():
    shifted = sts("pg", "u", {"app": "pg"}, replicas=2, start=5)
    assert list(ordinals(shifted)) == [5, 6]
    assert statefulset_claims(shifted, [claim(f"data-pg-{i}") for i in range(8)]) == ["data-pg-5", "data-pg-6"]
    assert list(ordinals(sts("x", "u", {"a": "b"}, replicas=None))) == [0]  # Kubernetes' default: 1
    assert statefulset_claims(sts("x", "u", {"a": "b"}, replicas=0), [claim("data-x-0")]) == []


def test_no_templates_no_claims():
    assert statefulset_claims(sts("es", "u", {"app": "es"}, templates=()), [claim("data-es-0")]) == []


def test_label_selectors_as_kubernetes_reads_them():
    labels = {"app": "es", "tier": "hot"}
    assert selector_matches({"matchLabels": {"app": "es"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "es", "tier": "warm"}}, labels)
    exprs = lambda *e: {"matchExpressions": list(e)}  # noqa: E731
    assert selector_matches(exprs({"key": "tier", "operator": "In", "values": ["hot", "warm"]}), labels)
    assert not selector_matches(exprs({"key": "tier", "operator": "NotIn", "values": ["hot"]}), labels)
    assert selector_matches(exprs({"key": "zone", "operator": "NotIn", "values": ["a"]}), labels)
    assert selector_matches(exprs({"key": "app", "operator": "Exists"}), labels)
    assert not selector_matches(exprs({"key": "app", "operator": "DoesNotExist"}), labels)
    assert not selector_matches(exprs({"key": "app", "operator": "Gt", "values": ["1"]}), labels)
    # An empty selector means "everything" to Kubernetes: never to a site loss.
    assert not selector_matches({}, labels) and not selector_matches(None, labels)
    assert not selector_matches({"matchLabels": {}, "matchExpressions": []}, labels)
    with_expr = sts("es", ES_UID, {"app": "es"},
                    expressions=[{"key": "tier", "operator": "In", "values": ["hot"]}])
    assert statefulset_pods(with_expr, [pod("es-0", labels, ES_UID), pod("es-1", {"app": "es"}, ES_UID)]) == ["es-0"]
