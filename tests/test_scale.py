"""Issue 7 pieces that need no MPI: server threads, launcher environment, pre-flight arithmetic."""
import pytest

from huscf_mpi import process
from huscf_mpi.config import ConfigError, load_config
from huscf_mpi.roles import preflight
from huscf_mpi.roles.threads import server_threads

from .conftest import checkout_env


def test_server_threads_rule():
    assert server_threads("auto", 8) == 8
    assert server_threads("auto", 8, busy_clients_on_node=3) == 5
    assert server_threads("auto", 2, busy_clients_on_node=7) == 1
    assert server_threads(3, 64) == 3


@pytest.mark.parametrize("value, ok", [("auto", True), (4, True), (0, False), ("many", False)])
def test_server_threads_config(tmp_path, value, ok):
    path = tmp_path / "c.yaml"
    path.write_text(f"server: {{threads: {value}}}\n")
    if ok:
        assert load_config(path).server.threads == value
    else:
        with pytest.raises(ConfigError, match="server.threads"):
            load_config(path)


def _launcher(monkeypatch, rank=None, local=None, size=None):
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE",
                 "SLURM_STEP_NUM_TASKS_ON_NODE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "UCX_TLS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (("PMI_RANK", rank), ("MPI_LOCALNRANKS", local), ("PMI_SIZE", size)):
        if value is not None:
            monkeypatch.setenv(name, str(value))


def test_oversubscribed_client(monkeypatch):
    cores = process.available_cores()
    _launcher(monkeypatch, rank=3, local=cores + 1)
    assert process.oversubscribed_client()
    _launcher(monkeypatch, rank=0, local=cores + 1)
    assert not process.oversubscribed_client()  # the server keeps glibc's defaults
    _launcher(monkeypatch, rank=3, local=cores)
    assert not process.oversubscribed_client()
    _launcher(monkeypatch)
    assert not process.oversubscribed_client()  # unknown launcher: leave the heap alone


def test_single_node_ucx(monkeypatch):
    _launcher(monkeypatch, rank=1, local=5, size=5)
    assert process.single_node_ucx() and process.os.environ["UCX_TLS"] == "self,tcp"
    _launcher(monkeypatch, rank=1, local=5, size=9)
    assert not process.single_node_ucx() and "UCX_TLS" not in process.os.environ  # multi-node: untouched
    _launcher(monkeypatch, rank=1, local=5, size=5)
    monkeypatch.setenv("UCX_TLS", "rc,sm")
    assert not process.single_node_ucx() and process.os.environ["UCX_TLS"] == "rc,sm"  # the user's wins


def test_started_at_is_when_the_process_started():
    """A fresh process's start time is now (within its start-up); this one's is earlier (the
    test suite may have run for many minutes already)."""
    import subprocess
    import sys
    import time

    before = time.time()
    child = subprocess.run([sys.executable, "-c", "from huscf_mpi import process; print(process.started_at())"],
                           capture_output=True, text=True, check=True, env=checkout_env())
    assert before - 1 <= float(child.stdout) <= time.time() + 1
    t = process.started_at()
    assert t is not None and t <= before + 1


_FRAGMENTED_HEAP = """
from huscf_mpi import process
from huscf_mpi.roles.reports import private_dirty_bytes
assert not process.release_free_heap()  # glibc's defaults kept (not an oversubscribed client): nothing done
assert process.compact_heap()
blocks = [bytes(1024) for _ in range(200_000)]  # above Python's small-object limit: glibc's heap
kept = blocks[::64]  # one block in 64 stays, so the heap's top is held and the trim threshold cannot help
del blocks
before = private_dirty_bytes()
process.release_free_heap()
print(before, private_dirty_bytes())
"""


def test_release_free_heap_returns_the_holes_below_the_top():
    """~200 MiB freed below a held top: the trim threshold alone keeps it, ``malloc_trim`` returns it."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", _FRAGMENTED_HEAP], capture_output=True, text=True, check=True,
                           env=checkout_env())
    before, after = map(int, child.stdout.split())
    assert before - after > 100 * 2**20, (before, after)


def test_preflight_plan_sums_per_host_against_the_smallest_reading():
    mib = 2**20
    ranks = [preflight.RankMemory(0, "a", 300 * mib, 100 * mib, 2000 * mib, 4),
             preflight.RankMemory(1, "a", 150 * mib, 10 * mib, 1900 * mib, 4),
             preflight.RankMemory(2, "b", 150 * mib, 10 * mib, 50 * mib, 4),
             preflight.RankMemory(3, "b", 150 * mib, 10 * mib, -1, 4)]
    plan = preflight.plan(ranks, fraction=0.5)
    fixed, server = preflight.GROWTH_FIXED_BYTES, preflight.GROWTH_SERVER_BYTES
    per = preflight.GROWTH_PER_MESSAGE_BYTE
    assert plan["a"]["growth_bytes"] == 2 * fixed + server + per * 110 * mib
    assert plan["a"]["held_bytes"] == 450 * mib and plan["a"]["available_bytes"] == 1900 * mib
    assert plan["a"]["ranks"] == 2 and plan["a"]["fits"] == (plan["a"]["growth_bytes"] <= 950 * mib)
    assert plan["b"]["available_bytes"] == -1 and plan["b"]["fits"]  # unknown: not refused
    alone = ranks[2:3]  # 16 MiB + 1.0 x 10 MiB = 26 MiB to come, 50 MiB available
    assert preflight.plan(alone, fraction=0.6)["b"]["fits"] and not preflight.plan(alone, fraction=0.5)["b"]["fits"]
