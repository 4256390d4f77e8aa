"""Read a run's result file; layout in :mod:`huscf_mpi.results.schema`."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from . import schema


def _plain(value):
    """h5py attribute value as a plain Python value (str, int, float, bool, list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def read_attrs(obj: h5py.HLObject, json_keys: tuple[str, ...] = ()) -> dict:
    """Attributes of ``obj`` as a dict, JSON-decoding those the writer flagged (and ``json_keys``)."""
    raw = {k: _plain(v) for k, v in obj.attrs.items()}
    flagged = set(json.loads(raw.pop(schema.JSON_ATTRS, "[]")))
    for key in flagged | set(json_keys):
        if isinstance(raw.get(key), str):
            try:
                raw[key] = json.loads(raw[key])
            except json.JSONDecodeError:
                if key in flagged:
                    raise
    return raw


def _read_dataset(ds: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return np.asarray(ds.asstr()[()], dtype=object)
    return ds[()]


def _open_read(path: Path) -> h5py.File:
    try:
        # No locking: lets another process peek at a run in progress, whose writer holds a lock.
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        # Within the writer's own process HDF5 shares the open file and insists the locking
        # flags match the writer's ("best-effort").
        if "locking flag" not in str(exc):
            raise
        return h5py.File(path, "r", locking="best-effort")


class ResultFile:
    """Read-only view of a result file written by :class:`~huscf_mpi.results.ResultWriter`.

    Parameters
    ----------
    path : str or Path
        The result file. If it does not exist but ``<path>.partial`` does, that is opened
        when ``allow_incomplete`` (and named in the error otherwise).
    allow_incomplete : bool, default False
        Accept a file whose status is not "complete" ("running", "failed", "interrupted"),
        wherever it is: only the status is trusted, not the file's name. A file still being
        written can be read after the writer's ``flush()``; it may be momentarily inconsistent.

    Attributes
    ----------
    path : Path
        The file actually opened.
    schema_version : int
    status : str
        "running", "complete", "failed" or "interrupted".
    error : str
        One line: what failed, or which signal stopped the run and where; "" if complete.
    stop : dict
        Where a failed or interrupted run stopped (``schema.STOP_ATTRS`` present: stop_phase,
        rounds_done, iterations_done, stop_signal); {} otherwise.
    created, finished : str
        ISO-8601 UTC; ``finished`` is "" while running.
    provenance : dict
        ``/provenance`` attributes, JSON fields decoded (``versions`` dict, ``hosts`` list).
    config : dict
        The resolved run config parsed from ``provenance["config_yaml"]`` ({} if absent).
    domains : list of str
        Ordered domain names.

    Raises
    ------
    FileNotFoundError
        Neither ``path`` nor ``<path>.partial`` exists.
    ValueError
        Not a result file, schema newer than supported, or incomplete while
        ``allow_incomplete`` is False.
    """

    def __init__(self, path: str | Path, allow_incomplete: bool = False):
        path = Path(path)
        partial = schema.partial_path(path)
        if not path.is_file():  # missing, or a folder in the way of a run's final rename
            if not partial.is_file():
                raise FileNotFoundError(f"no result file at {path}")
            if not allow_incomplete:
                raise ValueError(f"{path} does not exist, only the incomplete {partial}; pass allow_incomplete=True to read it")
            path = partial
        self.path = path
        self._file = _open_read(path)
        try:
            self._check(allow_incomplete)
        except Exception:
            self._file.close()
            raise

    def _check(self, allow_incomplete: bool) -> None:
        attrs = self._file.attrs
        if "schema_version" not in attrs:
            raise ValueError(f"{self.path} is not a huscf-mpi result file (no schema_version)")
        self.schema_version = int(attrs["schema_version"])
        if self.schema_version > schema.SCHEMA_VERSION:
            raise ValueError(f"{self.path} has schema version {self.schema_version}; this huscf-mpi reads up to {schema.SCHEMA_VERSION}")
        self.status = str(_plain(attrs.get("status", "")))
        self.error = str(_plain(attrs.get("error", "")))
        self.created = str(_plain(attrs.get("created", "")))
        self.finished = str(_plain(attrs.get("finished", "")))
        if self.status != schema.STATUS_COMPLETE and not allow_incomplete:
            detail = f": {self.error}" if self.error else ""
            raise ValueError(f"{self.path} is incomplete (status {self.status}{detail}); pass allow_incomplete=True to read it")

    @property
    def complete(self) -> bool:
        return self.status == schema.STATUS_COMPLETE

    @property
    def stop(self) -> dict:
        attrs = self._file.attrs
        return {k: _plain(attrs[k]) for k in schema.STOP_ATTRS if k in attrs}

    @property
    def provenance(self) -> dict:
        if schema.PROVENANCE not in self._file:
            return {}
        return read_attrs(self._file[schema.PROVENANCE], schema.JSON_PROVENANCE_KEYS)

    @property
    def config(self) -> dict:
        text = self.provenance.get("config_yaml", "")
        if not text:
            return {}
        import yaml

        parsed = yaml.safe_load(text)
        return parsed if isinstance(parsed, dict) else {}

    @property
    def domains(self) -> list[str]:
        node = self._file.get(schema.DOMAINS)
        if isinstance(node, h5py.Dataset):
            return [str(d) for d in _read_dataset(node).tolist()]
        return []

    def __contains__(self, name: str) -> bool:
        return name.strip("/") in self._file

    def keys(self, group: str = "/") -> list[str]:
        """Names directly under ``group`` (in creation order); [] if it is missing."""
        node = self._file.get(group.strip("/") or "/")
        return list(node.keys()) if isinstance(node, h5py.Group) else []

    def attrs(self, name: str = "/") -> dict:
        """Attributes of any group or dataset, JSON fields decoded."""
        return read_attrs(self._node(name))

    def _node(self, name: str):
        key = name.strip("/") or "/"
        if key not in self._file:
            raise KeyError(f"{key!r} not in {self.path}")
        return self._file[key]

    def array(self, name: str) -> np.ndarray:
        """Dataset ``name`` (e.g. "cuts/cut_vectors", "rounds/loss_d") as an array; strings as str objects."""
        node = self._node(name)
        if not isinstance(node, h5py.Dataset):
            raise KeyError(f"{name!r} in {self.path} is a group, not a dataset")
        return _read_dataset(node)

    def table(self, group: str) -> pd.DataFrame:
        """A table group (e.g. "partition", "ledger") as a DataFrame, columns in written order."""
        node = self._node(group)
        if not isinstance(node, h5py.Group):
            raise KeyError(f"{group!r} in {self.path} is not a table")
        order = json.loads(node.attrs.get(schema.COLUMNS_ATTR, "null")) or list(node.keys())
        return pd.DataFrame({c: _read_dataset(node[c]) for c in order})

    def rounds(self) -> pd.DataFrame:
        """Per-round quantities, one row per round.

        1-D datasets are columns as is; an (R, K) dataset becomes columns ``"<name>[<i>]"``,
        except ``generation_score`` whose columns are ``"generation_score/<domain>"`` when
        ``domains`` has K names. Higher-rank rows are flattened as ``"<name>[<i>,<j>]"``.
        If some datasets are shorter (a run stopped mid-round), they are padded with NaN
        up to the longest.
        """
        group = self._file.get(schema.ROUNDS)
        if not isinstance(group, h5py.Group):
            return pd.DataFrame()
        domains = self.domains
        columns: dict[str, np.ndarray] = {}
        names = list(group.keys())
        if "round" in names:  # the round index first, whatever order it was written in
            names.remove("round")
            names.insert(0, "round")
        for name in names:
            node = group[name]
            if not isinstance(node, h5py.Dataset) or node.ndim == 0:
                continue
            data = _read_dataset(node)
            if data.ndim == 1:
                columns[name] = data
                continue
            flat = data.reshape(data.shape[0], -1)
            if name == "generation_score" and data.ndim == 2 and len(domains) == data.shape[1]:
                labels = [f"generation_score/{d}" for d in domains]
            else:
                labels = [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*data.shape[1:])]
            for j, label in enumerate(labels):
                columns[label] = flat[:, j]
        n = max((len(v) for v in columns.values()), default=0)
        for key, col in columns.items():
            if len(col) < n:
                pad = np.full(n - len(col), np.nan if col.dtype != object else None, dtype=object if col.dtype == object else float)
                columns[key] = np.concatenate([col.astype(pad.dtype), pad])
        return pd.DataFrame(columns)

    def final(self) -> dict[str, dict[str, float]]:
        """Final metrics: domain -> {metric: value} (numbers as float, in the units written)."""
        group = self._file.get(schema.FINAL)
        if not isinstance(group, h5py.Group):
            return {}
        out: dict[str, dict[str, float]] = {}
        for domain, node in group.items():
            metrics = read_attrs(node)
            out[domain] = {k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                           for k, v in metrics.items()}
        return out

    def samples(self, domain: str) -> np.ndarray:
        """(R, H, W) uint8 image grids of ``domain``, one per round ((R, H, W, C) for RGB domains)."""
        return self.array(f"{schema.SAMPLES}/{domain}")

    def close(self) -> None:
        if self._file is not None and self._file.id.valid:
            self._file.close()

    def __enter__(self) -> "ResultFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultFile({str(self.path)!r}, status={self.status!r}, schema_version={self.schema_version})"
