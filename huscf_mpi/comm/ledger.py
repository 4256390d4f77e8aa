"""The message ledger: every message a rank sent or received, aggregated by its signature,
and the "who saw what" table derived from all ranks' ledgers (issue 12, point 6)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .kinds import Kind, by_tag

LEDGER_COLUMNS = ("receiver", "kind", "plane", "payload", "source", "shape", "dtype", "count", "bytes")
EXPOSURE_COLUMNS = ("payload", "plane", "sender", "receiver", "messages", "bytes")


@dataclass
class Ledger:
    """Counts and bytes per (direction, kind tag, peer, shape, dtype).

    ``round_sent``/``round_received`` hold bytes since the last :meth:`take_round` call, for
    the per-round, per-rank traffic figures of the result file.
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

    def received_rows(self, receiver: int) -> list[tuple]:
        """What this rank received: one tuple per signature, in :data:`LEDGER_COLUMNS` order."""
        rows = []
        for (direction, tag, peer, shape, dtype), (count, nbytes) in sorted(self.entries.items()):
            if direction == "received":
                k = by_tag(tag)
                rows.append((receiver, k.name, k.plane, k.payload, peer, shape, dtype, count, nbytes))
        return rows


def ledger_table(rows: list[tuple]) -> dict[str, list]:
    """Rows of :meth:`Ledger.received_rows` (any ranks) as columns named :data:`LEDGER_COLUMNS`."""
    return {name: [r[i] for r in rows] for i, name in enumerate(LEDGER_COLUMNS)}


def exposure_table(rows: list[tuple], server: int = 0) -> dict[str, list]:
    """Who saw what: messages and bytes per (payload, plane, sender role, receiver role).

    ``rows`` are ledger rows of every rank (:meth:`Ledger.received_rows`); a role is
    ``"server"`` for rank ``server`` and ``"client"`` otherwise. Returns columns named
    :data:`EXPOSURE_COLUMNS`, sorted by payload class (the order of ``kinds.PAYLOADS``), plane,
    sender and receiver. A payload class absent from the table never left its owner.
    """
    from .kinds import PAYLOADS, PLANES

    role = {True: "server", False: "client"}
    acc: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for receiver, _, plane, payload, source, _, _, count, nbytes in rows:
        entry = acc[(payload, plane, role[source == server], role[receiver == server])]
        entry[0] += int(count)
        entry[1] += int(nbytes)
    keys = sorted(acc, key=lambda k: (PAYLOADS.index(k[0]), PLANES.index(k[1]), k[2], k[3]))
    return {"payload": [k[0] for k in keys], "plane": [k[1] for k in keys], "sender": [k[2] for k in keys],
            "receiver": [k[3] for k in keys], "messages": [acc[k][0] for k in keys],
            "bytes": [acc[k][1] for k in keys]}


def exposure_set(table: dict[str, list], planes=("protocol", "evaluation")) -> set[tuple[str, str, str]]:
    """``{(payload, sender, receiver)}`` of an exposure table over ``planes`` (for tests and docs)."""
    return {(p, s, r) for p, pl, s, r in zip(table["payload"], table["plane"], table["sender"], table["receiver"])
            if pl in planes}
