"""Transport seam: message kinds (one MPI tag each), buffered MPI point-to-point, the ledger."""
from . import kinds
from .kinds import Kind, kind
from .ledger import Ledger, exposure_set, exposure_table, ledger_table
from .transport import DeadlineExceeded, MPITransport

__all__ = ["kinds", "Kind", "kind", "Ledger", "MPITransport", "DeadlineExceeded", "ledger_table", "exposure_table",
           "exposure_set"]
