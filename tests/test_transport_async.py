"""MPITransport's arrival-order path (recv_first), deadlines and cancel/close (issue 10, point 2).

In-process tests use ``COMM_SELF`` (a rank sending to itself); tests/mpi/arrival_order.py runs
3 ranks where rank 0 serves whichever of ranks 1 and 2 is first.
"""
import json
import sys
import time

import numpy as np
import pytest
from mpi4py import MPI

from huscf_mpi.comm import DeadlineExceeded, MPITransport, kind

from .conftest import ROOT, run_mpi

SELF = kind("async_test_self", 1014, "protocol", "losses")
OTHER = kind("async_test_self_other", 1015, "report", "metrics")


def _self_transport(*kinds):
    t = MPITransport(MPI.COMM_SELF)
    for k in kinds or (SELF,):
        t.declare(0, k, (3,), np.float64)
        t.declare(0, k, (3,), np.float64, send=False)
    return t


def test_recv_first_consumes_one_message_and_counts_it_in_the_ledger():
    t = _self_transport()
    t.isend(0, SELF, np.arange(3.0))
    peer, got, buf = t.recv_first([(0, SELF)], timeout=5)
    assert peer == 0 and got is SELF and buf.tolist() == [0.0, 1.0, 2.0]
    assert t.ledger.entries[("received", SELF.tag, 0, "3", "float64")] == [1, 24]
    assert t._recv[(0, SELF)].request is None  # consumed, not re-posted until the next wait
    assert t.close() == {}


def test_recv_first_deadline():
    t = _self_transport()
    t0 = time.perf_counter()
    with pytest.raises(DeadlineExceeded) as e:
        t.recv_first([(0, SELF)], timeout=0.2)
    elapsed = time.perf_counter() - t0
    assert 0.2 <= elapsed < 1.0
    assert isinstance(e.value, TimeoutError) and e.value.missing == [0] and e.value.kind is SELF
    assert "async_test_self" in str(e.value) and "[0]" in str(e.value)
    assert t.wait_seconds >= 0.2 and not t.ledger.entries
    # The receive stays posted: a message sent afterwards is still picked up by the next wait.
    t.isend(0, SELF, np.ones(3))
    assert t.recv_first([(0, SELF)], timeout=5)[2].tolist() == [1.0, 1.0, 1.0]
    assert t.close() == {}


def test_recv_many_deadline_keeps_behaviour_without_timeout():
    t = _self_transport()
    t.isend(0, SELF, np.full(3, 4.0))
    assert t.recv_many([0], SELF)[0].tolist() == [4.0] * 3  # no timeout: as before
    with pytest.raises(DeadlineExceeded) as e:
        t.recv_many([0], SELF, timeout=0.1)
    assert e.value.missing == [0]
    assert t.cancel(0, SELF) is None            # nothing had arrived: cancelled
    assert t._recv[(0, SELF)].request is None
    assert t.cancel(0, SELF) is None            # nothing posted: a no-op


def test_cancel_after_arrival_returns_message():
    t = _self_transport()
    t.post(0, SELF)
    t.isend(0, SELF, np.full(3, 9.0))
    t.flush()
    left = t.close()
    assert list(left) == [(0, SELF)] and left[(0, SELF)].tolist() == [9.0] * 3
    assert t.ledger.entries[("received", SELF.tag, 0, "3", "float64")] == [1, 24]


def test_recv_first_over_no_pairs_is_refused():
    t = _self_transport()
    with pytest.raises(ValueError, match="no \\(peer, kind\\) pairs"):
        t.recv_first([])
    assert t.close() == {}


def test_recv_first_over_two_kinds_returns_each_once():
    t = _self_transport(SELF, OTHER)
    t.isend(0, OTHER, np.zeros(3))
    t.isend(0, SELF, np.ones(3))
    pairs = [(0, SELF), (0, OTHER)]
    first = t.recv_first(pairs, timeout=5)
    rest = t.recv_first([p for p in pairs if p[1] is not first[1]], timeout=5)
    assert rest[1] is OTHER and rest[2].tolist() == [0.0] * 3
    t.close()


@pytest.mark.mpi
def test_arrival_order_on_three_ranks(tmp_path):
    out = tmp_path / "seen.json"
    t0 = time.perf_counter()
    proc = run_mpi(3, [sys.executable, str(ROOT / "tests" / "mpi" / "arrival_order.py"), str(out)], timeout=60)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(out.read_text())
    assert seen["phase1"] == [[2, 2.0], [1, 1.0]]
    assert seen["phase2"] == [[1, 1.0], [2, 2.0]]
    assert seen["phase3"] == [[1, 10.0], [1, 11.0], [2, 20.0]]
    assert seen["phase4_first"] == [1, 5.0]
    err = seen["phase4_error"]
    assert err["missing"] == [2] and err["kind"] == "async_test_late" and 0.5 <= err["elapsed"] < 2.0
    assert seen["phase4_cancel_2"] is True
    assert seen["phase5_error"]["missing"] == [2] and 0.5 <= seen["phase5_error"]["elapsed"] < 2.0
    assert seen["phase6"] == [[2, "async_test_up", 2.0], [1, "async_test_mix", 1.0]]
    assert seen["close_left"] == [[1, "async_test_many", 7.0]]  # arrived during phase 5, never consumed
    assert seen["still_posted"] == []
    up, late, many, mix = 1010, 1011, 1012, 1013
    # 32 bytes a message; the ledger counts recv_first's messages and the one close() found.
    assert seen["ledger"] == [[up, 1, 4, 128], [up, 2, 4, 128], [late, 1, 1, 32], [many, 1, 1, 32],
                              [mix, 1, 1, 32]]
    assert wall < 30
