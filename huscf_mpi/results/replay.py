"""Read the buffers of an asynchronous run back, to replay it (``huscf-mpi train --replay FILE``, issue 10).

An asynchronous server records, per round, which client iterations it served in which
buffer (``rounds/served_client``, ``rounds/served_buffer``, int32 (R, N·I)). A run fed those
buffers forms the same ones whatever the order its messages arrive in, so its per-round
losses, scores and final metrics equal the recorded run's bit for bit.
"""
from __future__ import annotations

import numpy as np
import yaml

from .reader import ResultFile

# Fields that may differ between a run and its replay: they name the output, not the computation.
IGNORED = ("name", "output", "training.replay")


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("domains", "cuts"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def replay_buffers(served_client: np.ndarray, served_buffer: np.ndarray) -> list[list[int]]:
    """One round's recorded buffers as lists of client ids, in serving order."""
    out: dict[int, list[int]] = {}
    for c, b in zip(np.asarray(served_client).tolist(), np.asarray(served_buffer).tolist()):
        out.setdefault(int(b), []).append(int(c))
    return [out[b] for b in sorted(out)]


def load_replay(path: str, config) -> dict[int, list[list[int]]]:
    """Round (1-based) → its buffers (lists of client ids, in serving order) from the result file ``path``.

    ``config`` (a :class:`~huscf_mpi.config.Config`) must equal the recorded run's in every
    field but :data:`IGNORED`. Raises ``ValueError`` with one line naming the problem: not a
    readable result file, not an asynchronous run, a different config, or no recorded round.
    """
    where = f"training.replay: {path}"
    try:
        with ResultFile(path, allow_incomplete=True) as r:
            recorded = yaml.safe_load(r.provenance["config_yaml"])
            if not {"rounds/served_client", "rounds/served_buffer"} <= {f"rounds/{k}" for k in r.keys("rounds")}:
                raise ValueError(f"{where} holds no recorded buffers: only buffered and sequential runs can be "
                                 "replayed")
            clients, buffers = r.array("rounds/served_client"), r.array("rounds/served_buffer")
    except (OSError, KeyError) as e:
        raise ValueError(f"{where} is not a readable huscf-mpi result file ({e})") from None
    ours = _flat(config.model_dump(mode="json"))
    theirs = _flat(recorded)
    for key in sorted(set(ours) | set(theirs)):
        if key in IGNORED:
            continue
        if ours.get(key) != theirs.get(key):
            raise ValueError(f"{where} was run with {key} = {theirs.get(key)!r}, this run has {ours.get(key)!r}; "
                             "a replay needs the recorded run's config")
    return {r + 1: replay_buffers(clients[r], buffers[r]) for r in range(len(clients))}
