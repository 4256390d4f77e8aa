"""Benchmark tables: group result files by configuration, mean ± std over seeds, md/csv/latex.

A *configuration* is a run's resolved config (``provenance/config_yaml``) without ``seed``,
``output`` and ``name``, plus the strategy recorded in the provenance. Runs with equal
configurations form one group (one table row); each cell is the mean ± sample standard
deviation (``ddof=1``) over the group's runs that have the value, ``n`` is the group size.

Columns, per domain (final metrics of ``/final/<domain>``):
``generation_score`` (falls back to the last finite ``rounds/generation_score``), ``fid``
(headed "FID (clf)": Fréchet distance on the domain classifier's penultimate features, SPEC §6),
``accuracy``, ``precision``, ``recall``, ``f1``, ``fpr`` (all %, synthetic-data classifier on the
real test set); and per run:

- ``predicted_s_per_it``: predicted seconds per training iteration of the chosen cuts, from
  the first of ``PREDICTED_SOURCES`` present (absent in files without a latency model).
- ``measured_s_per_it``: measured seconds per iteration, from the first of
  ``MEASURED_SOURCES`` present, else ``train_s / (rounds × run.iterations_per_round)``.
- ``train_s``: training wall time, sum of ``rounds/wall_seconds`` (excludes evaluation).
- ``mib_moved``: all bytes sent by all ranks over all rounds (``rounds/bytes_sent``), MiB.

Columns no run has are left out. The best mean of each column (highest, or lowest for
``fid``, ``fpr``, times and bytes) is bold in md and latex; csv has a ``best`` column listing
the column ids where that row is best. Best values are marked only when at least two rows
have the column; paper reference rows never compete.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..results import ResultFile

# Config keys that do not make a configuration different: runs that differ only here are seeds
# of one experiment (the name and output path usually encode the seed).
IGNORED_KEYS = ("seed", "output", "name")

# Where other parts of the code may store latency numbers: (kind, location). The first present wins.
PREDICTED_SOURCES = (("attr", "cuts:predicted_seconds_per_iteration"),)
MEASURED_SOURCES = (("dataset", "rounds/iteration_seconds"),)

PAPER_LABEL = "paper (HuSCF-GAN, original code)"
# SPEC §7: accuracy (%) of the classifier trained on synthetic data, original implementation, one run each.
PAPER_ACCURACY: dict[int, dict[str, float]] = {
    1: {"mnist": 97.87},
    2: {"mnist": 97.17},
    3: {"mnist": 96.83, "fashion_mnist": 82.93},
    4: {"mnist": 96.21, "fashion_mnist": 81.90},
    5: {"mnist": 96.15, "fashion_mnist": 81.46},
    6: {"mnist": 95.94, "fashion_mnist": 81.94, "kmnist": 72.91, "notmnist": 88.30},
}

FORMATS = ("md", "csv", "latex")
DASH = "–"


@dataclass(frozen=True)
class Metric:
    """One table quantity: ``name`` is its id, ``header`` its short column title."""

    name: str
    header: str
    higher_is_better: bool
    digits: int
    per_domain: bool


DOMAIN_METRICS = (
    Metric("generation_score", "GS", True, 3, True),
    # SPEC §6: FID here is computed on the domain classifier's penultimate-layer features, not
    # Inception's, and every table must say so.
    Metric("fid", "FID (clf)", False, 2, True),
    Metric("accuracy", "acc %", True, 2, True),
    Metric("precision", "prec %", True, 2, True),
    Metric("recall", "rec %", True, 2, True),
    Metric("f1", "F1 %", True, 2, True),
    Metric("fpr", "FPR %", False, 2, True),
)
RUN_METRICS = (
    Metric("predicted_s_per_it", "pred s/it", False, 4, False),
    Metric("measured_s_per_it", "meas s/it", False, 4, False),
    Metric("train_s", "train s", False, 1, False),
    Metric("mib_moved", "MiB moved", False, 2, False),
)
METRICS = {m.name: m for m in DOMAIN_METRICS + RUN_METRICS}


# ---------------------------------------------------------------------------------- loading
@dataclass
class Run:
    """One result file, reduced to what tables and plots need.

    Attributes
    ----------
    path : Path
    seed : int or None
    config : dict
        Resolved config as recorded in the file.
    key_config : dict
        ``config`` without ``IGNORED_KEYS``, plus ``strategy`` when the provenance names one.
    status : str
    schema_version : int
    domains : list of str
    values : dict
        ``(domain, metric) -> float`` for per-domain metrics, ``("", metric)`` for run metrics.
    """

    path: Path
    seed: int | None
    config: dict
    key_config: dict
    status: str
    schema_version: int
    domains: list[str]
    values: dict[tuple[str, str], float]

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def key(self) -> str:
        return json.dumps(self.key_config, sort_keys=True, default=str)


def _finite(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _lookup(rf: ResultFile, sources) -> float | None:
    """The first present of ``sources`` as one number (datasets: mean of their finite values)."""
    for kind, where in sources:
        if kind == "dataset":
            if where in rf:
                try:
                    arr = np.asarray(rf.array(where), dtype=float).ravel()
                except (KeyError, TypeError, ValueError):
                    continue
                arr = arr[np.isfinite(arr)]
                if arr.size:
                    return float(arr.mean())
        else:
            group, attr = where.split(":")
            if group in rf:
                v = _finite(rf.attrs(group).get(attr))
                if v is not None:
                    return v
    return None


def _run_values(rf: ResultFile) -> tuple[list[str], dict[tuple[str, str], float]]:
    final = rf.final()
    domains = rf.domains or list(final)
    values: dict[tuple[str, str], float] = {}
    rounds = rf.rounds()
    for j, d in enumerate(domains):
        for m in DOMAIN_METRICS:
            v = _finite(final.get(d, {}).get(m.name))
            if v is None and m.name == "generation_score":
                col = f"generation_score/{d}"
                if col in rounds:  # a run without final metrics: its last evaluated round
                    scores = rounds[col].astype(float).to_numpy()
                    scores = scores[np.isfinite(scores)]
                    v = float(scores[-1]) if scores.size else None
            if v is not None:
                values[(d, m.name)] = v

    train_s = None
    if "rounds/wall_seconds" in rf:
        wall = np.asarray(rf.array("rounds/wall_seconds"), dtype=float)
        if wall.size and np.isfinite(wall).any():
            train_s = float(np.nansum(wall))
            values[("", "train_s")] = train_s
    predicted = _lookup(rf, PREDICTED_SOURCES)
    if predicted is not None:
        values[("", "predicted_s_per_it")] = predicted
    measured = _lookup(rf, MEASURED_SOURCES)
    if measured is None and train_s is not None and "run" in rf:
        iters = _finite(rf.attrs("run").get("iterations_per_round"))
        n_rounds = len(rf.array("rounds/wall_seconds"))
        if iters and n_rounds:
            measured = train_s / (iters * n_rounds)
    if measured is not None:
        values[("", "measured_s_per_it")] = measured
    for name in ("rounds/bytes_sent", "rounds/bytes_received"):  # every byte sent is received once
        if name in rf:
            values[("", "mib_moved")] = float(np.asarray(rf.array(name), dtype=float).sum()) / 2**20
            break
    return domains, values


def load_run(path: str | Path, allow_incomplete: bool = False) -> Run:
    """Read one result file into a :class:`Run`.

    Raises
    ------
    ValueError
        One line: missing, not a result file, no recorded config, schema too new, or
        incomplete while ``allow_incomplete`` is False.
    """
    path = Path(path)
    try:
        rf = ResultFile(path, allow_incomplete=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such result file") from None
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 result file ({str(e).splitlines()[0]})") from None
    with rf:
        if not rf.complete and not allow_incomplete:
            why = f": {rf.error}" if rf.error else ""
            raise ValueError(f"{rf.path} is an incomplete run (status {rf.status}{why}); "
                             "remove it or pass --allow-incomplete to include it, flagged")
        config = rf.config
        if not config:
            raise ValueError(f"{rf.path}: no config recorded (provenance/config_yaml); cannot group it with other runs")
        prov = rf.provenance
        key_config = {k: v for k, v in config.items() if k not in IGNORED_KEYS}
        if prov.get("strategy"):
            key_config["strategy"] = prov["strategy"]
        seed = prov.get("seed", config.get("seed"))
        domains, values = _run_values(rf)
        return Run(path=rf.path, seed=int(seed) if _finite(seed) is not None else None, config=config,
                   key_config=key_config, status=rf.status, schema_version=rf.schema_version,
                   domains=domains, values=values)


def load_runs(paths, allow_incomplete: bool = False) -> list[Run]:
    """Read result files; refuse a mix of schema versions.

    Parameters
    ----------
    paths : iterable of str or Path
    allow_incomplete : bool, default False
        Include runs whose status is not "complete" (their rows are flagged).

    Raises
    ------
    ValueError
        One line naming the offending file(s).
    """
    runs = [load_run(p, allow_incomplete) for p in paths]
    if not runs:
        raise ValueError("no result files given")
    versions = sorted({r.schema_version for r in runs})
    if len(versions) > 1:
        example = {v: next(str(r.path) for r in runs if r.schema_version == v) for v in versions}
        detail = ", ".join(f"v{v} (e.g. {p})" for v, p in example.items())
        raise ValueError(f"result files of different schema versions cannot be compared: {detail}; "
                         "pass files of one version")
    return runs


# --------------------------------------------------------------------------------- grouping
@dataclass
class Group:
    """Runs of one configuration (differing only in ``IGNORED_KEYS``)."""

    key_config: dict
    runs: list[Run] = field(default_factory=list)
    label: str = ""

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]

    @property
    def incomplete(self) -> int:
        return sum(not r.complete for r in self.runs)

    @property
    def scenario(self) -> int:
        data = self.key_config.get("data") or {}
        return int(data.get("scenario", 1)) if isinstance(data, dict) else 1


def group_runs(runs: list[Run]) -> list[Group]:
    """Group runs by configuration, in order of first appearance."""
    groups: dict[str, Group] = {}
    for run in runs:
        groups.setdefault(run.key, Group(run.key_config)).runs.append(run)
    return list(groups.values())


def _flatten(tree, prefix: str = "") -> dict[str, object]:
    """Dotted leaves of a config; lists are leaves."""
    if isinstance(tree, dict) and tree:
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def _get(tree, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def format_value(value) -> str:
    """Compact text of a config value: ``[2,4,1,5]``, ``{mnist:2}``, ``0.25``, ``uniform-max``."""
    if value is _MISSING:
        return DASH
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def differing_fields(groups: list[Group], collapse: int = 3) -> list[str]:
    """Dotted config fields whose values differ between groups.

    Leaves sharing a parent are reported as that parent when more than ``collapse`` of them
    differ (e.g. ``cuts`` rather than ``cuts.1`` ... ``cuts.100``).
    """
    flats = [_flatten(g.key_config) for g in groups]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    differ = [k for k in keys if len({json.dumps(f.get(k, "<missing>"), sort_keys=True, default=str)
                                       for f in flats}) > 1]
    by_parent: dict[str, list[str]] = {}
    for k in differ:
        by_parent.setdefault(k.rsplit(".", 1)[0] if "." in k else k, []).append(k)
    out: list[str] = []
    for k in differ:
        parent = k.rsplit(".", 1)[0] if "." in k else k
        name = parent if len(by_parent[parent]) > collapse else k
        if name not in out:
            out.append(name)
    return out


def label_groups(groups: list[Group], by: list[str] | None = None) -> list[str]:
    """Set and return each group's row label ``field=value, ...``.

    ``by`` names dotted config fields (``cuts``, ``data.scenario``, ``model.width``); by default
    the fields that differ between groups. Without any such field, groups are labelled by
    their runs' names.

    Raises
    ------
    ValueError
        A field in ``by`` that no run's config has.
    """
    if by:
        for f in by:
            if all(_get(g.key_config, f) is _MISSING for g in groups):
                known = sorted({k.split(".")[0] for g in groups for k in g.key_config})
                raise ValueError(f"--by {f}: no run has this config field; top-level fields are {', '.join(known)} "
                                 "(use dots for nested ones, e.g. data.scenario)")
        fields = list(by)
    else:
        fields = differing_fields(groups)
    for g in groups:
        if fields:
            g.label = ", ".join(f"{f}={format_value(_get(g.key_config, f))}" for f in fields)
        else:
            names = list(dict.fromkeys(str(r.config.get("name", "run")) for r in g.runs))
            g.label = "/".join(names)
    return [g.label for g in groups]


# ------------------------------------------------------------------------------------ table
@dataclass
class Cell:
    mean: float
    std: float  # NaN when fewer than 2 values
    count: int


@dataclass
class Row:
    label: str
    n: int
    seeds: list
    cells: dict[str, Cell]
    reference: bool = False
    incomplete: int = 0


@dataclass
class Column:
    id: str  # "mnist/accuracy" or "train_s"
    domain: str  # "" for run metrics
    metric: Metric

    @property
    def header(self) -> str:
        return f"{self.domain} {self.metric.header}" if self.domain else self.metric.header


@dataclass
class Table:
    columns: list[Column]
    rows: list[Row]
    best: dict[str, set[int]]
    notes: list[str]


def _cell(values: list[float]) -> Cell | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return Cell(float(arr.mean()), std, int(arr.size))


def parse_metrics(metrics) -> list[str] | None:
    """Metric names from ``"accuracy,f1"`` or a list; None means all. Raises ValueError on unknown names."""
    if metrics is None:
        return None
    names = [m.strip() for part in ([metrics] if isinstance(metrics, str) else metrics) for m in str(part).split(",")]
    names = [m for m in names if m]
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    return names or None


def build_table(groups: list[Group], by: list[str] | None = None, metrics: list[str] | None = None,
                reference: str | None = None) -> Table:
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
            cell = _cell([r.values[(domain, name)] for r in g.runs if (domain, name) in r.values])
            cells[f"{domain}/{name}" if domain else name] = cell
        label = g.label + (f" (incomplete: {g.incomplete} of {len(g.runs)})" if g.incomplete else "")
        rows.append(Row(label, len(g.runs), g.seeds, cells, incomplete=g.incomplete))
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
            rows.append(Row(f"{PAPER_LABEL}, scenario {scenario}", 1, [], cells, reference=True))

    columns = []
    for name in wanted:
        m = METRICS[name]
        for d in (domains if m.per_domain else [""]):
            cid = f"{d}/{name}" if d else name
            if any(cid in row.cells for row in rows):
                columns.append(Column(cid, d, m))
    # Domain major, metric minor (stable sort keeps the metric order); run metrics last.
    columns.sort(key=lambda c: (c.domain == "", domains.index(c.domain) if c.domain else 0))

    best: dict[str, set[int]] = {}
    for c in columns:
        scored = [(i, row.cells[c.id].mean) for i, row in enumerate(rows) if not row.reference and c.id in row.cells]
        if len(scored) < 2:
            continue
        target = max(v for _, v in scored) if c.metric.higher_is_better else min(v for _, v in scored)
        best[c.id] = {i for i, v in scored if math.isclose(v, target, rel_tol=1e-12, abs_tol=0.0)}
    return Table(columns, rows, best, notes)


# -------------------------------------------------------------------------------- rendering
def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _cell_text(row: Row, col: Column, pm: str) -> str:
    cell = row.cells.get(col.id)
    if cell is None:
        return DASH
    d = col.metric.digits
    text = _number(cell.mean, d)
    if not math.isnan(cell.std):
        text += f" {pm} {_number(cell.std, d)}"
    if cell.count < row.n:
        text += f" (n={cell.count})"
    return text


def _md(table: Table) -> str:
    head = ["configuration", "n"] + [c.header for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(table.columns)) + "|"]
    for i, row in enumerate(table.rows):
        cells = []
        for c in table.columns:
            text = _cell_text(row, c, "±")
            cells.append(f"**{text}**" if i in table.best.get(c.id, ()) else text)
        lines.append("| " + " | ".join([row.label.replace("|", "\\|"), str(row.n)] + cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", DASH: "--"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(table: Table) -> str:
    cols = table.columns
    spec = "lr" + "r" * len(cols)
    lines = [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    domains = list(dict.fromkeys(c.domain for c in cols))
    if any(domains):  # a first header row spanning each domain's columns
        top, rules, start = ["", ""], [], 3
        for d in domains:
            span = sum(c.domain == d for c in cols)
            top.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(d)}}}" if d else
                       " & ".join([""] * span) if span > 1 else "")
            if d:
                rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines.append(" & ".join(top) + r" \\")
        lines.append(" ".join(rules))
    head = ["configuration", "$n$"] + [latex_escape(c.metric.header) for c in cols]
    lines += [" & ".join(head) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        cells = []
        for c in cols:
            text = latex_escape(_cell_text(row, c, "\x00")).replace("\x00", r"$\pm$")
            cells.append(rf"\textbf{{{text}}}" if i in table.best.get(c.id, ()) else text)
        lines.append(" & ".join([latex_escape(row.label), str(row.n)] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["configuration", "n", "seeds", "incomplete"]
    for c in table.columns:
        header += [f"{c.id}_mean", f"{c.id}_std"]
    w.writerow(header + ["best"])

    def num(x: float) -> str:
        return "" if x is None or math.isnan(x) else repr(float(x))

    for i, row in enumerate(table.rows):
        out = [row.label, row.n, " ".join(str(s) for s in row.seeds), row.incomplete]
        for c in table.columns:
            cell = row.cells.get(c.id)
            out += [num(cell.mean), num(cell.std)] if cell else ["", ""]
        out.append(";".join(c.id for c in table.columns if i in table.best.get(c.id, ())))
        w.writerow(out)
    return buf.getvalue()


def render(table: Table, fmt: str = "md") -> str:
    """Text of ``table`` in ``fmt`` ("md", "csv" or "latex")."""
    renderers = {"md": _md, "csv": _csv, "latex": _latex}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return renderers[fmt](table)


def make_table(paths, by: list[str] | None = None, metrics=None, fmt: str = "md", reference: str | None = None,
               allow_incomplete: bool = False) -> tuple[str, list[str]]:
    """Load ``paths``, group, and render; returns ``(text, notes)``. Raises ValueError (one line)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    groups = group_runs(load_runs(paths, allow_incomplete))
    table = build_table(groups, by=by, metrics=parse_metrics(metrics), reference=reference)
    if not table.columns:
        raise ValueError("none of the requested metrics is present in these files")
    return render(table, fmt), table.notes
