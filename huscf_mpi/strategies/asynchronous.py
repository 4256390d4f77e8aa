"""Asynchronous serving of a split-learning round: buffered and sequential modes (issue 10).

In synchronous mode (SPEC §1) every message kind of an iteration is a barrier over all
clients, so the federation moves at the pace of its slowest device. Here the server serves
*buffers*: the first ``K`` clients whose next iteration is ready (``training.buffer``; 1 in
``sequential`` mode, SplitFed v2-style), or whoever has arrived ``training.deadline_ms`` after
the buffer's first arrival. A buffer runs one iteration of the lock-step protocol among its
members: the server body runs on the concatenation of their smashed data (client-id order),
sends results back to them, accumulates the body's gradients and steps its optimizers when
the buffer's backward passes are all in. A client that is not in the buffer keeps computing
or waits for the server, never for another client's reply; a client that misses a deadline
joins a later buffer.

**One buffer in flight.** PyTorch forbids stepping a module between a forward pass through it
and that pass's backward. The generator body's forward is a client's first server step and
its backward the last, so a second buffer could start only if the body did not step until
both were done; the server therefore finishes one buffer before it opens the next (and
never recomputes a forward to avoid that).

**Round end.** A round is ``N × iterations_per_round`` client iterations, N the clients live
at its start: the work of a synchronous round. Every client's first iteration of a round is granted at the round's
start; when a client's iteration ends the server grants it another while grants remain,
else tells it to federate (message kind ``iteration_grant``: int64 1 = train on, 0 =
federate). So every live client does at least one iteration per round, fast clients do more,
and with ``K = N`` every buffer holds every client and the round is exactly synchronous
(bit for bit: same order of concatenation, same steps, same random draws).

**Staleness.** A client's staleness at a round's federation is the number of server steps
(buffers) served after its last iteration of the round; its federation weight is its sample
count times ``training.staleness`` of that (FedAsync; :mod:`huscf_mpi.federation.staleness`),
before the KLD weighting of SPEC §3. ``constant`` keeps the paper's weights.

**Lost clients.** A client silent for ``training.client_timeout_s`` (a frozen process, a
lost node) is declared lost: its outstanding grant returns to the round, it leaves buffers,
federation and reports, and its loss is recorded (``rounds/live``, ``rounds/lost_seconds``).
The run goes on while at least ``training.min_clients`` are live and otherwise fails. A lost
rank never reaches the job's final collectives, so a run that lost one ends by
``MPI_Abort(0)`` once its result file is complete. A *killed* rank cannot be survived with
this project's MPICH (pip wheel, Hydra): even with ``mpiexec -disable-auto-cleanup`` the
launcher signals the survivors (SIGUSR1) and ends the job, so fault tolerance covers
stopped and unreachable clients, not dead processes (that needs ULFM-style MPI support).

**Why a mode of HuSCF-GAN and not a strategy of its own:** the algorithm is unchanged (same
split models, messages, federation); only the order in which the server serves them changes,
and ``K = N`` must reproduce the synchronous run, so results of both modes stay comparable in
one strategy's rows. The schedule below knows nothing of models; it is the part another
split strategy would reuse.

**Replay.** Each round's buffers (which clients, in which order) are recorded; a run given
them (:attr:`RoundSchedule.replay`) forms the same buffers whatever the arrival order, so an
asynchronous run can be repeated bit for bit (``huscf-mpi train --replay FILE``).

Deviation from issue 10: BatchNorm in the body sees a buffer's clients only (one client in
sequential mode); no other norm is offered yet.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..comm import DeadlineExceeded, kind

GRANT = kind("iteration_grant", 62, "protocol", "control")  # int64 (1,): 1 = train on, 0 = federate
TRAIN_ON, FEDERATE = 1, 0


def buffer_size(mode: str, buffer: int | None, n_clients: int) -> int:
    """K, the clients per buffer: N in sync mode, 1 in sequential mode, ``buffer`` (default
    ⌈N/2⌉) in buffered mode."""
    if mode == "sync":
        return n_clients
    if mode == "sequential":
        return 1
    return buffer if buffer is not None else math.ceil(n_clients / 2)


@dataclass
class RoundSchedule:
    """The bookkeeping of one asynchronous round: grants, buffers served, staleness. Pure (no MPI).

    Parameters
    ----------
    clients : the live client ids, ascending.
    iterations : iterations per client of a synchronous round (``iterations_per_round``).
    replay : the buffers to serve, in order (lists of client ids), from a recorded run; None
        for live arrivals.

    Attributes
    ----------
    budget : client iterations of the round, ``len(clients) * iterations``.
    granted : iterations granted so far (every client's first at the start).
    waiting : clients granted an iteration not yet served (the peers to receive from).
    served : ``(client, buffer index)`` of every client iteration served, in order.
    """

    clients: list[int]
    iterations: int
    replay: list[list[int]] | None = None
    budget: int = 0
    granted: int = 0
    waiting: set[int] = field(default_factory=set)
    served: list[tuple[int, int]] = field(default_factory=list)
    buffers: int = 0

    def __post_init__(self):
        self.budget = len(self.clients) * self.iterations
        self.granted = len(self.clients)
        self.waiting = set(self.clients)

    @property
    def done(self) -> bool:
        """Whether every iteration of the round has been served (or nobody is left to serve)."""
        return len(self.served) >= self.budget or not self.waiting

    def lose(self, client: int) -> None:
        """``client`` is lost: its outstanding grant (if any) goes back to the round's budget."""
        if client in self.waiting:
            self.waiting.discard(client)
            self.granted -= 1

    def next_replayed(self) -> list[int] | None:
        """The recorded buffer to serve next (None when not replaying)."""
        if self.replay is None:
            return None
        if self.buffers >= len(self.replay):
            raise RuntimeError(f"replay: the recorded round has {len(self.replay)} buffers, this one needs more")
        return list(self.replay[self.buffers])

    def serve(self, group) -> dict[int, int]:
        """Record that the buffer ``group`` has been served; returns each member's grant.

        Members are taken in ascending id order: while grants remain each gets
        :data:`TRAIN_ON` (and waits again), then :data:`FEDERATE`. Raises ``ValueError`` if a
        member had no grant outstanding (a protocol bug).
        """
        group = sorted(group)
        stray = [c for c in group if c not in self.waiting]
        if stray:
            raise ValueError(f"clients {stray} were served without an outstanding grant")
        out = {}
        for c in group:
            self.waiting.discard(c)
            self.served.append((c, self.buffers))
            if self.granted < self.budget:
                self.granted += 1
                self.waiting.add(c)
                out[c] = TRAIN_ON
            else:
                out[c] = FEDERATE
        self.buffers += 1
        return out

    def iterations_done(self) -> np.ndarray:
        """Client iterations served this round, per client (``clients`` order), int64."""
        counts = {c: 0 for c in self.clients}
        for c, _ in self.served:
            counts[c] += 1
        return np.array([counts[c] for c in self.clients], dtype=np.int64)

    def staleness(self) -> np.ndarray:
        """Per client (``clients`` order): buffers served after its last iteration, int64.

        A client never served this round (impossible while every client's first iteration is
        granted) would count every buffer."""
        last = {c: -1 for c in self.clients}
        for c, b in self.served:
            last[c] = b
        return np.array([self.buffers - 1 - last[c] for c in self.clients], dtype=np.int64)

    def buffer_histogram(self, n: int | None = None) -> np.ndarray:
        """``h[k-1]`` = buffers of ``k`` clients this round, k = 1..n (default ``len(clients)``), int64."""
        n = len(self.clients) if n is None else n
        sizes = np.bincount([b for _, b in self.served], minlength=self.buffers)
        return np.bincount(sizes, minlength=n + 1)[1:n + 1].astype(np.int64)

    def record(self) -> tuple[np.ndarray, np.ndarray]:
        """``(served_client, served_buffer)``, int32 (budget,): the round's buffers for replay."""
        arr = np.array(self.served, dtype=np.int32).reshape(-1, 2)
        return arr[:, 0].copy(), arr[:, 1].copy()


def gather_buffer(transport, schedule: RoundSchedule, smashed_kind, k: int, deadline_ms: float | None
                  ) -> dict[int, np.ndarray]:
    """Receive the next buffer's first message (``smashed_kind``) from up to ``k`` waiting clients.

    Live: in arrival order (``transport.recv_any``), the first waits up to the transport's
    ``wait_timeout``; the buffer closes at ``k`` arrivals, when every waiting client has
    arrived, or ``deadline_ms`` after the first arrival (with whoever is in by then).
    Replayed: exactly the recorded clients. Returns client → the transport's buffer (consume
    before that client's next message of the kind). Raises
    :class:`~huscf_mpi.comm.DeadlineExceeded` if nobody arrives within ``wait_timeout``.
    """
    replayed = schedule.next_replayed()
    if replayed is not None:
        return transport.recv_many(replayed, smashed_kind)
    got: dict[int, np.ndarray] = {}
    peer, buf = transport.recv_any(sorted(schedule.waiting), smashed_kind)  # DeadlineExceeded: all silent
    got[peer] = buf
    closes = None if deadline_ms is None else time.perf_counter() + deadline_ms / 1000
    while len(got) < k and len(got) < len(schedule.waiting):
        left = sorted(schedule.waiting - set(got))
        try:
            timeout = None if closes is None else max(0.0, closes - time.perf_counter())
            peer, buf = transport.recv_any(left, smashed_kind, timeout=timeout)
        except DeadlineExceeded:
            break  # the buffer closes with whoever is in; the others' receives stay posted
        got[peer] = buf
    return got


def serve_round(server, step, k: int, deadline_ms: float | None, replay=None) -> RoundSchedule:
    """Serve one asynchronous round with ``server`` (a split strategy's server side).

    ``server`` provides ``clients``, ``lost``, ``t`` (the transport), ``SMASHED`` (the kind that
    opens a client's iteration), ``iterate(group, first)``, one lock-step iteration of the
    clients ``group`` (a list it removes members from as they are lost) whose opening messages
    ``first`` (client → buffer) are already in, and ``lose(clients, why)``.
    ``step(iterations)`` is the engine's per-step callback. Returns the round's schedule.
    """
    live = [c for c in server.clients if c not in server.lost]
    schedule = RoundSchedule(live, server.info.iterations_per_round, replay)
    n = len(live)
    while not schedule.done:
        try:
            first = gather_buffer(server.t, schedule, server.SMASHED, k, deadline_ms)
        except DeadlineExceeded as e:  # every waiting client silent for client_timeout_s
            server.lose(e.missing, e)
            for c in e.missing:
                schedule.lose(c)
            continue
        group = sorted(first)
        server.iterate(group, first)  # drops (and loses) members that go silent meanwhile
        for c in set(first) - set(group):
            schedule.lose(c)
        for c, grant in schedule.serve(group).items():
            server.t.isend(c, GRANT, np.array([grant], dtype=np.int64))
        step(len(group) / max(n, 1))
    return schedule
