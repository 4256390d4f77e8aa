"""One definition of the result layout (``schema.LAYOUT``): docs/results.md, the code's names and a
real run's file agree with it."""
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from huscf_mpi.results import layout_docs, schema

from .conftest import DATA, ROOT, huscf_cli, needs_data, run_mpi

DOCS = ROOT / "docs" / "results.md"
GROUPS = ("rounds", "cuts", "samples", "audio", "strategy", "final")
NAME = re.compile(rf"[`\"']/?((?:{'|'.join(GROUPS)})/[\w<>]+)[`\"']")


def _declared(name: str) -> bool:
    """``name`` is an entry's name or pattern, matches one, or is the generic ``<group>/<name>``."""
    return (name.endswith("/<name>") or any(e.name == name for e in schema.LAYOUT)
            or any(schema.find(name, kind) for kind in (schema.Dataset, schema.Table, schema.Attrs)))


def test_docs_tables_are_generated_from_the_layout():
    _, stale = layout_docs.update(DOCS.read_text())
    assert not stale, f"run: python -m huscf_mpi.results.layout_docs docs/results.md (stale: {stale})"


def test_every_dataset_and_table_is_documented_once_and_every_documented_name_is_defined():
    text = DOCS.read_text()
    shown = [e.name for m in layout_docs.BLOCK.finditer(text) for e in layout_docs.selected(m["sel"])]
    entries = [e.name for e in schema.LAYOUT if not isinstance(e, schema.Attrs)]
    assert sorted(shown) == sorted(entries)
    for e in schema.LAYOUT:
        if isinstance(e, schema.Attrs) and e.name:
            assert f"`/{e.name}`" in text, e.name
    prose = layout_docs.BLOCK.sub("", text)
    undeclared = {n for n in NAME.findall(prose) if not _declared(n)}
    assert not undeclared, f"docs/results.md names what schema.LAYOUT does not define: {sorted(undeclared)}"


def test_names_in_the_code_are_defined():
    """Readers (tables, plots, show) and writers spell names as literals; each must be declared."""
    found = {(str(p.relative_to(ROOT)), n) for p in (ROOT / "huscf_mpi").rglob("*.py") for n in NAME.findall(p.read_text())}
    assert found  # the pattern still finds them
    assert not {(p, n) for p, n in found if not _declared(n)}


def test_strategy_datasets_are_named_by_their_strategies():
    """A ``rounds/<name>`` tagged with strategies is recorded under that name in each one's module
    (the writer catches the converse, an undeclared name, when the strategy runs)."""
    for e in schema.LAYOUT:
        for strategy in filter(None, getattr(e, "strategy", "").split(", ")):
            source = (ROOT / "huscf_mpi" / "strategies" / f"{strategy}.py").read_text()
            assert f'"{e.name.split("/", 1)[1]}"' in source, (e.name, strategy)


def test_entries_are_well_formed():
    names = [(type(e).__name__, e.name) for e in schema.LAYOUT]
    assert len(names) == len(set(names))
    for e in schema.LAYOUT:
        dtypes = [c.dtype for c in e.columns] if isinstance(e, schema.Table) else [getattr(e, "dtype", "str")]
        for d in dtypes:
            assert d in schema.KINDS or schema.exact_dtype(d) is not None, (e.name, d)
        if isinstance(e, schema.Dataset):
            assert e.ranks and e.meaning, e.name


def _check_file(path: Path) -> tuple[set[str], set[str]]:
    """Assert every dataset of ``path`` is declared with its number of axes and dtype; return
    (the datasets and tables seen, every attribute name)."""
    seen, attrs = set(), set()

    def dtype_ok(declared: str, ds: h5py.Dataset) -> bool:
        if declared == schema.STR:
            return h5py.check_string_dtype(ds.dtype) is not None
        exact = schema.exact_dtype(declared)
        return ds.dtype == exact if exact is not None else schema.kind_matches(declared, ds.dtype)

    def visit(name, obj):
        attrs.update(k for k in obj.attrs if k not in (schema.JSON_ATTRS, schema.COLUMNS_ATTR))
        if isinstance(obj, h5py.Group):
            return
        table = schema.find(obj.parent.name.strip("/"), schema.Table)
        if table is not None:
            column = next((c for c in table.columns if c.name == obj.name.rsplit("/", 1)[1]), None)
            assert column is not None, f"{name}: column not in the layout"
            assert obj.ndim == 1 and dtype_ok(column.dtype, obj), (name, obj.shape, obj.dtype, column)
            seen.add(table.name)
            return
        entry = schema.find(name, schema.Dataset)
        assert entry is not None, f"{name} is not in the layout"
        assert obj.ndim in entry.ranks and dtype_ok(entry.dtype, obj), (name, obj.shape, obj.dtype, entry)
        seen.add(entry.name)

    with h5py.File(path, "r") as f:
        attrs.update(f.attrs)
        f.visititems(visit)
    return seen, attrs


@pytest.mark.mpi
@needs_data
def test_a_real_run_writes_only_what_the_layout_defines(tmp_path):
    """A tiny emulated GA run (2 rounds of 2 iterations, sample grids on) covers most of the layout."""
    cfg = {"name": "layout", "seed": 3, "data": {"domains": {"mnist": 2}, "max_samples_per_client": 128},
           "model": {"width": 0.125},
           "training": {"batch_size": 16, "local_epochs": 1, "rounds": 2, "iterations_per_epoch": 2},
           "federation": {"warmup_rounds": 1}, "cuts": "ga",
           "cut_selection": {"devices": str(ROOT / "jobs/devices/paper.yaml"), "population": 10, "generations": 2,
                             "profile_repeats": 1, "profile_warmup": 0},
           "evaluation": {"generation_samples": 100, "synthetic_samples": 100, "synthetic_epochs": 1,
                          "classifier_epochs": 1, "batch_size": 50, "sample_grid": True, "grid_per_class": 2}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run.h5"
    proc = run_mpi(3, [huscf_cli(), "train", "--config", str(tmp_path / "cfg.yaml"), "--data-root", str(DATA),
                       "--output", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    seen, attrs = _check_file(out)
    for name in ("rounds/loss_d", "rounds/kld", "rounds/emulation_overrun_seconds", "samples/<domain>",
                 "cuts/measured_<net>_forward_seconds", "cuts/profiles", "ledger", "exposure", "preflight_ranks"):
        assert name in seen, name
    text = DOCS.read_text()
    undocumented = sorted(a for a in attrs if f"`{a}`" not in text and not a.startswith("predicted_"))
    assert not undocumented, f"attributes missing from docs/results.md: {undocumented}"
    with h5py.File(out, "r") as f:  # rows of samples/<domain> are the evaluated rounds
        assert len(f["samples/mnist"]) == int(np.sum(f["rounds/evaluated"][()]))
