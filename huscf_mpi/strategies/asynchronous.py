"""Asynchronous serving of a split-learning round: buffered and sequential modes (issue 10).

In synchronous mode (SPEC §1) every message kind of an iteration is a barrier over all
clients, so the federation moves at the pace of its slowest device. Here the server serves
*buffers*: the first ``K`` clients whose next iteration is ready (``training.buffer``; 1 in
``sequential`` mode, SplitFed v2-style), or whoever has arrived ``training.deadline_ms`` after
the buffer's first arrival, or every client that can still come. A buffer runs one iteration
of the split protocol among its members: the server body runs on the concatenation of their
smashed data (client-id order), sends results back to them, and steps its optimizers when
the buffer's backward passes are all in.

**Many buffers in flight.** The server is an event loop over every message it expects
(:meth:`~huscf_mpi.comm.MPITransport.recv_first`): each buffer advances through the
strategy's *phases* (HuSCF-GAN: G forward, D forward, D backward and step, D forward in the
G step, its backward, G backward and step) as soon as its own members' messages of the phase
are in, whatever other buffers are doing. So a fast client starts its next iteration as soon
as its own replies are in, and never waits for a client outside its buffer. PyTorch forbids
stepping a module between a forward pass through it and that pass's backward; instead of
recomputing, each buffer's forward runs on a *snapshot* of the body's parameters (weight
stashing, as in PipeDream): its backward gives gradients on that snapshot, which are applied
to the live parameters by the optimizer step. Another buffer's step in between makes them
stale by that many steps, the asynchronous trade-off; BatchNorm statistics are the live ones.

**Round end.** A round is ``N × iterations_per_round`` client iterations, N the clients live
at its start: the work of a synchronous round. Every client's first iteration of a round is
granted at the round's start; when a client's iteration ends the server grants it another
while grants remain, else tells it to federate (message kind ``iteration_grant``: int64 1 =
train on, 0 = federate). So every live client does at least one iteration per round and fast
clients do more. With ``K = N`` every buffer holds every client, one is in flight at a time,
and the round is exactly synchronous (bit for bit: the same order of concatenation, the same
steps, the same random draws; the synchronous mode runs the same phases in lock-step).

**Staleness.** A client's staleness at a round's federation is the number of buffers
completed after its last iteration of the round; its federation weight is its sample count
times ``training.staleness`` of that (FedAsync; :mod:`huscf_mpi.federation.staleness`),
before the KLD weighting of SPEC §3. ``constant`` keeps the paper's weights.

**Lost clients.** A client that owes the server a message for longer than
``training.client_timeout_s`` (a frozen process, a lost node) is declared lost: its
outstanding grant returns to the round, it leaves its buffer, federation and reports, and its
loss is recorded (``rounds/live``, ``rounds/lost_seconds``). The run goes on while at least
``training.min_clients`` are live and otherwise fails. A lost rank never reaches the job's
final collectives, so a run that lost one ends by ``MPI_Abort(0)`` once its result file is
complete. A *killed* rank cannot be survived with this project's MPICH (pip wheel, Hydra):
even with ``mpiexec -disable-auto-cleanup`` the launcher signals the survivors (SIGUSR1) and
ends the job, so fault tolerance covers stopped and unreachable clients, not dead processes
(that needs ULFM-style MPI support).

**Why a mode of HuSCF-GAN and not a strategy of its own:** the algorithm is unchanged (same
split models, messages, federation); only the order in which the server serves them changes,
and ``K = N`` must reproduce the synchronous run, so results of both modes stay comparable in
one strategy's rows. The loop below knows nothing of models: a split strategy provides its
phases and reuses it.

**Replay.** Each round's buffers (members) and the order in which their phases ran are
recorded; a run given them serves the same buffers and runs the same phases in the same
order whatever the arrival order, so an asynchronous run can be repeated bit for bit
(``huscf-mpi train --replay FILE``; runs that lost clients are not replayable).

BatchNorm in the body sees a buffer's clients only (one client in sequential mode), so with
SPEC §2's model the asynchronous modes change what the body computes, not only when;
``model.body_norm: group`` (or ``layer``, ``none``; :mod:`huscf_mpi.models.norms`) normalises
each sample alone, so a block computes the same in every mode. What each does to quality:
benchmarks/README.md, "Asynchronous modes".
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..comm import DeadlineExceeded, kind

GRANT = kind("iteration_grant", 62, "protocol", "control")  # int64 (1,): 1 = train on, 0 = federate
TRAIN_ON, FEDERATE = 1, 0
PHASE_BITS = 8  # an event is buffer * PHASE_BITS + phase (rounds/served_events)


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
    """The bookkeeping of one asynchronous round: grants, buffers, events, staleness. Pure (no MPI).

    Parameters
    ----------
    clients : the live client ids, ascending.
    iterations : iterations per client of a synchronous round (``iterations_per_round``).

    Attributes
    ----------
    budget : client iterations of the round, ``len(clients) * iterations``.
    granted : iterations granted so far (every client's first at the start).
    waiting : clients granted an iteration not yet completed.
    members : buffer id → its clients (ascending), in opening order (ids 0, 1, ...).
    served : ``(client, buffer id)`` of every client iteration completed, in completion order.
    completed : buffer ids in completion order.
    events : ``buffer id * PHASE_BITS + phase`` of every phase run, in order.
    """

    clients: list[int]
    iterations: int
    budget: int = 0
    granted: int = 0
    waiting: set[int] = field(default_factory=set)
    members: list[list[int]] = field(default_factory=list)
    served: list[tuple[int, int]] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.budget = len(self.clients) * self.iterations
        self.granted = len(self.clients)
        self.waiting = set(self.clients)

    @property
    def done(self) -> bool:
        """Whether every iteration of the round has been served (or nobody is left to serve)."""
        return len(self.served) >= self.budget or not self.waiting

    @property
    def buffers(self) -> int:
        """Buffers completed so far."""
        return len(self.completed)

    def open(self, group) -> int:
        """Record a new buffer of the clients ``group``; returns its id."""
        self.members.append(sorted(group))
        return len(self.members) - 1

    def ran(self, buffer: int, phase: int) -> None:
        """Record that ``phase`` of ``buffer`` ran."""
        self.events.append(buffer * PHASE_BITS + phase)

    def lose(self, client: int) -> None:
        """``client`` is lost: its outstanding grant (if any) goes back to the round's budget."""
        if client in self.waiting:
            self.waiting.discard(client)
            self.granted -= 1

    def serve(self, group, buffer: int = -1) -> dict[int, int]:
        """Record that buffer ``buffer`` (default: a new one) completed for ``group``; returns each member's grant.

        Members are taken in ascending id order: while grants remain each gets
        :data:`TRAIN_ON` (and waits again), then :data:`FEDERATE`. Raises ``ValueError`` if a
        member had no grant outstanding (a protocol bug).
        """
        group = sorted(group)
        stray = [c for c in group if c not in self.waiting]
        if stray:
            raise ValueError(f"clients {stray} were served without an outstanding grant")
        if buffer < 0:
            buffer = self.open(group)
        out = {}
        for c in group:
            self.waiting.discard(c)
            self.served.append((c, buffer))
            if self.granted < self.budget:
                self.granted += 1
                self.waiting.add(c)
                out[c] = TRAIN_ON
            else:
                out[c] = FEDERATE
        self.completed.append(buffer)
        return out

    def iterations_done(self) -> np.ndarray:
        """Client iterations completed this round, per client (``clients`` order), int64."""
        counts = {c: 0 for c in self.clients}
        for c, _ in self.served:
            counts[c] += 1
        return np.array([counts[c] for c in self.clients], dtype=np.int64)

    def staleness(self) -> np.ndarray:
        """Per client (``clients`` order): buffers completed after its last iteration, int64.

        A client never served this round (impossible while every client's first iteration is
        granted) would count every buffer."""
        position = {b: i for i, b in enumerate(self.completed)}
        last = {c: -1 for c in self.clients}
        for c, b in self.served:
            last[c] = position[b]
        return np.array([len(self.completed) - 1 - last[c] for c in self.clients], dtype=np.int64)

    def buffer_histogram(self, n: int | None = None) -> np.ndarray:
        """``h[k-1]`` = completed buffers of ``k`` clients this round, k = 1..n (default ``len(clients)``), int64."""
        n = len(self.clients) if n is None else n
        sizes = np.bincount([len(self.members[b]) for b in self.completed], minlength=n + 1)
        return sizes[1:n + 1].astype(np.int64)

    def record(self) -> tuple[np.ndarray, np.ndarray]:
        """``(served_client, served_buffer)``, int32 (len(served),): every completed client
        iteration in completion order, and the id of its buffer."""
        arr = np.array(self.served, dtype=np.int32).reshape(-1, 2)
        return arr[:, 0].copy(), arr[:, 1].copy()


@dataclass
class Replay:
    """One recorded round to serve again: buffer members by id and the phase events in order."""

    members: list[list[int]]
    events: list[int]


@dataclass
class _Buffer:
    id: int
    members: list[int]
    phase: int = 0
    got: dict = field(default_factory=dict)   # (client, kind) -> the transport's buffer
    state: dict = field(default_factory=dict)  # the strategy's tensors between phases


def serve_round(server, step, k: int, deadline_ms: float | None, replay: Replay | None = None) -> RoundSchedule:
    """Serve one asynchronous round with ``server`` (a split strategy's server side).

    ``server`` provides ``clients``, ``lost``, ``t`` (the transport), ``PHASES`` (per phase:
    the message kinds it needs from every member, and the name of its method
    ``(members, got, state)``, ``got`` mapping kind → client → array, ``state`` a dict the
    buffer's phases share; the first phase's single kind opens a client's iteration), and
    ``lose(clients, why)``, which may raise to end the run. ``step(iterations)`` is the
    engine's per-step callback. Returns the round's schedule.
    """
    t, phases = server.t, server.PHASES
    opening = phases[0][0][0]
    live = [c for c in server.clients if c not in server.lost]
    schedule = RoundSchedule(live, server.info.iterations_per_round)
    n = len(live)
    forming: dict[int, np.ndarray] = {}
    first_arrival = None
    buffers: dict[int, _Buffer] = {}
    member_of: dict[int, _Buffer] = {}
    owes_since = {c: time.perf_counter() for c in live}  # when each client's awaited message became due
    events = deque(replay.events) if replay is not None else None

    def run(b: _Buffer) -> None:
        got = {kd: {c: b.got.pop((c, kd)) for c in b.members} for kd in phases[b.phase][0]}
        getattr(server, phases[b.phase][1])(b.members, got, b.state)
        schedule.ran(b.id, b.phase)
        now = time.perf_counter()
        for c in b.members:
            owes_since[c] = now
        b.phase += 1
        if b.phase == len(phases):
            del buffers[b.id]
            for c, grant in schedule.serve(b.members, b.id).items():
                member_of.pop(c)
                t.isend(c, GRANT, np.array([grant], dtype=np.int64))
            step(len(b.members) / max(n, 1))

    def open_buffer(group) -> _Buffer:
        nonlocal first_arrival
        b = _Buffer(schedule.open(group), sorted(group))
        for c in b.members:
            b.got[(c, opening)] = forming.pop(c)
            member_of[c] = b
        buffers[b.id] = b
        first_arrival = None
        return b

    def ready(b: _Buffer) -> bool:
        return all((c, kd) in b.got for c in b.members for kd in phases[b.phase][0])

    def lose(clients, why) -> None:
        server.lose(clients, why)  # raises when fewer than training.min_clients are left
        for c in clients:
            schedule.lose(c)
            forming.pop(c, None)
            owes_since.pop(c, None)
            b = member_of.pop(c, None)
            if b is not None:
                b.members.remove(c)
                b.got = {key: v for key, v in b.got.items() if key[0] != c}
                if not b.members:
                    del buffers[b.id]
                elif ready(b):
                    run(b)

    while not schedule.done or buffers:
        if events is not None:  # replay: the recorded phase next, with exactly its messages
            event = events.popleft()
            bid, phase = divmod(event, PHASE_BITS)
            if phase == 0:
                group = replay.members[bid]
                forming.update(t.recv_many(group, opening))
                b = open_buffer(group)
            else:
                b = buffers[bid]
                for kd in phases[phase][0]:
                    b.got.update({(c, kd): v for c, v in t.recv_many(b.members, kd).items()})
            run(b)
            continue
        can_come = schedule.waiting - set(member_of)
        if forming and (len(forming) >= k or len(forming) >= len(can_come)
                        or (first_arrival is not None and deadline_ms is not None
                            and time.perf_counter() >= first_arrival + deadline_ms / 1000)):
            run(open_buffer(forming))
            continue
        pairs = [(c, opening) for c in sorted(can_come - set(forming))]
        pairs += [(c, kd) for b in buffers.values() for c in b.members for kd in phases[b.phase][0]
                  if (c, kd) not in b.got]
        owing = {c for c, _ in pairs}
        limit = t.wait_timeout
        timeout = None if limit is None else max(0.0, min(owes_since[c] for c in owing) + limit - time.perf_counter())
        if forming and deadline_ms is not None:
            closes = max(0.0, first_arrival + deadline_ms / 1000 - time.perf_counter())
            timeout = closes if timeout is None else min(timeout, closes)
        try:
            c, kd, buf = t.recv_first(pairs, timeout=timeout)
        except DeadlineExceeded as e:
            now = time.perf_counter()
            silent = sorted(c for c in owing if limit is not None and now - owes_since[c] >= limit)
            if silent:
                lose(silent, e)
            continue  # or the forming buffer's deadline passed: it opens above
        if kd == opening and c not in member_of:
            forming[c] = buf
            first_arrival = first_arrival or time.perf_counter()
        else:
            b = member_of[c]
            b.got[(c, kd)] = buf
            if ready(b):
                run(b)
    return schedule
