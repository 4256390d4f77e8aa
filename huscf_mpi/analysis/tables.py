"""Benchmark tables: one row per configuration, mean ± std over seeds, in md / csv / latex.

This module assembles a table (:func:`build_table`) and runs the whole path for the CLI
(:func:`make_table`); the parts live in their own modules and are re-exported here:

- :mod:`.runs`: loading result files (:class:`Run`, :func:`load_runs`, the per-run numbers);
- :mod:`.grouping`: grouping runs by configuration and labelling rows (:class:`Group`,
  :func:`group_runs`, :func:`label_groups`, strategy names);
- :mod:`.reference`: the paper's reference accuracies (SPEC §7);
- :mod:`.stats`: mean ± sample std, best rows;
- :mod:`.model`: the metric catalogue and Table / Row / Column / Cell;
- :mod:`.render`: md, csv and latex text;
- :mod:`.exposure`: the "who saw what" summary of ``/exposure``.

A *configuration* is a run's resolved config (``provenance/config_yaml``) without ``seed``,
``output`` and ``name``, plus the strategy recorded in the provenance (``huscf`` when absent).
Runs with equal configurations form one group (one table row); each cell is the mean ± sample
standard deviation (``ddof=1``) over the group's runs that have the value, ``n`` is the group size.

Columns, per domain (final metrics of ``/final/<domain>``):
``generation_score`` (falls back to the last finite ``rounds/generation_score``), ``fid``
(headed "FID (clf)": Fréchet distance on the domain classifier's penultimate features, SPEC §6),
``fid_inception`` (headed "FID (Inception)": FID on Inception-v3 pool3 features as in pytorch-fid;
only runs with ``evaluation.inception_weights`` have it), ``accuracy``, ``precision``, ``recall``, ``f1``, ``fpr`` (all %, synthetic-data classifier on the
real test set); and per run:

- ``predicted_s_per_it``: predicted seconds per training iteration of the chosen cuts, from
  the first of ``PREDICTED_SOURCES`` present (absent in files without a latency model).
- ``measured_s_per_it``: measured seconds per iteration, from the first of
  ``MEASURED_SOURCES`` present, else ``train_s / (rounds × run.iterations_per_round)``.
- ``train_s``: training wall time, sum of ``rounds/wall_seconds`` (excludes evaluation).
- ``mib_moved``: all bytes sent by all ranks over all rounds (``rounds/bytes_sent``), MiB.

Columns no run has are left out. The best mean of each column (highest, or lowest for
``fid``, ``fid_inception``, ``fpr``, times and bytes) is bold in md and latex; csv has a ``best`` column listing
the column ids where that row is best. Best values are marked only when at least two rows
have the column; paper reference rows never compete.

Opt-in text column ``exposure`` ("who saw what", ``exposure=True``): per row, the compact
:func:`~.exposure.exposure_summary` of its runs' ``/exposure`` tables ("–" for runs without
one; ``varies: a | b`` if the runs of a row disagree).
"""
from __future__ import annotations

from .exposure import exposure_summary
from .grouping import (STRATEGY_NAMES, Group, differing_fields, format_value, group_runs, label_groups,
                       strategy_name)
from .model import (DASH, DOMAIN_METRICS, METRICS, RUN_METRICS, Cell, Column, Metric, Row, Table, TextColumn,
                    parse_metrics)
from .reference import PAPER_ACCURACY, PAPER_LABEL, PAPER_STRATEGY
from .render import FORMATS, latex_escape, render
from .runs import (DEFAULT_STRATEGY, IGNORED_KEYS, MEASURED_SOURCES, MOVED_SOURCES, PREDICTED_SOURCES, Run,
                   load_run, load_runs)
from .stats import best_rows, summarize

__all__ = [
    "build_table", "make_table", "EXPOSURE_COLUMN",
    # re-exported parts
    "Run", "load_run", "load_runs", "IGNORED_KEYS", "DEFAULT_STRATEGY", "PREDICTED_SOURCES", "MEASURED_SOURCES",
    "MOVED_SOURCES", "Group", "group_runs", "label_groups", "differing_fields", "format_value", "STRATEGY_NAMES",
    "strategy_name", "PAPER_LABEL", "PAPER_ACCURACY", "PAPER_STRATEGY", "summarize", "best_rows", "DASH", "Metric",
    "DOMAIN_METRICS", "RUN_METRICS", "METRICS", "parse_metrics", "Cell", "Row", "Column", "TextColumn", "Table",
    "FORMATS", "render", "latex_escape", "exposure_summary",
]

EXPOSURE_COLUMN = TextColumn("exposure", "who saw what")


def _exposure_text(g: Group) -> str | None:
    """The group's who-saw-what: its runs' common summary, ``varies: ...`` if they differ, None if none has one."""
    texts = list(dict.fromkeys(r.exposure for r in g.runs if r.exposure is not None))
    if not texts:
        return None
    return texts[0] if len(texts) == 1 else "varies: " + " | ".join(texts)


