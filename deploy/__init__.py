"""The platform's Kubernetes manifests (``k8s/``), shipped with drdrill as ``drdrill.deploy``."""
