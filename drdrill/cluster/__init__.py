"""A real single-node Kubernetes cluster for the platform's drills (``drdrill cluster``)."""
