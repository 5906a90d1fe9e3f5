"""Elasticsearch as three pods on Kubernetes, without a cluster: the base's StatefulSet and
discovery, and drdrill's overlay for its own cluster (transport on loopback through the relay,
per-node Services at fixed addresses)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import yaml

from drdrill.targets.kubernetes import es_transport_relay as relay
from drdrill.targets.kubernetes import platform as plat
from drdrill.targets.kubernetes.config_files import DNS_IP, SERVICE_CIDR, SERVICE_IP

ROOT = Path(__file__).resolve().parents[2]


def _base() -> dict[tuple[str, str], dict]:
    docs = yaml.safe_load_all((ROOT / "deploy" / "k8s" / "base" / "elasticsearch.yaml").read_text())
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_the_base_runs_three_nodes_found_through_a_headless_service():
    base = _base()
    sts = base[("StatefulSet", "elasticsearch")]
    assert sts["spec"]["replicas"] == plat.ES_NODES == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"  # a site comes back whole, at once
    headless = base[("Service", sts["spec"]["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    env = _env(sts["spec"]["template"]["spec"]["containers"][0])
    pods = [f"elasticsearch-{n}" for n in range(plat.ES_NODES)]
    assert env["cluster.initial_master_nodes"].split(",") == pods
    assert env["discovery.seed_hosts"].split(",") == [f"{p}.{headless['metadata']['name']}" for p in pods]
    assert env["node.name"] == "$(POD_NAME)" and "discovery.type" not in env
    # Every node and the backup Jobs write the one fs repository.
    assert base[("PersistentVolumeClaim", "es-snapshots")]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert yaml.safe_load(plat.snapshot_volume())["spec"]["accessModes"] == ["ReadWriteMany"]
    # Clients keep the one Service on 9200.
    assert base[("Service", "elasticsearch")]["spec"]["ports"][0]["port"] == 9200


def test_drdrills_overlay_keeps_the_transport_on_loopback_and_relays_it_between_pods(tmp_path):
    doc = yaml.safe_load(plat.overlay_kustomization(ROOT / "deploy" / "k8s" / "base", tmp_path, {}))
    assert plat.ES_TRANSPORT_FILE in doc["resources"]
    (patch,) = [p for p in doc["patches"] if p["target"] == {"kind": "StatefulSet", "name": "elasticsearch"}]
    containers = {c["name"]: c for c in json.loads(patch["patch"])["spec"]["template"]["spec"]["containers"]}
    env = containers["elasticsearch"]["env"]
    names = [e["name"] for e in env]
    assert names.index("POD_INDEX") < names.index("transport.publish_port")  # $(POD_INDEX) expands
    values = _env(containers["elasticsearch"])
    assert values["transport.host"] == "127.0.0.1"
    assert values["transport.publish_port"] == "931$(POD_INDEX)"
    assert values["discovery.seed_hosts"] == "127.0.0.1:9310,127.0.0.1:9311,127.0.0.1:9312"
    args = relay.parse([a.replace("$(POD_INDEX)", "1") for a in containers["transport-relay"]["command"][3:]])
    assert (args.self_ordinal, args.transport, args.inbound, args.publish_base) == (1, 9300, 9400, 9310)
    assert args.peers == plat.es_transport_ips()


def test_the_per_node_services_take_fixed_addresses_from_the_static_band():
    services = [d for d in yaml.safe_load_all(plat.es_transport_services()) if d]
    ips = [s["spec"]["clusterIP"] for s in services]
    assert ips == plat.es_transport_ips() and len(set(ips)) == plat.ES_NODES
    network = ipaddress.ip_network(SERVICE_CIDR)
    static_band = min(max(16, network.num_addresses // 16), 256)  # KEP-3070's lower band
    for ip in ips:
        assert ip not in (SERVICE_IP, DNS_IP)
        assert int(ipaddress.ip_address(ip)) - int(network.network_address) < static_band
    for ordinal, service in enumerate(services):
        assert service["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"elasticsearch-{ordinal}"
        assert service["spec"]["publishNotReadyAddresses"] is True
