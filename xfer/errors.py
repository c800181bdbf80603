"""The one exception type for user mistakes: the CLI prints its message as one line, no traceback."""


class XferError(Exception):
    """A problem the user can fix (bad config, missing data, store trouble); str(e) is one line."""


class StoreError(XferError):
    """The store is unreachable, a key is missing, or a committed output fails its checksum."""


class Preempted(Exception):
    """A job caught SIGTERM after committing a checkpoint; the CLI exits with EX_TEMPFAIL (75)."""

    exit_code = 75
