"""Write a run's result file (rank 0 only); layout in :mod:`huscf_mpi.results.schema`.

Every dataset, table and attribute group it is asked to write must be declared in
``schema.LAYOUT`` (or by :meth:`ResultWriter.declare`): an undeclared name, a column a table
does not declare, or a value of the wrong number of axes or dtype kind raises ``ValueError`` /
``TypeError`` at once, so a test that writes it fails instead of the file drifting from its
documentation.

The file is written at ``<path>.partial`` and renamed to ``<path>`` only by
``close(status="complete")``, which writes "complete" after the rename, so a crashed, failed
or interrupted run can never be mistaken for a finished one: it stays ``.partial`` with root
``status`` "running" (killed outright), "failed" or "interrupted".
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from ..durable import fsync
from . import schema

_STR_DTYPE = h5py.string_dtype("utf-8")


def utc_now() -> str:
    """Current time as ISO-8601 UTC to the second, e.g. ``"2025-01-31T12:00:00Z"``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def one_line(text: str) -> str:
    """``text`` with line breaks collapsed, so status/error attrs stay single-line."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _encode_attr(key: str, value):
    """Return ``(stored_value, is_json)`` for an HDF5 attribute.

    h5py stores str, bool, numbers and numeric arrays natively; dict/list/tuple/None become
    JSON text (flagged so readers decode them); anything else (Path, objects) becomes str.
    """
    if key == "config_yaml" and isinstance(value, dict):
        import yaml  # only needed when the caller hands over the config as a dict

        return yaml.safe_dump(value, sort_keys=False), False
    if isinstance(value, (str, bool, int, float, np.generic)):
        return value, False
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value, False
    if value is None or isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, default=_json_default), True
        except (TypeError, ValueError):
            return str(value), False
    if isinstance(value, np.ndarray):
        return json.dumps(value.tolist(), default=_json_default), True
    return str(value), False


def _json_default(obj):
    # numpy scalars/arrays and paths show up inside provenance dicts (e.g. versions, hosts).
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


class ResultNotPlaced(OSError):
    """A complete run's file could not be put at its final path; it is at ``where``, marked "failed"."""

    def __init__(self, message: str, where: Path):
        super().__init__(message)
        self.where = Path(where)


def _set_attrs(obj: h5py.HLObject, attrs: dict) -> None:
    json_keys = set(json.loads(obj.attrs.get(schema.JSON_ATTRS, "[]")))
    for key, value in attrs.items():
        if key == schema.JSON_ATTRS:
            raise ValueError(f"attribute name {key!r} is reserved")
        stored, is_json = _encode_attr(key, value)
        obj.attrs[key] = stored
        if is_json:
            json_keys.add(key)
        else:
            json_keys.discard(key)
    if json_keys:
        obj.attrs[schema.JSON_ATTRS] = json.dumps(sorted(json_keys))
    elif schema.JSON_ATTRS in obj.attrs:
        del obj.attrs[schema.JSON_ATTRS]


def _string_column(values, joiner: str | None) -> np.ndarray:
    """1-D object array of str; sequence cells are joined (e.g. ``(64, 128) -> "64x128"``)."""
    out = []
    for v in values:
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        elif isinstance(v, (list, tuple, np.ndarray)):
            if joiner is None:
                raise TypeError(f"cell {v!r} is a sequence; expected a string")
            v = joiner.join(str(x) for x in v)
        out.append(str(v))
    return np.array(out, dtype=object).reshape(len(out))


def _as_stored(array, dtype=None) -> np.ndarray:
    """``array`` as stored: str/bytes/object -> variable-length UTF-8, else numeric."""
    arr = np.asarray(array)
    if dtype is schema.STR or arr.dtype.kind in "USO":
        flat = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in arr.reshape(-1).tolist()]
        return np.array(flat, dtype=object).reshape(arr.shape)
    if dtype is not None:
        target = np.dtype(dtype)
        if arr.size and not np.can_cast(arr.dtype, target, "same_kind"):
            raise TypeError(f"expected {target} values, got {arr.dtype}")
        if arr.size and arr.dtype.kind in "iu" and target.kind in "iu":
            info = np.iinfo(target)
            if arr.min() < info.min or arr.max() > info.max:
                raise ValueError(f"values outside the range of {target}")
        arr = arr.astype(target)
    return arr


