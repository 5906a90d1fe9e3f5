"""The single-node cluster's configuration files and command lines, as pure functions of its
layout (no I/O): what `cluster up` writes and starts, and what the unit tests read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "drdrill-node"
BRIDGE = "drdrill0"
CNI_NETWORK = "drdrill"  # the conflist's name: the CNI plugins write it in their rules' comments
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the first address of SERVICE_CIDR: the `kubernetes` Service
DNS_IP = "10.96.0.10"
APISERVER_PORT = 6443
ETCD_CLIENT_PORT = 23790
ETCD_PEER_PORT = 23800
# Kubernetes' defaults for the controllers' secure ports (their /healthz is what `up` waits for).
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
# Debian's containernetworking-plugins installs the plugins here, not in /opt/cni/bin.
CNI_BIN_DIR = Path("/usr/lib/cni")
# kube-controller-manager's built-in hostPath provisioner (single node only) creates volumes here.
HOSTPATH_PROVISIONER_DIR = Path("/tmp/hostpath-provisioner")  # noqa: S108 - fixed by Kubernetes


@dataclass(frozen=True)
class ClusterLayout:
    """Where one cluster keeps its state (``root``) and its image store (``images_root``, in
    the cache: imported images outlive a `down`)."""

    root: Path
    images_root: Path
    node_ip: str

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def runc_root(self) -> Path:
        return self.root / "containerd" / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{APISERVER_PORT}"

    def kubeconfig(self, identity: str) -> Path:
        return self.root / "kubeconfig" / f"{identity}.yaml"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfig("admin")


def containerd_toml(layout: ClusterLayout, sandbox_image: str) -> str:
    # restrict_oom_score_adj: these VMs lack CAP_SYS_RESOURCE, so a negative oom_score_adj is
    # refused and without it every pod sandbox fails with runc's "can't get final child's PID".
    return f"""version = 2
root = "{layout.images_root}"
state = "{layout.containerd_state}"
[grpc]
  address = "{layout.containerd_socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{layout.cni_conf_dir}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "{layout.runc_root}"
      SystemdCgroup = false
"""


def cni_conflist() -> str:
    # firewall: Docker sets the FORWARD policy to DROP; without this plugin's accept rules
    # pod-to-Service traffic is dropped on a machine that also runs Docker.
    return json.dumps({"cniVersion": "0.4.0", "name": CNI_NETWORK, "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "firewall"},
    ]}, indent=2)


def kubelet_yaml(layout: ClusterLayout) -> str:
    pki = layout.pki
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://{layout.containerd_socket}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {pki / 'ca.crt'}}}
authorization: {{mode: Webhook}}
tlsCertFile: {pki / 'kubelet.crt'}
tlsPrivateKeyFile: {pki / 'kubelet.key'}
clusterDomain: cluster.local
clusterDNS: [{DNS_IP}]
resolvConf: /etc/resolv.conf
enforceNodeAllocatable: []
evictionHard: {{"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
"""


def command_lines(layout: ClusterLayout, bindir: Path, etcd: str, containerd: str) -> dict[str, list[str]]:
    """Each component's argv, in start order (secrets are files, never arguments)."""
    pki, kc = layout.pki, layout.kubeconfig
    etcd_url = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
    peer_url = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    controllers_auth = lambda who: [f"--kubeconfig={kc(who)}", f"--authentication-kubeconfig={kc(who)}",  # noqa: E731
                                    f"--authorization-kubeconfig={kc(who)}", "--leader-elect=false"]
    return {
        "etcd": [etcd, "--name=drdrill", f"--data-dir={layout.etcd_data}", f"--listen-client-urls={etcd_url}",
                 f"--advertise-client-urls={etcd_url}", f"--listen-peer-urls={peer_url}",
                 f"--initial-advertise-peer-urls={peer_url}", f"--initial-cluster=drdrill={peer_url}"],
        "kube-apiserver": [
            str(bindir / "kube-apiserver"), f"--etcd-servers={etcd_url}",
            # Pods reach the apiserver through the `kubernetes` Service at the node's address:
            # bound to loopback they would be refused.
            "--bind-address=0.0.0.0", f"--advertise-address={layout.node_ip}", f"--secure-port={APISERVER_PORT}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC", "--allow-privileged=true",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            # The node's name resolves nowhere: logs, exec and port-forward dial its address.
            "--kubelet-preferred-address-types=InternalIP"],
        "kube-controller-manager": [
            str(bindir / "kube-controller-manager"), *controllers_auth("controller-manager"),
            "--allocate-node-cidrs", f"--cluster-cidr={CLUSTER_CIDR}", f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--root-ca-file={pki / 'ca.crt'}", f"--service-account-private-key-file={pki / 'sa.key'}",
            "--use-service-account-credentials",
            # PersistentVolumeClaims need a provisioner; the built-in hostPath one serves one node.
            "--enable-hostpath-provisioner"],
        "kube-scheduler": [str(bindir / "kube-scheduler"), *controllers_auth("scheduler")],
        "containerd": [containerd, f"--config={layout.root / 'containerd.toml'}"],
        "kubelet": [str(bindir / "kubelet"), f"--config={layout.root / 'kubelet.yaml'}",
                    f"--kubeconfig={kc('kubelet')}", f"--root-dir={layout.kubelet_root}",
                    f"--hostname-override={NODE_NAME}", f"--node-ip={layout.node_ip}"],
        "kube-proxy": [str(bindir / "kube-proxy"), f"--kubeconfig={kc('kube-proxy')}", "--proxy-mode=iptables",
                       f"--cluster-cidr={CLUSTER_CIDR}", "--conntrack-max-per-core=0",
                       f"--hostname-override={NODE_NAME}"],
    }


START_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet",
               "kube-proxy")

