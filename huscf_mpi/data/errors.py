"""The one exception raised for problems with dataset files (SPEC §4)."""
from __future__ import annotations

from ..errors import UsageError


class DataError(UsageError):
    """A dataset file or the data root is missing, corrupt or malformed.

    The message is a single line that names the file or setting at fault and says how to fix
    it, so the CLI can print it as is. Line breaks in the message are folded into ``"; "``
    because a multi-line message from one of N MPI ranks is unreadable once interleaved.
    """

    def __init__(self, message: str) -> None:
        super().__init__("; ".join(part.strip() for part in str(message).splitlines() if part.strip()))