def _check_kind(what: str, declared: str, arr: np.ndarray) -> None:
    """``TypeError`` unless ``arr``'s values are of the ``declared`` dtype's kind (empty arrays pass:
    ``np.asarray([])`` is float whatever the column holds)."""
    if arr.size and not schema.kind_matches(declared, arr.dtype):
        raise TypeError(f"{what}: declared {declared} in the result layout, got {arr.dtype} values")


def _check_axes(key: str, entry: schema.Dataset, shape: tuple) -> None:
    if len(shape) not in entry.ranks or any(shape[i] != n for i, n in entry.fixed_axes().items() if i < len(shape)):
        raise ValueError(f"{key!r}: expected shape {entry.shape} (result layout), got {shape}")


class ResultWriter:
    """Incremental writer of one run's HDF5 result file.

    Parameters
    ----------
    path : str or Path
        Final path of the result file (e.g. ``results/run.h5``). Parent directories are
        created. Data goes to ``<path>.partial`` until ``close(status="complete")``;
        a stale ``.partial`` from an earlier run at the same path is replaced.
    overwrite : bool, default False
        Allow replacing an existing file at ``path``. The old file is kept until the new
        run completes (the rename replaces it), so a failed rerun does not destroy it.

    Attributes
    ----------
    path : Path
        Final path.
    partial_path : Path
        ``<path>.partial``, where the file lives while open (and after a failure).
    status : str
        "running" until closed, then the status passed to :meth:`close` ("failed" if a
        complete run's file could not be put in place).

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> with ResultWriter("results/run.h5") as w:          # doctest: +SKIP
    ...     w.write_provenance(seed=0, command="huscf-mpi train cfg.yaml")
    ...     for r in range(3):
    ...         w.append("rounds/round", r)
    ...         w.append("rounds/loss_d", np.zeros(4, np.float32))
    """

    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = Path(path)
        self.partial_path = schema.partial_path(self.path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} already exists; pass overwrite=True or choose another path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # libver v108: its object headers hold attributes over 64 KiB (a long config_yaml);
        # not v110+, whose superblock marks the file "open for write" so that a killed run's
        # .partial (and a live one, from another process) could not be opened without h5clear.
        # best-effort locking: cluster file systems without flock (some Lustre/NFS mounts)
        # would otherwise refuse to create the file.
        self._file = h5py.File(self.partial_path, "w", libver=("v108", "latest"), track_order=True,
                               locking="best-effort")
        self.status = schema.STATUS_RUNNING
        self._declared: list = []  # entries beyond schema.LAYOUT (declare)
        root = self._file.attrs
        root["schema_version"] = np.int64(schema.SCHEMA_VERSION)
        root["status"] = schema.STATUS_RUNNING
        root["error"] = ""
        root["created"] = utc_now()
        root["finished"] = ""
        self._file.flush()

    @classmethod
    def reopen(cls, path: str | Path, rounds: int) -> "ResultWriter":
        """Continue the unfinished file ``<path>.partial`` of a run resumed after ``rounds`` rounds.

        Rows past the checkpoint (``rounds/*`` beyond ``rounds``, ``samples/*`` beyond the
        evaluations among them) are dropped, the stop attributes removed and ``status`` set back
        to "running"; everything else (provenance, partition, cuts) stays as the first part wrote it.

        Raises
        ------
        FileNotFoundError
            No ``<path>.partial``.
        ValueError
            The file is complete, or holds fewer rounds than ``rounds``.
        """
        self = cls.__new__(cls)
        self.path, self.partial_path = Path(path), schema.partial_path(path)
        if not self.partial_path.is_file():
            raise FileNotFoundError(f"no unfinished result file {self.partial_path} to continue")
        f = self._file = h5py.File(self.partial_path, "r+", locking="best-effort")
        self._declared = []
        try:
            if f.attrs.get("status") == schema.STATUS_COMPLETE:
                raise ValueError(f"{self.partial_path} says it is complete")
            have = f["rounds/round"].shape[0] if "rounds/round" in f else 0
            if have < rounds:
                raise ValueError(f"{self.partial_path} holds {have} rounds, the checkpoint {rounds}")
            evaluated = int(np.sum(f["rounds/evaluated"][:rounds])) if "rounds/evaluated" in f else 0
            for group, keep in (("rounds", rounds), ("samples", evaluated)):
                for ds in (f[group].values() if group in f else ()):
                    if isinstance(ds, h5py.Dataset) and ds.maxshape and ds.maxshape[0] is None:
                        ds.resize(min(ds.shape[0], keep), axis=0)
            for key in (*schema.STOP_ATTRS, "error", "finished"):
                if key in f.attrs:
                    del f.attrs[key]
            f.attrs["status"], f.attrs["error"], f.attrs["finished"] = schema.STATUS_RUNNING, "", ""
            f.flush()
        except BaseException:
            f.close()
            raise
        self.status = schema.STATUS_RUNNING
        return self

    def read(self, name: str) -> np.ndarray:
        """The stored dataset ``name`` (e.g. a table column ``resumes/round``), as written."""
        return self._open()[name.strip("/")][()]

    def has(self, name: str) -> bool:
        return name.strip("/") in self._open()

    # ------------------------------------------------------------------ helpers
    @property
    def closed(self) -> bool:
        return self._file is None

    def _open(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError(f"result writer for {self.path} is closed")
        return self._file

    def _group(self, name: str) -> h5py.Group:
        """The group ``name`` ("/" = root), created with intermediates if missing."""
        f = self._open()
        name = name.strip("/")
        if not name:
            return f
        node = f
        for part in name.split("/"):
            if part not in node:
                node = node.create_group(part, track_order=True)
            else:
                node = node[part]
                if not isinstance(node, h5py.Group):
                    raise ValueError(f"{name!r}: {node.name} is a dataset, not a group")
        return node

    def _parent_and_leaf(self, name: str) -> tuple[h5py.Group, str]:
        name = name.strip("/")
        if not name:
            raise ValueError("dataset name must not be empty")
        parent, _, leaf = name.rpartition("/")
        return self._group(parent), leaf

    def _entry(self, name: str, kind: type):
        """The layout entry of ``kind`` declaring ``name``; ``ValueError`` naming it if none does."""
        entry = schema.find(name, kind, self._declared)
        if entry is None:
            what = {schema.Dataset: "dataset", schema.Table: "table", schema.Attrs: "attribute group"}[kind]
            raise ValueError(f"{what} {name!r} is not in the result layout: declare it in "
                             "huscf_mpi.results.schema.LAYOUT (a strategy outside the package: Strategy.records) "
                             "and in docs/results.md")
        return entry

    # ------------------------------------------------------------------ writing
    def declare(self, *entries) -> None:
        """Extend the layout of this file with :class:`~huscf_mpi.results.schema.Dataset` /
        ``Table`` / ``Attrs`` entries: what a strategy defined outside the package records
        (``Strategy.records``, e.g. its ``rounds/<name>``). The package's own are in ``schema.LAYOUT``."""
        for entry in entries:
            if not isinstance(entry, (schema.Dataset, schema.Table, schema.Attrs)):
                raise TypeError(f"not a layout entry: {entry!r}")
        self._declared.extend(entries)

    def write_provenance(self, **attrs) -> None:
        """Set attributes of ``/provenance`` (merged with earlier calls).

        dict/list/tuple/None values are stored as JSON text; ``config_yaml`` given as a dict
        is dumped to YAML; values h5py cannot store (Path, objects) are stored as ``str``.
        """
        _set_attrs(self._group(schema.PROVENANCE), attrs)

    def set_attrs(self, group: str, **attrs) -> None:
        """Set attributes of ``group`` (created if missing) or of an existing dataset.

        E.g. ``set_attrs("cuts", mode="ga")``, ``set_attrs("final/mnist", accuracy=97.1)``.
        The root lifecycle attrs (schema_version, status, error, created, finished) are
        reserved for the writer.
        """
        f = self._open()
        key = group.strip("/")
        if schema.find(key, schema.Attrs, self._declared) is None:
            self._entry(key, schema.Dataset)  # attributes of a declared dataset (e.g. audio/<domain>)
        if not key:
            reserved = sorted(set(attrs) & set(schema.ROOT_ATTRS + schema.STOP_ATTRS))
            if reserved:
                raise ValueError(f"root attributes {reserved} are managed by the writer")
        obj = f[key] if key and key in f and isinstance(f[key], h5py.Dataset) else self._group(key)
        _set_attrs(obj, attrs)

    def write_table(self, group: str, columns: dict) -> None:
        """Write a table as ``group`` with one 1-D dataset per column, replacing any old one.

        Parameters
        ----------
        group : str
            Table name, e.g. "partition" or "ledger".
        columns : dict of str -> array-like
            Equal-length 1-D columns, stored in the given order. Strings are stored as
            variable-length UTF-8. For the known tables (see ``schema.TABLES``) all required
            columns must be present and are cast to the schema dtypes; ``excluded_labels``
            and ``shape`` cells may be sequences, joined as "2,5" and "64x128x7x7".

        Raises
        ------
        ValueError
            Columns of unequal length, not 1-D, or required columns missing.
        """
        key = group.strip("/")
        declared = {c.name: c for c in self._entry(key, schema.Table).columns}
        unknown = [c for c in columns if c not in declared]
        if unknown:
            raise ValueError(f"table {key!r}: columns {unknown} are not in the result layout "
                             "(huscf_mpi.results.schema.LAYOUT)")
        spec = schema.TABLES.get(key, {})
        missing = [c for c in spec if c not in columns]
        if missing:
            raise ValueError(f"table {key!r} is missing required columns {missing}")
        prepared: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            dtype = spec.get(name)
            joiner = schema.JOINERS.get(name)
            if dtype is schema.STR or (joiner is not None and not isinstance(values, np.ndarray)):
                arr = _string_column(values, joiner)
            else:
                arr = _as_stored(values, dtype)
            if arr.ndim != 1:
                raise ValueError(f"table {key!r}: column {name!r} must be 1-D, got shape {arr.shape}")
            _check_kind(f"table {key!r}: column {name!r}", declared[name].dtype, arr)
            prepared[name] = arr
        lengths = {name: len(a) for name, a in prepared.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"table {key!r}: columns differ in length {lengths}")
        parent, leaf = self._parent_and_leaf(key)
        if leaf in parent:
            del parent[leaf]
        g = parent.create_group(leaf, track_order=True)
        for name, arr in prepared.items():
            g.create_dataset(name, data=arr, dtype=_STR_DTYPE if arr.dtype == object else arr.dtype)
        g.attrs[schema.COLUMNS_ATTR] = json.dumps(list(prepared))

    def write_array(self, name: str, array, **attrs) -> None:
        """Write dataset ``name`` (e.g. "cuts/cut_vectors", "domains"), replacing any old one.

        Checked against its layout entry: number of axes, axes of literal length, dtype kind;
        an exact declared dtype is cast to, e.g. cut vectors must be (N, 4) integers and are
        stored as int32. Strings become variable-length UTF-8. ``attrs`` are set on the dataset.
        """
        key = name.strip("/")
        entry = self._entry(key, schema.Dataset)
        arr = _as_stored(array, schema.exact_dtype(entry.dtype))
        _check_axes(key, entry, arr.shape)
        _check_kind(repr(key), entry.dtype, arr)
        parent, leaf = self._parent_and_leaf(key)
        if leaf in parent:
            del parent[leaf]
        ds = parent.create_dataset(leaf, data=arr, dtype=_STR_DTYPE if arr.dtype == object else arr.dtype)
        if attrs:
            _set_attrs(ds, attrs)

    def append(self, name: str, value) -> None:
        """Append one row to the growable dataset ``name`` (e.g. "rounds/loss_d").

        The first call creates it with shape ``(1, *value.shape)`` and the value's dtype, or the
        exact dtype its layout entry declares (``samples/*`` is stored as uint8); the number of
        axes and the dtype kind must match the entry. Later values must have the same trailing shape
        and a dtype castable within the same kind (int into a float dataset is fine, float
        into an int one raises ``TypeError``).

        Parameters
        ----------
        name : str
            Dataset path.
        value : scalar or array-like
            One row, e.g. a float, an (N,) vector or an (H, W) uint8 image grid.
        """
        f = self._open()
        key = name.strip("/")
        entry = self._entry(key, schema.Dataset)
        arr = _as_stored(value, schema.exact_dtype(entry.dtype))
        if key in f:
            ds = f[key]
            if not isinstance(ds, h5py.Dataset) or not ds.maxshape or ds.maxshape[0] is not None:
                raise ValueError(f"{key!r} exists and is not an appendable dataset")
            if arr.shape != ds.shape[1:]:
                raise ValueError(f"{key!r}: row shape {arr.shape} differs from {ds.shape[1:]}")
            if ds.dtype.kind == "O":
                if arr.dtype != object:
                    raise TypeError(f"{key!r} holds strings, got {arr.dtype}")
            else:
                arr = _as_stored(arr, ds.dtype)
            n = ds.shape[0]
            ds.resize(n + 1, axis=0)
            ds[n] = arr
            return
        _check_axes(key, entry, (None, *arr.shape))
        _check_kind(repr(key), entry.dtype, arr)
        parent, leaf = self._parent_and_leaf(key)
        dtype = _STR_DTYPE if arr.dtype == object else arr.dtype
        row_bytes = max(1, int(np.prod(arr.shape, dtype=np.int64)) * (8 if arr.dtype == object else arr.dtype.itemsize))
        # ~64 KiB chunks: few chunk lookups for scalars, one row per chunk for image grids.
        rows = int(max(1, min(1024, (64 << 10) // row_bytes)))
        compress = "gzip" if row_bytes >= 1024 else None
        parent.create_dataset(leaf, data=arr[np.newaxis], dtype=dtype, maxshape=(None, *arr.shape),
                              chunks=(rows, *arr.shape) if arr.shape else (rows,), compression=compress)

    def flush(self) -> None:
        """Push buffered data to disk, so a crash loses at most what came after."""
        self._open().flush()

    def close(self, status: str = schema.STATUS_COMPLETE, error: str = "", **stop) -> Path:
        """Finish the file with ``status`` ("complete", "failed" or "interrupted"); close it.

        "failed" and "interrupted" set ``status``, ``error`` (one line: what failed, or which
        signal stopped the run), ``finished`` and the ``stop`` attributes (``schema.STOP_ATTRS``:
        ``stop_phase``, ``rounds_done``, ``iterations_done``, ``stop_signal``) and leave the file
        at ``<path>.partial``.

        "complete" puts the file in place first and says so after: ``finished`` is set, the
        file is closed and fsynced still saying "running", renamed to ``<path>`` (replacing an
        older file there), reopened, marked "complete" and fsynced with its folder. A crash at
        any point therefore leaves a file that claims less than what happened, never more (the
        other order, "complete" written before the rename, leaves a ``.partial`` saying
        "complete" when the rename fails or the process dies before it). If the rename fails
        (the path became a folder, the folder became read-only...) the ``.partial`` is marked
        "failed" with the reason and :class:`ResultNotPlaced` is raised; if marking the
        renamed file fails, it is moved back to ``.partial`` and marked "failed" where
        possible (else it stays at ``<path>`` saying "running") and the same error is raised.

        Closing twice is a no-op.

        Returns
        -------
        Path
            Where the file now is.

        Raises
        ------
        ResultNotPlaced
            A complete run whose file could not be put in place; ``status`` is then "failed".
        """
        if self._file is None:
            return self.path if self.status == schema.STATUS_COMPLETE else self.partial_path
        if status not in schema.END_STATUSES:
            raise ValueError(f"close status must be one of {schema.END_STATUSES}, got {status!r}")
        if (error or stop) and status == schema.STATUS_COMPLETE:
            raise ValueError("an error message or stop attributes are only allowed when the run did not complete")
        unknown = sorted(set(stop) - set(schema.STOP_ATTRS))
        if unknown:
            raise ValueError(f"unknown stop attributes {unknown}; expected some of {schema.STOP_ATTRS}")
        root = self._file.attrs
        root["finished"] = utc_now()
        if status != schema.STATUS_COMPLETE:
            root["status"] = status
            root["error"] = one_line(error)
            _set_attrs(self._file, stop)
            self._file.close()
            self._file = None
            self.status = status
            fsync(self.partial_path)
            return self.partial_path
        self._file.close()
        self._file = None
        fsync(self.partial_path)
        try:
            os.replace(self.partial_path, self.path)
        except OSError as e:
            reason = f"the finished run's file could not be moved to {self.path}: {e.strerror or e}"
            self._mark(self.partial_path, schema.STATUS_FAILED, reason)
            raise ResultNotPlaced(reason, self.partial_path) from e
        try:
            self._mark(self.path, schema.STATUS_COMPLETE)
            fsync(self.path.parent)
        except OSError as e:
            reason = f"the finished run's file could not be marked complete at {self.path}: {e.strerror or e}"
            where = self.path
            try:
                os.replace(self.path, self.partial_path)
                where = self.partial_path
                self._mark(where, schema.STATUS_FAILED, reason)
            except OSError:
                pass  # left at <path> saying "running": readers treat it as incomplete
            raise ResultNotPlaced(reason, where) from e
        return self.path

    def _mark(self, path: Path, status: str, error: str = "") -> None:
        """Set the root status (and error) of the closed file at ``path``; fsync it."""
        with h5py.File(path, "r+", locking="best-effort") as f:
            f.attrs["status"] = status
            f.attrs["error"] = one_line(error)
        self.status = status
        fsync(path)

    def __enter__(self) -> "ResultWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self.close(schema.STATUS_COMPLETE)
        elif not self.closed:
            self.close(schema.STATUS_FAILED, error=one_line(repr(exc)))
        return False  # never swallow the exception

    def __repr__(self) -> str:
        return f"ResultWriter({str(self.path)!r}, status={self.status!r})"
