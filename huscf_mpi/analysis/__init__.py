"""Benchmark tables and figures from result files (``huscf-mpi tables`` / ``huscf-mpi plot``).

Both read result files through :class:`huscf_mpi.results.ResultFile` only. Runs whose
configurations differ only by seed (and output path / name) form one *group*; tables report
mean ± sample std over a group, plots draw one line per group with a band over its seeds.
"""
from .tables import Group, Run, build_table, group_runs, load_runs, make_table, render

__all__ = ["Run", "Group", "load_runs", "group_runs", "build_table", "render", "make_table"]
