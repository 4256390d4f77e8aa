"""Log lines with the rank in them; rank 0's do not tear its progress bar."""
from __future__ import annotations

import logging
import sys


class _RankFilter(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record):
        record.rank = self.rank
        return True


class _TqdmHandler(logging.StreamHandler):
    """Log lines that do not tear rank 0's progress bar."""

    def emit(self, record):
        from tqdm import tqdm
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001
            self.handleError(record)


def setup_logging(rank: int, verbose: bool) -> None:
    handler = _TqdmHandler() if rank == 0 else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [rank %(rank)d] %(levelname)s %(message)s", "%H:%M:%S"))
    handler.addFilter(_RankFilter(rank))
    logger = logging.getLogger("huscf_mpi")
    logger.handlers[:] = [handler]
    logger.propagate = False
    # Clients log only warnings unless -v: with 100 ranks, per-client info lines drown the server's.
    logger.setLevel(logging.INFO if rank == 0 or verbose else logging.WARNING)
