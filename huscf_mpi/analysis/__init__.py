"""Benchmark tables and figures from result files (``huscf-mpi tables`` / ``huscf-mpi plot``).

Both read result files through :class:`huscf_mpi.results.ResultFile` only. Runs whose
configurations differ only by seed (and output path / name) form one *group*; tables report
mean ± sample std over a group, plots draw one line per group with a band over its seeds.

Modules: :mod:`.runs` (loading), :mod:`.grouping` (groups and their labels), :mod:`.reference`
(the paper's numbers), :mod:`.stats` (mean ± std, best), :mod:`.model` (table records),
:mod:`.render` (md / csv / latex), :mod:`.exposure` (who saw what), :mod:`.tables` (assembly),
:mod:`.plots` (figures; imported on demand, it loads matplotlib).
"""
from .exposure import exposure_summary
from .grouping import Group, group_runs, label_groups
from .render import render
from .runs import Run, load_runs
from .tables import build_table, make_table

__all__ = ["Run", "Group", "load_runs", "group_runs", "label_groups", "build_table", "render", "make_table",
           "exposure_summary"]
