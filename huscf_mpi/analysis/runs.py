"""Loading result files into :class:`Run` records: config, strategy, seed and the numbers tables need.

Per domain, the final metrics of ``/final/<domain>`` (``generation_score`` falls back to the last
finite ``rounds/generation_score``); per run:

- ``predicted_s_per_it``: from the first of ``PREDICTED_SOURCES`` present;
- ``measured_s_per_it``: from the first of ``MEASURED_SOURCES`` present, else
  ``train_s / (rounds × run.iterations_per_round)``;
- ``train_s``: sum of ``rounds/wall_seconds`` (excludes evaluation);
- ``mib_moved``: from the first of ``MOVED_SOURCES`` present: all bytes sent by all ranks over
  all rounds, / 2**20 (every byte sent is received once, hence the fallback);
- ``exposure``: the compact who-saw-what of ``/exposure`` (:func:`.exposure.exposure_summary`),
  None when the file has no such table.

The strategy comes from ``provenance/strategy``; files without it are ``DEFAULT_STRATEGY``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..results import ResultFile, schema
from .exposure import exposure_summary
from .model import DOMAIN_METRICS
from .stats import time_to_quality

# Config keys that do not make a configuration different: runs that differ only here are seeds
# of one experiment (the name and output path usually encode the seed).
IGNORED_KEYS = ("seed", "output", "name")

# Strategy of files written before provenance recorded one.
DEFAULT_STRATEGY = "huscf"

# Where other parts of the code may store a number: (kind, location), the first present wins.
# "attr": "group:attr"; "dataset": mean of its finite values; "total": sum of its finite values.
PREDICTED_SOURCES = (("attr", "cuts:predicted_seconds_per_iteration"),)
MEASURED_SOURCES = (("dataset", "rounds/iteration_seconds"),)
MOVED_SOURCES = (("total", "rounds/bytes_sent"), ("total", "rounds/bytes_received"))


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
        ``config`` without ``IGNORED_KEYS``, plus ``strategy`` (``DEFAULT_STRATEGY`` when the
        provenance names none).
    status : str
    schema_version : int
    domains : list of str
    values : dict
        ``(domain, metric) -> float`` for per-domain metrics, ``("", metric)`` for run metrics.
    exposure : str or None
        Compact who-saw-what (:func:`.exposure.exposure_summary`); None without ``/exposure``.
    """

    path: Path
    seed: int | None
    config: dict
    key_config: dict
    status: str
    schema_version: int
    domains: list[str]
    values: dict[tuple[str, str], float]
    exposure: str | None = None

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def key(self) -> str:
        return json.dumps(self.key_config, sort_keys=True, default=str)

    @property
    def strategy(self) -> str:
        return str(self.key_config.get("strategy", DEFAULT_STRATEGY))

    @property
    def name(self) -> str:
        return str(self.config.get("name", "run"))


