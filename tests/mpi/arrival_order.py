"""Arrival order, deadlines and clean shutdown of MPITransport on 3 ranks (tests/test_transport_async.py).

Rank 0 waits with ``recv_first``/``recv_many``; ranks 1 and 2 send after set delays. Every phase
starts at a barrier. Rank 0 writes what it saw to OUT.json; every rank must exit 0.

Usage: mpiexec -n 3 python tests/mpi/arrival_order.py OUT.json
"""
import json
import sys
import time

import numpy as np
from mpi4py import MPI

from huscf_mpi.comm import DeadlineExceeded, MPITransport, kind

UP = kind("async_test_up", 1010, "protocol", "losses")          # phases 1-3: arrival order
LATE = kind("async_test_late", 1011, "protocol", "losses")      # phase 4: rank 2 never sends
MANY = kind("async_test_many", 1012, "protocol", "losses")      # phase 5: recv_many deadline
MIX = kind("async_test_mix", 1013, "protocol", "losses")        # phase 6: two kinds in one wait
KINDS = (UP, LATE, MANY, MIX)
SHAPE = (4,)
TIMEOUT = 0.5
DELAY = 0.8  # a late sender's head start for the other: ample even on a loaded 2-core machine


def main(out):
    t = MPITransport(MPI.COMM_WORLD)
    rank = t.rank
    assert t.size == 3, "run with mpiexec -n 3"
    if rank == 0:
        for peer in (1, 2):
            for k in KINDS:
                t.declare(peer, k, SHAPE, np.float64, send=False)
                t.post(peer, k)  # pre-posted before anyone sends
    else:
        for k in KINDS:
            t.declare(0, k, SHAPE, np.float64)

    def send(value, k=UP, delay=0.0):
        time.sleep(delay)
        t.isend(0, k, np.full(SHAPE, float(value)))

    seen = {}

    def first(peers, k=UP, timeout=10):
        p, got_kind, b = t.recv_first([(peer, k) for peer in peers], timeout)
        assert got_kind is k
        return p, b
    # Phase 1: rank 2 sends at once, rank 1 DELAY seconds later → order [2, 1].
    t.barrier()
    if rank == 0:
        got = [first([1, 2]) for _ in range(2)]
        seen["phase1"] = [[p, float(b[0])] for p, b in got]
    elif rank == 1:
        send(1, delay=DELAY)
    else:
        send(2)
    # Phase 2: the other way round, with blocking Waitany (poll_sleep_max = 0) → [1, 2].
    t.barrier()
    if rank == 0:
        t.poll_sleep_max, keep = 0.0, t.poll_sleep_max
        got = [first([1, 2], timeout=None) for _ in range(2)]
        t.poll_sleep_max = keep
        seen["phase2"] = [[p, float(b[0])] for p, b in got]
    elif rank == 1:
        send(1)
    else:
        send(2, delay=DELAY)
    # Phase 3: rank 1 sends two messages back to back, rank 2 one later → [1, 1, 2], in send order.
    t.barrier()
    if rank == 0:
        got = []
        for _ in range(3):
            p, b = first([1, 2])
            got.append([p, float(b[0])])  # consume before the next call re-posts into b
        seen["phase3"] = got
    elif rank == 1:
        send(10)
        send(11)
    else:
        send(20, delay=DELAY)
    # Phase 4: rank 1 sends LATE, rank 2 never does → the second wait ends in DeadlineExceeded.
    t.barrier()
    if rank == 0:
        p, b = first([1, 2], LATE)
        seen["phase4_first"] = [p, float(b[0])]
        t0 = time.perf_counter()
        try:
            first([2], LATE, timeout=TIMEOUT)
            seen["phase4_error"] = None
        except DeadlineExceeded as e:
            seen["phase4_error"] = {"missing": e.missing, "kind": e.kind.name, "message": str(e),
                                    "elapsed": time.perf_counter() - t0}
        seen["phase4_cancel_2"] = t.cancel(2, LATE) is None  # nothing arrived: cancelled
    elif rank == 1:
        send(5, LATE)
    # Phase 5: recv_many with a deadline; rank 1 sends MANY, rank 2 does not.
    t.barrier()
    if rank == 0:
        t0 = time.perf_counter()
        try:
            t.recv_many([1, 2], MANY, timeout=TIMEOUT)
            seen["phase5_error"] = None
        except DeadlineExceeded as e:
            seen["phase5_error"] = {"missing": e.missing, "elapsed": time.perf_counter() - t0}
    elif rank == 1:
        send(7, MANY)
    # Phase 6: one wait over two kinds; rank 2's UP comes first, then rank 1's MIX.
    t.barrier()
    if rank == 0:
        got = [t.recv_first([(1, MIX), (2, UP)], timeout=10) for _ in range(2)]
        seen["phase6"] = [[p, k.name, float(b[0])] for p, k, b in got]
    elif rank == 1:
        send(1, MIX, delay=DELAY)
    else:
        send(2)
    # Shutdown: rank 0 cancels what is still posted; the message of phase 5 comes back unconsumed.
    t.barrier()
    if rank == 0:
        left = t.close()
        seen["close_left"] = sorted([p, k.name, float(b[0])] for (p, k), b in left.items())
        seen["still_posted"] = [[p, k.name] for (p, k), s in t._recv.items() if s.request is not None]
        seen["ledger"] = sorted([k[1], k[2], v[0], v[1]] for k, v in t.ledger.entries.items() if k[0] == "received")
    else:
        t.close()
    t.barrier()
    if rank == 0:
        with open(out, "w") as f:
            json.dump(seen, f)


if __name__ == "__main__":
    main(sys.argv[1])
