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

Arrival order (the foundation of the asynchronous modes, issue 10): :meth:`recv_first` keeps a
receive posted for every ``(peer, kind)`` it is asked about and returns whichever message
arrives first (the asynchronous server records what it served, so a run can be replayed:
``strategies/asynchronous.py``). Waits take an optional ``timeout`` and then raise
:class:`DeadlineExceeded` instead of waiting forever; :meth:`~MPITransport.cancel` and
:meth:`~MPITransport.close` withdraw receives that will not be answered (MPI requires every
posted receive to be matched or cancelled before ``MPI_Finalize``).

Left as it is, on purpose: a second :meth:`~MPITransport.isend` of a kind to a peer still
waits until the first has gone. Below MPICH's eager threshold an ``Isend`` completes at once;
above it, the first completes when the receiver has a receive posted, which ``recv_first``
keeps posted except while the caller consumes the buffer. A second in-flight send (double
send buffers) would not land any earlier, since the receiver holds one buffer per
``(peer, kind)``; it would need double receive buffers as well, and it would change when the
lock-step protocol's sends return, so it waits for a measured need.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from mpi4py import MPI

from ..cuts.emulation import NoPacer
from .kinds import Kind
from .ledger import Ledger


class DeadlineExceeded(TimeoutError):
    """A wait passed its deadline: no message of ``kind`` from the peers in ``missing``.

    Attributes
    ----------
    rank : the waiting rank.
    kind : the awaited :class:`~huscf_mpi.comm.kinds.Kind`.
    missing : the peers (sorted) whose message had not arrived.
    timeout : the timeout in seconds.

    The receives of the missing peers stay posted: a later wait can still pick their messages
    up, or :meth:`MPITransport.cancel` withdraws them.
    """

    def __init__(self, rank: int, kind: Kind, missing, timeout: float):
        self.rank, self.kind, self.missing, self.timeout = rank, kind, sorted(missing), timeout
        super().__init__(f"rank {rank}: no {kind.name} message from peer(s) {self.missing} "
                         f"within {timeout:g} s")


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
    wait_timeout : seconds :meth:`recv_many`, :meth:`recv` and :meth:`recv_first` wait when given no
        ``timeout`` before raising :class:`DeadlineExceeded` (None: for ever). Rank 0 sets it to
        ``training.client_timeout_s`` for training and lifts it with :meth:`untimed` for evaluations.
    """

    comm: MPI.Comm = field(default_factory=lambda: MPI.COMM_WORLD)
    poll_sleep_max: float = 1e-3
    ledger: Ledger = field(default_factory=Ledger)
    wait_seconds: float = 0.0
    pacer: object = field(default_factory=NoPacer)
    on_poll: object = None
    wait_timeout: float | None = None

    def __post_init__(self):
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._send: dict[tuple[int, Kind], _Slot] = {}
        self._recv: dict[tuple[int, Kind], _Slot] = {}
        self._in_flight: dict[int, _Slot] = {}  # id → send slot posted and not yet seen complete
        self._abandoned: list = []  # (request, data) of sends to lost peers, never waited for

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

    def recv_many(self, peers, kind: Kind, timeout: float | None = None) -> dict[int, np.ndarray]:
        """Wait for one message of ``kind`` from each peer; returns peer → buffer.

        The returned arrays are the transport's buffers: consume them before the next
        message of the same kind from the same peer is received.

        With ``timeout`` (seconds), raises :class:`DeadlineExceeded` naming the peers still
        missing once it has passed; the receives stay posted (a later call completes them,
        :meth:`cancel` withdraws them) and nothing is recorded. ``None``: :attr:`wait_timeout`.
        """
        peers = list(peers)
        for p in peers:
            self.post(p, kind)
        slots = [self._recv[(p, kind)] for p in peers]
        timeout = self.wait_timeout if timeout is None else timeout
        deadline = None if timeout is None else time.perf_counter() + timeout
        if not self._wait([s.request for s in slots], deadline):
            missing = [p for p, s in zip(peers, slots) if not s.request.Get_status()]
            if missing:
                raise DeadlineExceeded(self.rank, kind, missing, timeout)
            MPI.Request.Waitall([s.request for s in slots])  # all came in since the last test: free them
        out = {}
        for p, s in zip(peers, slots):
            out[p] = self._take(p, kind, s)
        self._sweep()
        return out

    def _take(self, peer: int, kind: Kind, slot: _Slot) -> np.ndarray:
        """Mark the completed receive of ``slot`` consumed: ledger, emulated downlink; its buffer."""
        slot.request = None
        self.ledger.record("received", kind, peer, slot.buffer)
        if kind.plane == "protocol":
            self.pacer.transfer(slot.buffer.nbytes)  # the emulated downlink, after the real receive
        return slot.buffer

    def recv_first(self, pairs, timeout: float | None = None) -> tuple[int, Kind, np.ndarray]:
        """Wait for the first message of any ``(peer, kind)`` of ``pairs``; returns ``(peer, kind, buffer)``.

        A receive is posted for every pair that has none (the one returned by the previous call
        is re-posted here, once its buffer has been consumed); the others stay posted, and a
        message that completed meanwhile is returned by a later call. When several messages
        are in, the earliest pair in ``pairs`` wins. Waiting polls ``Testany`` with the sleeps
        of the other waits (``Waitany`` when ``poll_sleep_max <= 0``, no timeout and no
        ``on_poll``). The message is counted in the ledger and paced like :meth:`recv_many`'s.

        The buffer is the transport's: consume it before the next wait for that pair (which
        re-posts the receive into it).

        Raises :class:`DeadlineExceeded` (naming every peer of ``pairs``) once ``timeout``
        seconds (None: :attr:`wait_timeout`) pass without a message, and ``ValueError`` if
        ``pairs`` is empty.
        """
        pairs = list(pairs)
        if not pairs:
            raise ValueError(f"rank {self.rank}: recv_first over no (peer, kind) pairs")
        for p, k in pairs:
            self.post(p, k)
        slots = [self._recv[pair] for pair in pairs]
        requests = [s.request for s in slots]
        timeout = self.wait_timeout if timeout is None else timeout
        deadline = None if timeout is None else time.perf_counter() + timeout
        if self.poll_sleep_max <= 0 and deadline is None and self.on_poll is None:
            t0 = time.perf_counter()
            index = MPI.Request.Waitany(requests)
            self.wait_seconds += time.perf_counter() - t0
        else:
            got = [MPI.UNDEFINED]  # Testany's index of the completed request

            def test() -> bool:
                got[0], done = MPI.Request.Testany(requests)
                return done

            if not self._poll(test, deadline):
                raise DeadlineExceeded(self.rank, pairs[0][1], {p for p, _ in pairs}, timeout)
            index = got[0]
        peer, kind = pairs[index]
        buffer = self._take(peer, kind, slots[index])
        self._sweep()
        return peer, kind, buffer

    @contextmanager
    def untimed(self):
        """Lift :attr:`wait_timeout` inside the block: for phases whose length has no bound
        known in advance (an evaluating client training a classifier on synthetic data)."""
        saved, self.wait_timeout = self.wait_timeout, None
        try:
            yield
        finally:
            self.wait_timeout = saved

    def cancel(self, peer: int, kind: Kind) -> np.ndarray | None:
        """Withdraw the posted receive of ``kind`` from ``peer`` (``MPI_Cancel``).

        Returns ``None`` if no receive was posted or it was cancelled. If the message had
        already arrived, the cancel fails by MPI's rules: the message is then consumed like a
        received one (ledger, pacing) and its buffer returned, so nothing is lost silently.
        """
        slot = self._recv.get((peer, kind))
        if slot is None or slot.request is None:
            return None
        slot.request.Cancel()
        status = MPI.Status()
        slot.request.Wait(status)  # a cancel completes locally, at once
        if status.Is_cancelled():
            slot.request = None
            return None
        return self._take(peer, kind, slot)

    def close(self) -> dict[tuple[int, Kind], np.ndarray]:
        """Cancel every posted receive, then wait for every posted send (:meth:`flush`).

        Call before ``MPI_Finalize`` when receives may still be posted (after a
        :class:`DeadlineExceeded`, or with pre-posted receives). Returns the messages that had
        arrived but were never consumed, by ``(peer, kind)``. A send to a peer that never
        receives it still blocks :meth:`flush` (not cancelled: MPI deprecates cancelling sends).
        """
        left = {}
        for (peer, kind), slot in list(self._recv.items()):
            if slot.request is not None:
                buf = self.cancel(peer, kind)
                if buf is not None:
                    left[(peer, kind)] = buf
        self.flush()
        return left

    def abandon(self, peer: int) -> None:
        """Give up on ``peer`` (a lost client): withdraw every receive posted for it and stop
        waiting for the sends to it still in flight.

        MPI cannot withdraw a send (cancelling sends is deprecated), so those stay posted and
        their data is kept alive here; :meth:`flush` and :meth:`close` no longer wait for them.
        Nothing is sent to or received from ``peer`` afterwards by a caller that knows it lost.
        """
        for (p, kind), slot in list(self._recv.items()):
            if p == peer and slot.request is not None:
                self.cancel(p, kind)
        for (p, _), slot in self._send.items():
            if p == peer and slot.request is not None:
                self._abandoned.append((slot.request, slot.held))
                self._in_flight.pop(id(slot), None)
                slot.request, slot.held = None, None

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

    def _wait(self, requests: list, deadline: float | None = None) -> bool:
        """Wait for all ``requests``; with ``deadline`` (a ``perf_counter`` time) give up then.

        Returns True when all completed, False when the deadline passed first (the requests
        are then left as they were).
        """
        if not requests:
            return True
        if self.poll_sleep_max <= 0 and self.on_poll is None and deadline is None:
            t0 = time.perf_counter()
            MPI.Request.Waitall(requests)
            self.wait_seconds += time.perf_counter() - t0
            return True
        return self._poll(lambda: MPI.Request.Testall(requests), deadline)

    def _poll(self, test, deadline: float | None) -> bool:
        """Call ``test()`` until it returns true (then True) or ``deadline`` passes (False).

        ``on_poll`` runs before every try. The sleep between tries grows with the time already
        waited: a short wait is answered within microseconds, a long one (a client waiting for
        the server's body pass) wakes its core at most every ``poll_sleep_max`` and overshoots
        by at most ~1/32 of the wait. With ``poll_sleep_max <= 0`` (and ``on_poll`` set: rank
        0 must see stop signals while it waits) it spins.
        """
        t0 = time.perf_counter()
        try:
            while True:
                if self.on_poll is not None:
                    self.on_poll()
                if test():
                    return True
                now = time.perf_counter()
                if deadline is not None and now >= deadline:
                    return False
                if self.poll_sleep_max > 0:
                    time.sleep(min(self.poll_sleep_max, max(2e-5, (now - t0) / 32)))
        finally:
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
