"""The exception types the CLI turns into exit codes: user mistakes (2, one line, no traceback) and temporary
failures worth retrying (75, EX_TEMPFAIL: a preemption, or a store or Hub that stayed unavailable)."""


class XferError(Exception):
    """A problem the user can fix (bad config, missing data, store trouble); str(e) is one line."""


class StoreError(XferError):
    """The store is unreachable, a key is missing, or a committed output fails its checksum."""


class TemporaryFailure(Exception):
    """Worth running again later, unchanged: the orchestrator retries the job (exit code 75, EX_TEMPFAIL).
    Raised for a preemption and for a store or the Hub that stays unavailable after its own retries."""

    exit_code = 75


class Preempted(TemporaryFailure):
    """A job stopped by SIGTERM, after committing a checkpoint where it had one to commit (`xfer.preemption`)."""
