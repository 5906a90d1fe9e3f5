"""Kubernetes: drdrill's own single-node cluster (``drdrill cluster``: node, pki, config files,
the platform deployed, service), the platform's namespace driven with the stack verbs (stack),
and destructive drills there (target). Independent of the other places under ``targets``."""
