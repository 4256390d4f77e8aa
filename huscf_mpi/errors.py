"""The base of every error that means "the input is wrong", as opposed to a bug.

The CLI prints such an error as one line (``huscf-mpi: error: ...``) and exits 2; anything
else is a crash and aborts the MPI job with a traceback.
"""


class UsageError(Exception):
    """Bad input: config, data, rank count or paths. The message is one line naming the fix."""


class SetupError(UsageError, RuntimeError):
    """A start-up problem found collectively; every rank raises it and exits non-zero."""


class ClientsLost(RuntimeError):
    """An asynchronous run has fewer live clients than ``training.min_clients``: it ends as failed
    (an expected ending, reported in one line, not a crash)."""