def _finite(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _lookup(rf: ResultFile, sources) -> float | None:
    """The first present of ``sources`` as one number (see ``MOVED_SOURCES`` for the kinds)."""
    for kind, where in sources:
        if kind in ("dataset", "total"):
            if where in rf:
                try:
                    arr = np.asarray(rf.array(where), dtype=float).ravel()
                except (KeyError, TypeError, ValueError):
                    continue
                arr = arr[np.isfinite(arr)]
                if arr.size:
                    return float(arr.mean() if kind == "dataset" else arr.sum())
        else:
            group, attr = where.split(":")
            if group in rf:
                v = _finite(rf.attrs(group).get(attr))
                if v is not None:
                    return v
    return None


def _run_values(rf: ResultFile, gs_threshold: float | None = None) -> tuple[list[str], dict[tuple[str, str], float]]:
    final = rf.final()
    domains = rf.domains or list(final)
    values: dict[tuple[str, str], float] = {}
    rounds = rf.rounds()
    for d in domains:
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
        col = f"generation_score/{d}"
        if gs_threshold is not None and col in rounds and "wall_seconds" in rounds:
            v = _finite(time_to_quality(rounds["wall_seconds"], rounds[col], gs_threshold))
            if v is not None:  # never reached: no value (the cell shows why in the note)
                values[(d, "time_to_gs")] = v

    train_s = None
    if "rounds/wall_seconds" in rf:
        wall = np.asarray(rf.array("rounds/wall_seconds"), dtype=float)
        if wall.size and np.isfinite(wall).any():
            train_s = float(np.nansum(wall))
            values[("", "train_s")] = train_s
    if train_s and "rounds/compute_seconds" in rf:
        server = np.asarray(rf.array("rounds/compute_seconds"), dtype=float)[:, 0]
        if np.isfinite(server).any():
            values[("", "server_busy_pct")] = 100 * float(np.nansum(server)) / train_s
    predicted = _lookup(rf, PREDICTED_SOURCES)
    if predicted is not None:
        values[("", "predicted_s_per_it")] = predicted
    measured = _lookup(rf, MEASURED_SOURCES)
    if measured is None and train_s is not None and schema.RUN in rf:
        iters = _finite(rf.attrs(schema.RUN).get("iterations_per_round"))
        n_rounds = len(rf.array("rounds/wall_seconds"))
        if iters and n_rounds:
            measured = train_s / (iters * n_rounds)
    if measured is not None:
        values[("", "measured_s_per_it")] = measured
    moved = _lookup(rf, MOVED_SOURCES)
    if moved is not None:
        values[("", "mib_moved")] = moved / 2**20
    return domains, values


def _exposure(rf: ResultFile) -> str | None:
    if schema.EXPOSURE not in rf:
        return None
    try:
        return exposure_summary(rf.table(schema.EXPOSURE))
    except (KeyError, ValueError) as e:
        raise ValueError(f"{rf.path}: unreadable /{schema.EXPOSURE} table ({e})") from None


@lru_cache(maxsize=1)
def _defaults() -> dict:
    from ..config import Config

    return Config().model_dump(mode="json")


def with_defaults(config: dict, defaults: dict) -> dict:
    """``config`` with every field it lacks filled from ``defaults``, recursively.

    A file written before a config field existed ran with that field's default behaviour (new
    fields default to the old behaviour), so it must group with newer files that record the
    default, not form a row of its own.
    """
    out = dict(config)
    for key, default in defaults.items():
        if key not in out:
            out[key] = default
        elif isinstance(default, dict) and isinstance(out[key], dict):
            out[key] = with_defaults(out[key], default)
    return out


def load_run(path: str | Path, allow_incomplete: bool = False, gs_threshold: float | None = None) -> Run:
    """Read one result file into a :class:`Run`; with ``gs_threshold`` also each domain's
    ``time_to_gs`` (:func:`~huscf_mpi.analysis.stats.time_to_quality`).

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
        key_config = {k: v for k, v in with_defaults(config, _defaults()).items() if k not in IGNORED_KEYS}
        key_config["strategy"] = str(prov.get("strategy") or DEFAULT_STRATEGY)
        seed = prov.get("seed", config.get("seed"))
        domains, values = _run_values(rf, gs_threshold)
        return Run(path=rf.path, seed=int(seed) if _finite(seed) is not None else None, config=config,
                   key_config=key_config, status=rf.status, schema_version=rf.schema_version,
                   domains=domains, values=values, exposure=_exposure(rf))


def load_runs(paths, allow_incomplete: bool = False, gs_threshold: float | None = None) -> list[Run]:
    """Read result files; refuse a mix of schema versions.

    Parameters
    ----------
    paths : iterable of str or Path
    allow_incomplete : bool, default False
        Include runs whose status is not "complete" (their rows are flagged).
    gs_threshold : float, optional
        Add each domain's ``time_to_gs``: training wall seconds until its generation score
        first reached this value.

    Raises
    ------
    ValueError
        One line naming the offending file(s).
    """
    runs = [load_run(p, allow_incomplete, gs_threshold) for p in paths]
    if not runs:
        raise ValueError("no result files given")
    versions = sorted({r.schema_version for r in runs})
    if len(versions) > 1:
        example = {v: next(str(r.path) for r in runs if r.schema_version == v) for v in versions}
        detail = ", ".join(f"v{v} (e.g. {p})" for v, p in example.items())
        raise ValueError(f"result files of different schema versions cannot be compared: {detail}; "
                         "pass files of one version")
    return runs
