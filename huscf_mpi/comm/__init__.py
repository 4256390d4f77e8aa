"""Transport seam: message kinds (one MPI tag each), buffered MPI point-to-point, the ledger."""
from .kinds import Kind
from .ledger import Ledger
from .transport import MPITransport

__all__ = ["Kind", "Ledger", "MPITransport"]
