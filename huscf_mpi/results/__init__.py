"""Result files: one HDF5 file per run, written by rank 0, read back for analysis.

``ResultWriter`` writes (at ``<path>.partial`` until the run completes), ``ResultFile``
reads, ``summary`` renders a text overview. Layout: :mod:`huscf_mpi.results.schema` and
``docs/results.md``.
"""
from .schema import SCHEMA_VERSION, STATUS_COMPLETE, STATUS_FAILED, STATUS_INTERRUPTED, STATUS_RUNNING
from .writer import ResultNotPlaced, ResultWriter

__all__ = ["ResultWriter", "ResultNotPlaced", "ResultFile", "summary", "SCHEMA_VERSION",
           "STATUS_RUNNING", "STATUS_COMPLETE", "STATUS_FAILED", "STATUS_INTERRUPTED"]


def __getattr__(name: str):
    # Lazy: `python -m huscf_mpi.results.show` must not import show.py twice, and the reader
    # pulls in pandas (~100 MB), which no MPI rank needs while training.
    if name == "summary":
        from .show import summary

        return summary
    if name == "ResultFile":
        from .reader import ResultFile

        return ResultFile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
