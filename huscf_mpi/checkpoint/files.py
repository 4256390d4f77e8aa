"""Checkpoints on disk: one file per rank per round, committed by a manifest (issue 11, point 3).

Layout, beside the result file ``<output>`` (e.g. ``results/run-s0.h5``)::

    <output>.ckpt/
        manifest.json             the last complete checkpoint: round, ranks, config, files
        round-000004/rank-00000.pt   rank 0's state after round 4 (torch.save of a dict)
        round-000004/rank-00001.pt   ...one per rank

Every rank writes its own file (write to ``.tmp``, fsync, rename), so the ranks write in
parallel and no rank holds another's state; rank 0 writes the manifest (same way, then fsyncs
the folder) only once every rank has reported its file written, and only then removes the
older rounds. A run killed at any moment therefore leaves the previous manifest pointing at
files that are complete. The manifest is JSON, readable without torch.

Rank files are pickles (``torch.load(weights_only=False)``): resume only from checkpoints you
wrote, as with any pickle.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ..durable import write_atomic

SUFFIX = ".ckpt"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def checkpoint_dir(output: str | Path) -> Path:
    """``<output>.ckpt``: the checkpoints of the run whose final result file is ``output``."""
    output = Path(output)
    return output.with_name(output.name + SUFFIX)


def rank_file(root: Path, round_index: int, rank: int) -> Path:
    return Path(root) / f"round-{round_index:06d}" / f"rank-{rank:05d}.pt"


def save_rank(path: Path, state: dict) -> int:
    """Write one rank's state (atomically); returns the file's size in bytes."""
    import torch

    return write_atomic(path, lambda f: torch.save(state, f))


def load_rank(path: Path) -> dict:
    """One rank's state; ``ValueError`` (one line) if the file is missing or unreadable."""
    import torch

    try:
        with open(path, "rb") as f:
            return torch.load(f, weights_only=False)
    except OSError as e:
        raise ValueError(f"checkpoint file {path}: {e.strerror or e}") from None
    except (EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as e:
        first = str(e).split(". ")[0].strip() or type(e).__name__
        raise ValueError(f"checkpoint file {path} is truncated or corrupted ({first}); resume from an intact "
                         "checkpoint or start the run again") from None


def config_hash(config_yaml: str) -> str:
    """sha256 (hex) of a config's YAML, as the manifest records it."""
    return hashlib.sha256(config_yaml.encode()).hexdigest()


@dataclass
class Manifest:
    """What a complete checkpoint holds.

    Attributes
    ----------
    round : rounds done (1-based count) when it was written.
    ranks : MPI ranks of the run (a resume needs as many).
    result : the run's result file while unfinished (``<output>.partial``).
    config_yaml, config_hash : the run's config (``Config.to_yaml``) and its sha256.
    schema_version : the result file's ``schema_version``.
    bytes : size of each rank's file (index = rank), bytes.
    seconds : wall seconds from rank 0 starting its checkpoint to the last rank's report.
    written : UTC time of the manifest.
    format_version : of this layout (:data:`FORMAT_VERSION`).
    """

    round: int
    ranks: int
    result: str
    config_yaml: str
    config_hash: str
    schema_version: int
    bytes: list[int]
    seconds: float
    written: str
    format_version: int = FORMAT_VERSION

    def rank_file(self, root: Path, rank: int) -> Path:
        return rank_file(root, self.round, rank)


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Commit ``manifest`` atomically, then remove every other round's folder."""
    root = Path(root)
    write_atomic(root / MANIFEST, lambda f: f.write(json.dumps(asdict(manifest), indent=1).encode()))
    keep = rank_file(root, manifest.round, 0).parent.name
    for old in root.glob("round-*"):
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def find(path: str | Path) -> tuple[Path, Manifest]:
    """The checkpoint folder and manifest that ``--resume PATH`` names: the result file
    (``run.h5.partial``, or ``run.h5``), its ``run.h5.ckpt`` folder, or that folder's manifest.

    Raises ``ValueError`` with one line saying what was looked for and what to pass."""
    path = Path(path).expanduser()
    if path.name == MANIFEST:
        root = path.parent
    elif path.name.endswith(SUFFIX):
        root = path
    else:
        name = path.name[:-len(".partial")] if path.name.endswith(".partial") else path.name
        root = path.with_name(name + SUFFIX)
    where = root / MANIFEST
    if not where.is_file():
        raise ValueError(f"--resume {path}: no checkpoint at {where}; give the .partial result file of a run that "
                         "wrote one (training.checkpoint_every > 0), or its .ckpt folder")
    try:
        raw = json.loads(where.read_text())
        manifest = Manifest(**raw)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"--resume {path}: {where} is not a huscf-mpi checkpoint manifest ({e})") from None
    if manifest.format_version != FORMAT_VERSION:
        raise ValueError(f"--resume {path}: checkpoint format {manifest.format_version}, this huscf-mpi reads "
                         f"{FORMAT_VERSION}")
    return root, manifest
