"""The message ledger: every message a rank sent or received, aggregated by its signature."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .kinds import Kind


@dataclass
class Ledger:
    """Counts and bytes per (direction, kind, peer, shape, dtype).

    ``round_bytes`` holds bytes sent/received since the last :meth:`take_round` call, for the
    per-round, per-rank traffic figures of the result file.
    """

    entries: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    round_sent: int = 0
    round_received: int = 0

    def record(self, direction: str, kind: Kind, peer: int, array: np.ndarray) -> None:
        key = (direction, int(kind), int(peer), "x".join(map(str, array.shape)), str(array.dtype))
        entry = self.entries[key]
        entry[0] += 1
        entry[1] += array.nbytes
        if direction == "sent":
            self.round_sent += array.nbytes
        else:
            self.round_received += array.nbytes

    def take_round(self) -> tuple[int, int]:
        """Bytes (sent, received) since the previous call, then reset the round counters."""
        out = (self.round_sent, self.round_received)
        self.round_sent = self.round_received = 0
        return out

    def received_table(self) -> dict[str, list]:
        """What this rank received, as columns: kind, plane, source, shape, dtype, count, bytes."""
        cols: dict[str, list] = {k: [] for k in ("kind", "plane", "source", "shape", "dtype", "count", "bytes")}
        for (direction, kind, peer, shape, dtype), (count, nbytes) in sorted(self.entries.items()):
            if direction != "received":
                continue
            k = Kind(kind)
            for name, value in zip(cols, (k.label, k.plane, peer, shape, dtype, count, nbytes)):
                cols[name].append(value)
        return cols
