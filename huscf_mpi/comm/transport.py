"""The MPI transport: non-blocking point-to-point messages into buffers sized once at set-up.

Roles talk to peers by ``(peer, Kind)``. Every ``(peer, kind)`` pair that a rank will send or
receive is *declared* once with its shape and dtype. A receive owns one contiguous NumPy
buffer per pair, reused by every message of that kind. A send reads straight from the
caller's array or tensor when it is C-contiguous and of the declared dtype (every tensor a
strategy sends is a fresh autograd output or gradient), so the hot path copies nothing on the
way out and the server, which sends to every client, holds no send buffers; anything else is
copied into a buffer allocated on first need. Either way the hot path posts ``Isend``/``Irecv``
on raw buffers and never pickles. The tag of a message is its kind's tag.

Device emulation lives here too: with a :class:`~huscf_mpi.cuts.emulation.Pacer` as
``pacer``, every protocol-plane message a rank sends or receives takes at least its link time
on the emulated device, whichever strategy sends it (report, evaluation and set-up messages
are the harness's and are not paced).

Waiting polls ``Testall`` with a short, growing sleep instead of spinning in ``Waitall``:
with more ranks than cores (normal on a laptop) a rank that busy-waits steals the core a
computing rank needs. ``poll_sleep_max=0`` gives plain blocking waits for dedicated cores
(a spinning ``Testall`` loop where ``on_poll`` is set: rank 0 must see stop signals while it waits).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from mpi4py import MPI

from ..cuts.emulation import NoPacer
from .kinds import Kind
from .ledger import Ledger


@dataclass
class _Slot:
    shape: tuple[int, ...]
    dtype: np.dtype
    buffer: np.ndarray | None = None  # receives: allocated at declare; sends: only if a copy is needed
    request: MPI.Request | None = None
    held: object = None               # what an in-flight send reads from, kept alive until it completes


@dataclass
class MPITransport:
    """Buffered point-to-point messaging over an MPI communicator.

    Attributes
    ----------
    comm : the communicator (rank 0 = server).
    ledger : every message sent and received, by kind, peer, shape and dtype.
    wait_seconds : wall seconds spent waiting for messages (communication + idle), cumulative.
    pacer : paces protocol-plane messages to an emulated link (``NoPacer``: real speed).
    on_poll : called before every test of a wait (None: nothing); may raise to end the wait.
        Rank 0 raises :class:`~huscf_mpi.stopping.Interrupted` or ``PeerCrashed`` from it.
    """

    comm: MPI.Comm = field(default_factory=lambda: MPI.COMM_WORLD)
    poll_sleep_max: float = 1e-3
    ledger: Ledger = field(default_factory=Ledger)
    wait_seconds: float = 0.0
    pacer: object = field(default_factory=NoPacer)
    on_poll: object = None

    def __post_init__(self):
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._send: dict[tuple[int, Kind], _Slot] = {}
        self._recv: dict[tuple[int, Kind], _Slot] = {}
        self._in_flight: dict[int, _Slot] = {}  # id → send slot posted and not yet seen complete

    # -- set-up ---------------------------------------------------------------------------
    def declare(self, peer: int, kind: Kind, shape: tuple[int, ...], dtype=np.float32,
                send: bool = True) -> None:
        """Agree the shape and dtype of messages of ``kind`` to (``send``) or from ``peer``.

        A receive allocates its buffer here; a send allocates nothing (see :meth:`isend`).
        """
        shape, dtype = tuple(shape), np.dtype(dtype)
        if send:
            self._send[(peer, kind)] = _Slot(shape, dtype)
        else:
            self._recv[(peer, kind)] = _Slot(shape, dtype, np.empty(shape, dtype=dtype))

    def forget(self, peer: int, kind: Kind) -> None:
        """Drop the declarations of ``kind`` with ``peer`` (both directions), after their last message.

        For peers that change from round to round (MD-GAN's swap partners), so buffers for
        past partners do not accumulate. Waits for an in-flight send of that pair first.
        """
        slot = self._send.pop((peer, kind), None)
        if slot is not None and slot.request is not None:
            self._wait([slot.request])
            self._in_flight.pop(id(slot), None)
        slot = self._recv.pop((peer, kind), None)
        if slot is not None and slot.request is not None:
            raise RuntimeError(f"rank {self.rank}: forget({peer}, {kind.name}) with a receive still posted")

    def declared_bytes(self) -> int:
        """Bytes of one message of every declared (peer, kind), sends and receives together."""
        return sum(int(np.prod(s.shape)) * s.dtype.itemsize for t in (self._send, self._recv) for s in t.values())

    # -- messages -------------------------------------------------------------------------
    def isend(self, peer: int, kind: Kind, data: np.ndarray | torch.Tensor) -> None:
        """Post a non-blocking send of ``data`` (shape as declared) to ``peer``.

        A C-contiguous array or tensor of the declared dtype is sent from its own memory: the
        caller must not modify it in place until this message completes (:meth:`flush`, or the
        next send of the same kind to the same peer, which waits for it). Other inputs are
        copied (``same_kind`` casting) into a buffer owned by the transport.

        Raises ``ValueError`` if the shape differs from the declared one (a protocol bug).
        """
        slot = self._send[(peer, kind)]
        if slot.request is not None:  # the previous message of this kind must be out first
            self._wait([slot.request])
            self._release(slot)
        src = data.detach().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        if src.shape != slot.shape:
            raise ValueError(f"rank {self.rank}: {kind.name} to {peer} has shape {src.shape}, declared {slot.shape}")
        if kind.plane == "protocol":
            self.pacer.transfer(src.nbytes)  # the emulated uplink, before the real send
        if src.dtype == slot.dtype and src.flags.c_contiguous:
            buf = src
        else:
            if slot.buffer is None:
                slot.buffer = np.empty(slot.shape, dtype=slot.dtype)
            np.copyto(slot.buffer, src, casting="same_kind")
            buf = slot.buffer
        slot.held = (data, buf)  # a tensor's storage must outlive the send that reads it
        slot.request = self.comm.Isend(buf, dest=peer, tag=int(kind))
        self._in_flight[id(slot)] = slot
        self.ledger.record("sent", kind, peer, buf)

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
            if kind.plane == "protocol":
                self.pacer.transfer(s.buffer.nbytes)  # the emulated downlink, after the real receive
            out[p] = s.buffer
        self._sweep()
        return out

    def recv(self, peer: int, kind: Kind) -> np.ndarray:
        return self.recv_many([peer], kind)[peer]

    def recv_tensor(self, peer: int, kind: Kind, requires_grad: bool = False) -> torch.Tensor:
        """Receive into the buffer and view it as a tensor (a leaf, if ``requires_grad``)."""
        return torch.from_numpy(self.recv(peer, kind)).requires_grad_(requires_grad)

    def flush(self) -> None:
        """Wait until every posted send has completed."""
        self._wait([s.request for s in self._in_flight.values() if s.request is not None])
        for s in self._in_flight.values():
            self._release(s)
        self._in_flight = {}

    @staticmethod
    def _release(slot: _Slot) -> None:
        slot.request, slot.held = None, None

    def _sweep(self) -> None:
        """Let go of the data of sends that have completed (one Testsome over those in flight)."""
        pending = [s for s in self._in_flight.values() if s.request is not None]
        if pending:
            for i in MPI.Request.Testsome([s.request for s in pending]) or []:
                self._release(pending[i])
        self._in_flight = {id(s): s for s in pending if s.request is not None}

    def _wait(self, requests: list) -> None:
        if not requests:
            return
        t0 = time.perf_counter()
        if self.poll_sleep_max <= 0 and self.on_poll is None:
            MPI.Request.Waitall(requests)
        else:
            # The sleep grows with the time already waited: a short wait is answered within
            # microseconds, a long one (a client waiting for the server's body pass) wakes its
            # core at most every poll_sleep_max and overshoots by at most ~1/32 of the wait.
            # With on_poll (rank 0: a stop signal, a crashed client) a busy wait spins here.
            while True:
                if self.on_poll is not None:
                    self.on_poll()
                if MPI.Request.Testall(requests):
                    break
                if self.poll_sleep_max > 0:
                    time.sleep(min(self.poll_sleep_max, max(2e-5, (time.perf_counter() - t0) / 32)))
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

    def scatter_rows(self, rows: np.ndarray | None, counts: list[int], dtype=np.int64) -> np.ndarray:
        """Rank 0 sends rank ``r`` the next ``counts[r]`` elements of ``rows`` (``MPI_Scatterv``).

        Parameters
        ----------
        rows : 1-D array on rank 0 (concatenated in rank order), ignored elsewhere.
        counts : elements per rank, ``len(counts) == size``, the same on every rank.

        Returns this rank's part, a new array of ``dtype`` and shape ``(counts[rank],)``.
        """
        self.barrier()
        out = np.empty(counts[self.rank], dtype=dtype)
        send = None
        if self.rank == 0:
            send = [np.ascontiguousarray(rows, dtype=dtype), list(counts)]  # displacements: running sums
        self.comm.Scatterv(send, out, root=0)
        return out
