"""What on the host is drdrill's cluster's own (pure: texts and records in, names out): the
iptables chains and rules, network namespaces and log files `cluster down` removes.

Network namespaces, iptables and ``/var/log/{pods,containers}`` are host-wide: another cluster,
a podman or a person may have ``cni-*`` namespaces and ``KUBE-*``/``CNI-*`` chains there too, so
a name prefix proves nothing. What is the cluster's own:

* **chains**: of the ``KUBE-*``/``CNI-*`` chains that were not on the host when `up` began
  (recorded then), those its components create under fixed names (kube-proxy, the kubelet, the
  portmap and firewall CNI plugins), those with a rule naming an address in its pod, cluster or
  service range or its CNI network (the plugins' ``name: "drdrill"`` comments), and those these
  jump to (kube-proxy's per-Service chains). In a chain that was there before (a shared
  ``CNI-FORWARD``), only its rules naming the cluster are its own. Removed with
  ``iptables-restore --noflush``: its rules in other chains and the jumps to its chains, then its
  chains; every other rule of the table stays as it is (Docker's included);
* **network namespaces**: the pod sandboxes' as the cluster's own containerd lists them, or as
  its own shims' processes live in;
* **logs**: the pod log directories of the pod uids, and the container log links of the
  container ids, that its own containerd lists.
"""

from __future__ import annotations

import ipaddress
import itertools
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

# Chains that kube-proxy (iptables mode) and the kubelet create under these names, and the CNI
# plugins of this cluster's conflist (portmap, firewall); per-Service and per-container chains
# are hashed names, found by what their rules name instead.
FIXED_CHAINS = frozenset({
    "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ",
    "KUBE-MARK-DROP", "KUBE-FORWARD", "KUBE-PROXY-FIREWALL", "KUBE-FIREWALL", "KUBE-PROXY-CANARY",
    "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT",
    "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK", "CNI-FORWARD", "CNI-ADMIN",
})
CANDIDATE_PREFIXES = ("KUBE-", "CNI-")
ADDRESS_OPTIONS = frozenset({"-s", "--source", "-d", "--destination", "--to-destination", "--to-source", "--to"})
JUMP_OPTIONS = frozenset({"-j", "--jump", "-g", "--goto"})
NETNS_DIRS = ("/var/run/netns", "/run/netns")


@dataclass(frozen=True)
class ClusterNetworks:
    """What names this cluster in a rule: its address ranges and its CNI network's name."""

    ranges: tuple[str, ...]
    cni_network: str

    def names_ours(self, tokens: Sequence[str]) -> bool:
        ours = [ipaddress.ip_network(r) for r in self.ranges]
        for option, value in itertools.pairwise(tokens):
            if option in ADDRESS_OPTIONS and any(_within(a, ours) for a in _addresses(value)):
                return True
            if option == "--comment" and f'name: "{self.cni_network}"' in value:
                return True
        return False


