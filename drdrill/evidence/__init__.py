"""Evidence an auditor can check: Ed25519 keys and signatures (``keys``), and signed evidence
packs of a drill's report directory (``pack``)."""
