"""One exception root, a base per domain, leaves that carry data.

The split that matters to users (and to the exit status of ``drdrill run``):

* :class:`UsageError` – the user gave bad input (exit 2). The message is one line, the hint
  says what is expected; no traceback is shown.
* :class:`HarnessError` – drdrill itself could not do its job: a tool is missing, a service
  did not start, provisioning failed (exit 3). "The harness broke."
* :class:`RecoveryFailure` – the system under drill did not recover: a verification failed,
  an objective was missed, a backup is unusable (exit 1). "The platform missed its objective."
"""

from __future__ import annotations

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_HARNESS = 3


class DrdrillError(Exception):
    """Root of every error drdrill raises on purpose."""

    exit_status = EXIT_HARNESS

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" (hint: {' '.join(self.hint.split())})"
        return text


# --- usage / configuration (exit 2) -------------------------------------------------------


class UsageError(DrdrillError):
    exit_status = EXIT_USAGE


class ConfigError(UsageError):
    """An invalid configuration value; names the key and what is expected."""

    def __init__(self, key: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{key}: {problem}", hint=hint)
        self.key = key


class ExtraMissing(UsageError):
    """A target needs an optional part of drdrill that is not installed (``drdrill[extra]``)."""

    def __init__(self, extra: str, why: str, *, also: str | None = None) -> None:
        hint = f"pip install 'drdrill[{extra}]'" + (f"; {also}" if also else "")
        super().__init__(why, hint=hint)
        self.extra = extra


class EngineMissing(UsageError):
    """The containers target needs a Docker engine, and none answers or can be started here."""


class StackNotUp(UsageError):
    """A command named a local stack that is not running."""


class PasswordSourceError(UsageError):
    """A password environment variable or file is missing, empty or unreadable."""


# --- the harness broke (exit 3) -----------------------------------------------------------


class HarnessError(DrdrillError):
    exit_status = EXIT_HARNESS


class ToolMissing(HarnessError):
    """An external tool (mvn, go, apt-get, java, pg binaries) is not installed."""

    def __init__(self, tool: str, how_to_get: str) -> None:
        super().__init__(f"required tool not found: {tool}", hint=how_to_get)
        self.tool = tool


class ProvisionError(HarnessError):
    """Downloading, building or installing a service failed."""


class StackError(HarnessError):
    """The local stack could not be started, inspected or stopped."""


class WaitTimedOut(HarnessError):
    """A bounded wait ran out; carries what was awaited and the last observed state."""

    def __init__(self, what: str, waited_s: float, last_state: str, *, hint: str | None = None) -> None:
        super().__init__(f"{what}: not ready after {waited_s:.0f}s; last state: {last_state}", hint=hint)
        self.what, self.waited_s, self.last_state = what, waited_s, last_state


class ServiceNotReady(StackError):
    """A readiness wait timed out; carries the last observed state and the log's tail."""

    def __init__(
        self, service: str, timeout_s: float, last_state: str, log_tail: str, *, hint: str | None = None,
        cause: str | None = None,
    ) -> None:
        tail = log_tail.strip().splitlines()[-1:] if log_tail.strip() else []
        message = f"{service} not ready after {timeout_s:.0f}s; last state: {last_state}"
        if cause:  # the service's own fatal error says more than its launcher's last words
            message += f"; its fatal error: {cause[:600]}"
        elif tail:
            message += f"; last log line: {tail[0][:300]}"
        super().__init__(message, hint=hint)
        self.service = service
        self.timeout_s = timeout_s
        self.last_state = last_state
        self.log_tail = log_tail
        self.cause = cause


class ServiceError(HarnessError):
    """A call to a running service failed for a reason that is the harness's problem."""


class NoElectedMaster(ServiceError):
    """Elasticsearch answered that its cluster has no elected master (HTTP 503): the state of a
    cluster electing a new one after its master was lost. A wait on the cluster goes on through
    it, within its own deadline; anything else treats it as the failure it is."""


# --- the system under drill failed (exit 1) ----------------------------------------------


class RecoveryFailure(DrdrillError):
    exit_status = EXIT_FAILED


class BackupFailed(RecoveryFailure):
    """A backup did not complete (e.g. a snapshot ended PARTIAL or with failed shards)."""


class BackupJobUnhealthy(BackupFailed):
    """The platform's nightly backup job is suspended, failed its newest run, or has not
    succeeded within the RPO (as its scheduler records it)."""

    def __init__(self, message: str, *, diagnosis: str = "", hint: str | None = None) -> None:
        super().__init__(f"{message}: {diagnosis}" if diagnosis else message, hint=hint)
        self.diagnosis = diagnosis


class BackupIntegrityError(RecoveryFailure):
    """A backup object is corrupt, truncated, tampered with or cannot be decrypted."""

    def __init__(self, message: str, *, key: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key = key


class DecryptionError(BackupIntegrityError):
    """Wrong password, truncated file, or not the openssl ``Salted__`` format."""


class RestoreFailed(RecoveryFailure):
    """A restore step did not bring the data back."""


class DeployFailed(RecoveryFailure):
    """The platform's manifests were applied but its workloads cannot run (an image that
    cannot be pulled, a volume that cannot be bound): runbook steps 1-2 failed."""


class VerificationFailed(RecoveryFailure):
    """A verification check found the restored data differs from what was expected."""


def is_service_failure(exc: BaseException) -> bool:
    """An error raised by a service's client library (connection refused, timeout, HTTP error,
    database error), as opposed to a bug in drdrill."""
    module = type(exc).__module__.split(".")[0]
    return module in {"elasticsearch", "elastic_transport", "botocore", "boto3", "psycopg", "urllib3"} or \
        isinstance(exc, ConnectionError | TimeoutError)
