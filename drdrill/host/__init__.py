"""The machine drdrill runs on: processes it starts and recognises again (pid + create time),
state files, cross-process locks, bounded waits for readiness with the last observed state,
log tails, the service user, and the Debian/Go tools it installs or builds. May import
``drdrill.core`` and ``drdrill.errors`` only."""