def build_table(groups: list[Group], by: list[str] | None = None, metrics: list[str] | None = None,
                reference: str | None = None, exposure: bool = False) -> Table:
    """Mean ± std table of ``groups``.

    Parameters
    ----------
    groups : list of Group
        From :func:`group_runs`.
    by : list of str, optional
        Config fields labelling rows (see :func:`label_groups`).
    metrics : list of str, optional
        Subset of ``METRICS`` names, in the wanted order; default all, columns no run has omitted.
    reference : {None, "paper"}
        "paper" appends the HuSCF-GAN accuracies of SPEC §7 for each scenario in ``groups``.
    exposure : bool, default False
        Add the text column ``exposure`` ("who saw what"); left out, with a note, when no run
        has an ``/exposure`` table.
    """
    if reference not in (None, "none", "paper"):
        raise ValueError(f"unknown reference {reference!r}; use 'paper'")
    label_groups(groups, by)
    wanted = parse_metrics(metrics) or list(METRICS)
    domains = list(dict.fromkeys(d for g in groups for r in g.runs for d in r.domains))
    notes: list[str] = []

    rows = []
    for g in groups:
        cells = {}
        keys = {k for r in g.runs for k in r.values}
        for domain, name in keys:
            cell = summarize([r.values[(domain, name)] for r in g.runs if (domain, name) in r.values])
            cells[f"{domain}/{name}" if domain else name] = cell
        label = g.label + (f" (incomplete: {g.incomplete} of {len(g.runs)})" if g.incomplete else "")
        texts = {}
        if exposure and (text := _exposure_text(g)) is not None:
            texts[EXPOSURE_COLUMN.id] = text
        rows.append(Row(label, len(g.runs), g.seeds, cells, incomplete=g.incomplete, strategy=g.strategy,
                        texts=texts))
        dup = sorted({s for s in g.seeds if g.seeds.count(s) > 1 and s is not None})
        if dup:
            notes.append(f"{g.label}: seed(s) {dup} appear more than once; every file is counted")

    if reference == "paper":
        for scenario in dict.fromkeys(g.scenario for g in groups):
            ref = PAPER_ACCURACY.get(scenario)
            if ref is None:
                notes.append(f"SPEC §7 has no HuSCF-GAN reference for scenario {scenario}")
                continue
            for d in ref:
                if d not in domains:
                    domains.append(d)
            cells = {f"{d}/accuracy": Cell(acc, float("nan"), 1) for d, acc in ref.items()}
            rows.append(Row(f"{PAPER_LABEL}, scenario {scenario}", 1, [], cells, reference=True,
                            strategy=PAPER_STRATEGY))

    columns = []
    for name in wanted:
        m = METRICS[name]
        for d in (domains if m.per_domain else [""]):
            cid = f"{d}/{name}" if d else name
            if any(cid in row.cells for row in rows):
                columns.append(Column(cid, d, m))
    # Domain major, metric minor (stable sort keeps the metric order); run metrics last.
    columns.sort(key=lambda c: (c.domain == "", domains.index(c.domain) if c.domain else 0))

    text_columns = []
    if exposure:
        if any(EXPOSURE_COLUMN.id in row.texts for row in rows):
            text_columns.append(EXPOSURE_COLUMN)
            missing = sum(r.exposure is None for g in groups for r in g.runs)
            if missing:
                notes.append(f"who saw what: {missing} run(s) have no /exposure table (written before it existed)")
        else:
            notes.append("who saw what: no file has an /exposure table; column left out")

    best: dict[str, set[int]] = {}
    for c in columns:
        scored = [(i, row.cells[c.id].mean) for i, row in enumerate(rows) if not row.reference and c.id in row.cells]
        rows_best = best_rows(scored, c.metric.higher_is_better)
        if rows_best:
            best[c.id] = rows_best
    return Table(columns, rows, best, notes, text_columns)


def make_table(paths, by: list[str] | None = None, metrics=None, fmt: str = "md", reference: str | None = None,
               allow_incomplete: bool = False, exposure: bool = False, gs_threshold: float | None = None
               ) -> tuple[str, list[str]]:
    """Load ``paths``, group, and render; returns ``(text, notes)``. Raises ValueError (one line).

    ``gs_threshold`` adds the per-domain column "s to GS" (time to quality, issue 10)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    groups = group_runs(load_runs(paths, allow_incomplete, gs_threshold))
    table = build_table(groups, by=by, metrics=parse_metrics(metrics), reference=reference, exposure=exposure)
    if not table.columns and not table.text_columns:
        raise ValueError("none of the requested metrics is present in these files")
    notes = list(table.notes)
    if gs_threshold is not None:
        notes.append(f"s to GS: training wall seconds (rounds/wall_seconds, evaluation excluded) until the "
                     f"generation score first reached {gs_threshold:g}; a run that never did has no value")
    return render(table, fmt), notes
