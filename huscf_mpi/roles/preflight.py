"""The memory pre-flight check: stop a run that cannot fit before it trains (issue 7).

At the last set-up agreement every rank has imported torch, loaded its data and built its
model parts, optimizers and message buffers, so most of its memory is already taken and
the node's ``MemAvailable`` already excludes it. What is left to come is the training
iteration's working set. It is modelled per rank from what the rank has declared to the
transport (the bytes of every message kind it sends or receives per iteration, which the
strategy sized at set-up) as

    growth = GROWTH_FIXED_BYTES (+ GROWTH_SERVER_BYTES on rank 0)
             + GROWTH_PER_MESSAGE_BYTE * declared message bytes

(activations, gradients and Adam moments scale with the smashed data the rank exchanges;
receive buffers are allocated at declaration, so they are already held). The constants were
fitted on this project's machine to the growth from the check to the end of the last round
(``/preflight_ranks`` against ``rounds/private_dirty_bytes``, width 0.25 at 8 and 64 clients,
width 1.0 at 4 and 8; benchmarks/README.md), rounded up. Per
host, the sum of its ranks' growth must stay within ``preflight.memory_fraction`` of the
smallest ``MemAvailable`` its ranks read; otherwise ``check`` stops every rank with one
line and ``warn`` logs it. Hosts whose ranks outnumber their cores get a warning.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from ..errors import SetupError
from .reports import private_dirty_bytes

log = logging.getLogger("huscf_mpi")

GROWTH_FIXED_BYTES = 16 * 2**20
GROWTH_SERVER_BYTES = 256 * 2**20  # rank 0 only: its threads' scratch memory
GROWTH_PER_MESSAGE_BYTE = 1.0


@dataclass(frozen=True)
class RankMemory:
    """What one rank reports at the pre-flight agreement (bytes; ``cores`` = its affinity)."""

    rank: int
    host: str
    private_bytes: int
    message_bytes: int
    available_bytes: int
    cores: int

    @property
    def growth_bytes(self) -> float:
        fixed = GROWTH_FIXED_BYTES + (GROWTH_SERVER_BYTES if self.rank == 0 else 0)
        return fixed + GROWTH_PER_MESSAGE_BYTE * self.message_bytes


def mem_available_bytes() -> int:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes; -1 where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def measure(rank: int, message_bytes: int) -> RankMemory:
    """This rank's figures now; ``message_bytes`` from ``MPITransport.declared_bytes()``."""
    return RankMemory(rank, socket.gethostname(), private_dirty_bytes(), int(message_bytes), mem_available_bytes(),
                      len(os.sched_getaffinity(0)))


def plan(ranks: list[RankMemory], fraction: float) -> dict[str, dict]:
    """Per host: ranks, cores, bytes held now, growth expected, bytes available, and ``fits``.

    A host with an unknown ``MemAvailable`` (-1) is reported with ``fits`` True.
    """
    hosts: dict[str, dict] = {}
    for r in ranks:
        h = hosts.setdefault(r.host, {"ranks": 0, "cores": r.cores, "held_bytes": 0, "growth_bytes": 0.0,
                                      "available_bytes": r.available_bytes})
        h["ranks"] += 1
        h["cores"] = max(h["cores"], r.cores)
        h["held_bytes"] += max(r.private_bytes, 0)
        h["growth_bytes"] += r.growth_bytes
        h["available_bytes"] = min(h["available_bytes"], r.available_bytes)
    for h in hosts.values():
        h["fits"] = h["available_bytes"] < 0 or h["growth_bytes"] <= fraction * h["available_bytes"]
    return hosts


def _gib(b: float) -> str:
    return f"{b / 2**30:.1f} GiB"


def check(transport, error: str | None, message_bytes: int, mode: str, fraction: float
          ) -> tuple[dict[str, dict], list[RankMemory]]:
    """Collective: agree on set-up errors and on memory; returns the per-host plan and every
    rank's figures (in rank order).

    Raises
    ------
    SetupError
        On every rank: the first rank's set-up error, or (mode ``check``) the first host
        whose expected growth exceeds ``fraction`` of its available memory, as one line.
    """
    gathered = transport.allgather((error, measure(transport.rank, message_bytes)))
    first = next((e for e, _ in gathered if e), None)
    if first:
        raise SetupError(first)
    ranks = [m for _, m in gathered]
    hosts = plan(ranks, fraction)
    if transport.rank == 0:
        for name, h in hosts.items():
            if h["ranks"] > h["cores"]:
                log.warning("host %s runs %d ranks on %d cores: ranks take turns on the cores, so client phases "
                            "run up to %.0fx slower than with a core each", name, h["ranks"], h["cores"],
                            h["ranks"] / h["cores"])
    if mode == "off":
        return hosts, ranks
    for name, h in hosts.items():
        if not h["fits"]:
            line = (f"host {name}: training needs about {_gib(h['growth_bytes'])} more for {h['ranks']} ranks "
                    f"(which hold {_gib(h['held_bytes'])} already), {_gib(h['available_bytes'])} available: "
                    f"lower model.width or the number of clients, or spread the ranks over more nodes "
                    f"(preflight.memory: warn runs anyway)")
            if mode == "check":
                raise SetupError(line)
            if transport.rank == 0:
                log.warning("%s", line)
    return hosts, ranks
