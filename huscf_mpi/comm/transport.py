"""The MPI transport: non-blocking point-to-point messages into buffers sized once at set-up.

Roles talk to peers by ``(peer, Kind)``. Every ``(peer, kind)`` pair that a rank will send or
receive is *declared* once with its shape and dtype; the transport then owns one contiguous
NumPy buffer per pair and every message of that kind reuses it, so the hot path posts
``Isend``/``Irecv`` on raw buffers and never pickles. The tag of a message is its kind.

Waiting polls ``Testall`` with a short, growing sleep instead of spinning in ``Waitall``:
with more ranks than cores (normal on a laptop) a rank that busy-waits steals the core a
computing rank needs. ``poll_sleep_max=0`` gives plain blocking waits for dedicated cores.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from mpi4py import MPI

from .kinds import Kind
from .ledger import Ledger


@dataclass
class _Slot:
    buffer: np.ndarray
    request: MPI.Request | None = None


@dataclass
class MPITransport:
    """Buffered point-to-point messaging over an MPI communicator.

    Attributes
    ----------
    comm : the communicator (rank 0 = server).
    ledger : every message sent and received, by kind, peer, shape and dtype.
    wait_seconds : wall seconds spent waiting for messages (communication + idle), cumulative.
    """

    comm: MPI.Comm = field(default_factory=lambda: MPI.COMM_WORLD)
    poll_sleep_max: float = 1e-3
    ledger: Ledger = field(default_factory=Ledger)
    wait_seconds: float = 0.0

    def __post_init__(self):
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._send: dict[tuple[int, Kind], _Slot] = {}
        self._recv: dict[tuple[int, Kind], _Slot] = {}

    # -- set-up ---------------------------------------------------------------------------
    def declare(self, peer: int, kind: Kind, shape: tuple[int, ...], dtype=np.float32,
                send: bool = True) -> None:
        """Allocate the buffer for messages of ``kind`` to (``send``) or from ``peer``."""
        table = self._send if send else self._recv
        table[(peer, kind)] = _Slot(np.empty(shape, dtype=dtype))

    # -- messages -------------------------------------------------------------------------
    def isend(self, peer: int, kind: Kind, data: np.ndarray | torch.Tensor) -> None:
        """Copy ``data`` into the declared buffer and post a non-blocking send.

        Raises ``ValueError`` if the shape differs from the declared one (a protocol bug).
        """
        slot = self._send[(peer, kind)]
        if slot.request is not None:  # the previous message of this kind still owns the buffer
            self._wait([slot.request])
        src = data.detach().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        if src.shape != slot.buffer.shape:
            raise ValueError(f"rank {self.rank}: {kind.name} to {peer} has shape {src.shape}, declared {slot.buffer.shape}")
        np.copyto(slot.buffer, src, casting="same_kind")
        slot.request = self.comm.Isend(slot.buffer, dest=peer, tag=int(kind))
        self.ledger.record("sent", kind, peer, slot.buffer)

    def post(self, peer: int, kind: Kind) -> None:
        """Post the receive for the next message of ``kind`` from ``peer`` (idempotent)."""
        slot = self._recv[(peer, kind)]
        if slot.request is None:
            slot.request = self.comm.Irecv(slot.buffer, source=peer, tag=int(kind))

    def recv_many(self, peers, kind: Kind) -> dict[int, np.ndarray]:
        """Wait for one message of ``kind`` from each peer; returns peer → buffer.

        The returned arrays are the transport's buffers: consume them before the next
        message of the same kind from the same peer is received.
        """
        peers = list(peers)
        for p in peers:
            self.post(p, kind)
        slots = [self._recv[(p, kind)] for p in peers]
        self._wait([s.request for s in slots])
        out = {}
        for p, s in zip(peers, slots):
            s.request = None
            self.ledger.record("received", kind, p, s.buffer)
            out[p] = s.buffer
        return out

    def recv(self, peer: int, kind: Kind) -> np.ndarray:
        return self.recv_many([peer], kind)[peer]

    def recv_tensor(self, peer: int, kind: Kind, requires_grad: bool = False) -> torch.Tensor:
        """Receive into the buffer and view it as a tensor (a leaf, if ``requires_grad``)."""
        return torch.from_numpy(self.recv(peer, kind)).requires_grad_(requires_grad)

    def flush(self) -> None:
        """Wait until every posted send has completed."""
        pending = [s.request for s in self._send.values() if s.request is not None]
        self._wait(pending)
        for s in self._send.values():
            s.request = None

    def _wait(self, requests: list) -> None:
        if not requests:
            return
        t0 = time.perf_counter()
        if self.poll_sleep_max <= 0:
            MPI.Request.Waitall(requests)
        else:
            delay = 0.0
            while not MPI.Request.Testall(requests):
                if delay:
                    time.sleep(delay)
                delay = min(self.poll_sleep_max, delay * 2 or 2e-5)
        self.wait_seconds += time.perf_counter() - t0

    # -- collectives used at set-up and shutdown only ---------------------------------------
    # Each first meets the other ranks at a polled Ibarrier: a rank that arrives early (while
    # another trains a classifier, say) then sleeps instead of spinning inside a blocking
    # collective on a core the busy rank needs. The pickled collective itself is then quick.
    def barrier(self) -> None:
        self.flush()
        self._wait([self.comm.Ibarrier()])

    def allgather(self, obj):
        self.barrier()
        return self.comm.allgather(obj)

    def gather(self, obj):
        self.barrier()
        return self.comm.gather(obj, root=0)

    def bcast(self, obj):
        self.barrier()
        return self.comm.bcast(obj, root=0)
