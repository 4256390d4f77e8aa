"""Read the buffers of an asynchronous run back, to replay it (``huscf-mpi train --replay FILE``, issue 10).

An asynchronous server records, per round, which client iterations it served in which
buffer (``rounds/served_client``, ``rounds/served_buffer``, int32 (R, N·I)) and the order
in which the buffers' phases ran (``rounds/served_events``, int32 (R, 6·N·I)). A run fed
those serves the same buffers in the same order whatever the order its messages arrive in,
so its per-round losses, scores and final metrics equal the recorded run's bit for bit.
"""
from __future__ import annotations

import numpy as np
import yaml

from ..config import differences
from .reader import ResultFile

# Fields that may differ between a run and its replay: they name the output or its checkpoints, not the computation.
IGNORED = ("name", "output", "training.replay", "training.checkpoint_every")


def replay_round(served_client, served_buffer, served_events):
    """One recorded round as a :class:`~huscf_mpi.strategies.asynchronous.Replay`: the members of
    each buffer (by id, from the completed client iterations) and the phase events in order
    (``-1`` padding dropped)."""
    from ..strategies.asynchronous import Replay

    members: dict[int, list[int]] = {}
    for c, b in zip(np.asarray(served_client).tolist(), np.asarray(served_buffer).tolist()):
        if c >= 0:
            members.setdefault(int(b), []).append(int(c))
    if sorted(members) != list(range(len(members))):
        raise ValueError("a buffer of the recorded round never completed (a lost client?): it cannot be replayed")
    events = [int(e) for e in np.asarray(served_events).tolist() if e >= 0]
    return Replay([sorted(members[b]) for b in range(len(members))], events)


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
            names = ("rounds/served_client", "rounds/served_buffer", "rounds/served_events")
            if not set(names) <= {f"rounds/{k}" for k in r.keys("rounds")}:
                raise ValueError(f"{where} holds no recorded buffers: only buffered and sequential runs can be "
                                 "replayed")
            clients, buffers, events = (r.array(name) for name in names)
    except (OSError, KeyError) as e:
        raise ValueError(f"{where} is not a readable huscf-mpi result file ({e})") from None
    for key, have, had in differences(config, recorded, IGNORED)[:1]:
        raise ValueError(f"{where} was run with {key} = {had!r}, this run has {have!r}; "
                         "a replay needs the recorded run's config")
    try:
        return {r + 1: replay_round(clients[r], buffers[r], events[r]) for r in range(len(clients))}
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