def _addresses(value: str) -> list[str]:
    """The addresses of an iptables option value: ``a/b``, ``a,b``, ``a:port``, ``a-b``,
    ``[v6]:port``."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if item.startswith("["):
            out.append(item[1:item.index("]")] if "]" in item else item[1:])
            continue
        if item.count(":") == 1:  # an IPv4 address with a port
            item = item.split(":")[0]
        if "-" in item and "/" not in item:  # a range: its first address stands for it
            item = item.split("-")[0]
        out.append(item)
    return out


def _within(address: str, ranges: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        network = ipaddress.ip_network(address, strict=False)
    except ValueError:
        return False
    return any(network.version == r.version and network.subnet_of(r) for r in ranges)  # type: ignore[arg-type]


def _tokens(rule: str) -> list[str]:
    try:
        return shlex.split(rule)
    except ValueError:  # odd quoting: words are enough to find options and their values
        return rule.split()


@dataclass
class SavedTable:
    """One table of ``iptables-save`` output: its chains (name -> policy, ``-`` for a user
    chain) and its rules in order (chain, the ``-A`` line)."""

    name: str
    chains: dict[str, str] = field(default_factory=dict)
    rules: list[tuple[str, str]] = field(default_factory=list)

    def jumps(self, rule: str) -> str | None:
        tokens = _tokens(rule)
        for option, value in itertools.pairwise(tokens):
            if option in JUMP_OPTIONS:
                return value
        return None

    def candidates(self) -> list[str]:
        return [c for c, policy in self.chains.items() if policy == "-" and c.startswith(CANDIDATE_PREFIXES)]


def parse_save(text: str) -> list[SavedTable]:
    tables: list[SavedTable] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            tables.append(SavedTable(line[1:]))
        elif not tables or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            tables[-1].chains[name] = rest.split()[0] if rest.split() else "-"
        elif line.startswith("-A "):
            tables[-1].rules.append((line.split()[1], line))
    return tables


def chains_before_up(text: str, networks: ClusterNetworks) -> dict[str, list[str]]:
    """Each table's ``KUBE-*``/``CNI-*`` chains, as `up` records them before it starts anything:
    not the cluster's own, however they are named. A chain whose rules already name this
    cluster's ranges is left out: a leftover of an earlier drdrill cluster, this one's to remove."""
    out = {}
    for table in parse_save(text):
        rules = _rules_by_chain(table)
        found = sorted(c for c in table.candidates()
                       if not any(networks.names_ours(_tokens(r)) for r in rules.get(c, [])))
        if found:
            out[table.name] = found
    return out


def _rules_by_chain(table: SavedTable) -> dict[str, list[str]]:
    by_chain: dict[str, list[str]] = {}
    for chain, rule in table.rules:
        by_chain.setdefault(chain, []).append(rule)
    return by_chain


def owned_chains(table: SavedTable, networks: ClusterNetworks, before_up: Iterable[str] = ()) -> set[str]:
    """The table's chains that are the cluster's own (see the module's docstring): never one
    that was there before `up` (its rules naming the cluster are removed, the chain stays)."""
    before = set(before_up)
    candidates = set(table.candidates()) - before
    by_chain = _rules_by_chain(table)
    ours = {c for c in candidates
            if c in FIXED_CHAINS or any(networks.names_ours(_tokens(r)) for r in by_chain.get(c, []))}
    pending = list(ours)
    while pending:  # what the cluster's chains jump to (kube-proxy's per-Service chains)
        for rule in by_chain.get(pending.pop(), []):
            target = table.jumps(rule)
            if target in candidates and target not in ours:
                ours.add(target)
                pending.append(target)
    return ours


def removal_scripts(saved: str, networks: ClusterNetworks,
                    before_up: Mapping[str, Iterable[str]] | None = None) -> dict[str, str]:
    """For each table with something of the cluster's: the ``iptables-restore --noflush``
    input that deletes the rules elsewhere that jump to its chains (and its rules in chains it
    does not own, such as a ``CNI-FORWARD`` that was there before), then its chains."""
    scripts = {}
    for table in parse_save(saved):
        ours = owned_chains(table, networks, (before_up or {}).get(table.name, ()))
        kept_candidates = set(table.candidates()) - ours
        deletions = [f"-D {rule[3:]}" for chain, rule in table.rules if chain not in ours and (
            table.jumps(rule) in ours or (chain in kept_candidates and networks.names_ours(_tokens(rule))))]
        if not ours and not deletions:
            continue
        ordered = sorted(ours)
        scripts[table.name] = "\n".join([f"*{table.name}", *deletions, *(f"-F {c}" for c in ordered),
                                         *(f"-X {c}" for c in ordered), "COMMIT", ""])
    return scripts


# --- what the cluster's containerd lists ------------------------------------------------------

@dataclass(frozen=True)
class ContainerFacts:
    """One container of the cluster's containerd (``ctr containers info``): a pod sandbox has
    the pod's network namespace; every container names its pod."""

    id: str
    netns: str | None
    pod_uid: str | None


def container_facts(info: Mapping[str, Any]) -> ContainerFacts:
    labels = info.get("Labels") or {}
    spec = info.get("Spec") or {}
    netns = None
    for namespace in (spec.get("linux") or {}).get("namespaces") or []:
        path = PurePosixPath(namespace.get("path") or "/")
        if namespace.get("type") == "network" and str(path.parent) in NETNS_DIRS:
            netns = path.name
    return ContainerFacts(str(info.get("ID", "")), netns, labels.get("io.kubernetes.pod.uid"))


@dataclass
class OwnParts:
    """What `up` and `down` recorded of the cluster on the host (kept in ``cluster.json``)."""

    # tool (iptables, ip6tables) -> table -> the KUBE-*/CNI- chains there before `up`
    chains_before_up: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)
    pod_uids: set[str] = field(default_factory=set)
    container_ids: set[str] = field(default_factory=set)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> OwnParts:
        data = data or {}
        before = {tool: {table: list(chains) for table, chains in tables.items()}
                  for tool, tables in (data.get("chains_before_up") or {}).items()}
        return cls(before, set(data.get("netns", [])),
                   set(data.get("pod_uids", [])), set(data.get("container_ids", [])))

    def to_dict(self) -> dict[str, Any]:
        return {"chains_before_up": self.chains_before_up, "netns": sorted(self.netns),
                "pod_uids": sorted(self.pod_uids), "container_ids": sorted(self.container_ids)}

    def add(self, facts: Iterable[ContainerFacts]) -> None:
        for fact in facts:
            self.container_ids.add(fact.id)
            if fact.netns:
                self.netns.add(fact.netns)
            if fact.pod_uid:
                self.pod_uids.add(fact.pod_uid)

    def own_logs(self, pod_dirs: Iterable[str], container_logs: Mapping[str, str]) -> list[str]:
        """Of ``/var/log/pods`` entries (``<namespace>_<pod>_<uid>``) and ``/var/log/containers``
        links (name -> target; ``<pod>_<namespace>_<container>-<id>.log``), the cluster's own."""
        pods = [d for d in pod_dirs if any(d.endswith(f"_{uid}") for uid in self.pod_uids)]
        links = []
        for name, target in container_logs.items():
            in_own_pod_dir = any(part in pods for part in PurePosixPath(target).parts)
            if in_own_pod_dir or any(name.endswith(f"-{cid}.log") for cid in self.container_ids):
                links.append(name)
        return [*(f"/var/log/pods/{d}" for d in sorted(pods)), *(f"/var/log/containers/{n}" for n in sorted(links))]


def netns_with_inode(entries: Mapping[str, int], inodes: Iterable[int], host_inode: int | None) -> set[str]:
    """The named network namespaces (name -> nsfs inode) that processes of the cluster live in
    (``inodes``), never the host's own."""
    wanted = set(inodes) - ({host_inode} if host_inode is not None else set())
    return {name for name, inode in entries.items() if inode in wanted}

