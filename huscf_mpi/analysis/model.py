"""What a benchmark table is made of: the metric catalogue and the Table / Row / Column / Cell records.

Data only (plus :func:`parse_metrics`, which checks names against the catalogue): the loader
(:mod:`.runs`) fills run values keyed by these metric names, :mod:`.stats` makes cells,
:mod:`.tables` assembles a :class:`Table`, :mod:`.render` prints it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DASH = "–"  # a value no run has (tables) or a config field a group lacks (labels)


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
    # The Inception FID (pytorch-fid's network), present only in runs with evaluation.inception_weights.
    Metric("fid_inception", "FID (Inception)", False, 2, True),
    Metric("accuracy", "acc %", True, 2, True),
    Metric("precision", "prec %", True, 2, True),
    Metric("recall", "rec %", True, 2, True),
    Metric("f1", "F1 %", True, 2, True),
    Metric("fpr", "FPR %", False, 2, True),
    # Only with a threshold (tables --time-to-gs T): training wall seconds until GS >= T (issue 10).
    Metric("time_to_gs", "s to GS", False, 1, True),
)
RUN_METRICS = (
    Metric("predicted_s_per_it", "pred s/it", False, 4, False),
    Metric("measured_s_per_it", "meas s/it", False, 4, False),
    Metric("train_s", "train s", False, 1, False),
    # rank 0's compute share of the rounds' wall time (issue 10: how busy an asynchronous server is)
    Metric("server_busy_pct", "server busy %", True, 1, False),
    Metric("mib_moved", "MiB moved", False, 2, False),
)
METRICS = {m.name: m for m in DOMAIN_METRICS + RUN_METRICS}


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


@dataclass
class Cell:
    """Mean, sample std (NaN when fewer than 2 values) and number of values of one table cell."""

    mean: float
    std: float
    count: int


@dataclass
class Row:
    """One table row: a group of runs (or a paper reference row).

    ``cells`` maps column ids to numbers; ``texts`` maps text-column ids to strings; ``strategy``
    is the runs' strategy id (``huscf``, ``fedgan``, ...).
    """

    label: str
    n: int
    seeds: list
    cells: dict[str, Cell]
    reference: bool = False
    incomplete: int = 0
    strategy: str = ""
    texts: dict[str, str] = field(default_factory=dict)


@dataclass
class Column:
    """A numeric column: ``id`` is ``"mnist/accuracy"`` or ``"train_s"``; ``domain`` is "" for run metrics."""

    id: str
    domain: str
    metric: Metric

    @property
    def header(self) -> str:
        return f"{self.domain} {self.metric.header}" if self.domain else self.metric.header


@dataclass(frozen=True)
class TextColumn:
    """A text column (e.g. ``exposure``, "who saw what"), after the numeric ones; never bold."""

    id: str
    header: str


@dataclass
class Table:
    """Columns, rows, ``best`` (column id -> indices of its best rows) and notes for stderr."""

    columns: list[Column]
    rows: list[Row]
    best: dict[str, set[int]]
    notes: list[str]
    text_columns: list[TextColumn] = field(default_factory=list)
