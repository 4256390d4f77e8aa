"""``huscf-mpi train``: set-up, then the server or client loop depending on the rank.

Failure policy: set-up problems are agreed on collectively and raise :class:`SetupError`
on every rank (the CLI prints one line from rank 0 and exits 2). Any exception after set-up
is logged with its rank and traceback and aborts the whole MPI job (``MPI_Abort``), so a
crash on one rank never leaves the others waiting; the result file then stays at
``<path>.partial`` with status "running" or "failed", never looking complete.
"""
from __future__ import annotations

import logging
import time
import traceback

import torch
from mpi4py import MPI

from .. import process
from ..comm import MPITransport
from ..config import Config
from ..errors import UsageError
from ..registry import TITLES, load_strategy
from .client import run_client
from .setup import agree, build_run_info
from .threads import available_cores, server_threads

log = logging.getLogger("huscf_mpi")


def train(config: Config, data_root: str | None = None, overwrite: bool = False, poll_sleep_max: float = 1e-3):
    """Run one training job of ``config.strategy`` on ``MPI.COMM_WORLD``; returns the result path on rank 0, else None."""
    transport = MPITransport(MPI.COMM_WORLD, poll_sleep_max=poll_sleep_max)
    # Synchronous phases alternate, so the server may take every core while clients wait.
    torch.set_num_threads(server_threads(config.server.threads, available_cores()) if transport.rank == 0 else 1)
    try:
        return _train(config, transport, data_root, overwrite)
    except UsageError:
        raise  # raised on every rank together (agreed at set-up); the CLI prints one line
    except BaseException as e:  # noqa: BLE001 - any crash must take the whole job down
        log.error("rank %d crashed: %s\n%s", transport.rank, e, traceback.format_exc())
        MPI.COMM_WORLD.Abort(1)


def _train(config, transport, data_root, overwrite):
    rank = transport.rank
    method = load_strategy(config.strategy)
    info, assignment, summary, plan, hosts = build_run_info(config, transport, data_root, method.uses_cuts,
                                                            method.devices_per_client(config), method.needs_profiles,
                                                            overwrite=overwrite)
    # The waiting ranks of a node wake at most ~1,000 times per second per core in all, however
    # many ranks share the node (100 ranks on 2 cores: a 50 ms cap, at most 1/32 of a wait late).
    transport.poll_sleep_max *= max(1.0, hosts.count(hosts[rank]) / available_cores())
    starts = transport.gather(process.started_at())  # for the time from launch to the first iteration
    writer, error = None, None
    if rank == 0:
        from ..results.writer import ResultWriter, utc_now

        try:
            writer = ResultWriter(config.output_path, overwrite=overwrite)
        except (FileExistsError, OSError) as e:
            error = f"output {config.output_path}: {e}; pass --overwrite or set --output"
    agree(transport, error)
    if rank > 0:
        run_client(info, assignment, transport, method)
        return None
    from .server import run_server  # h5py, tqdm: rank 0 only (issue 7, lean clients)
    try:
        _write_setup(writer, info, summary, hosts, transport, plan.record)
        t0 = time.time()
        log.info("%s: %d clients, %d iterations per round, %d rounds; writing %s", TITLES.get(method.name, method.name),
                 len(info.clients), info.iterations_per_round, config.training.rounds, writer.partial_path)
        launched = min((t for t in starts if t is not None), default=None)
        final = run_server(info, transport, method, writer, launched=launched)
        writer.write_provenance(ended=utc_now(), wall_seconds=time.time() - t0)
    except BaseException as e:
        writer.close("failed", error=f"rank 0: {e!r}")
        raise
    path = writer.close("complete")
    for d, m in final.items():
        log.info("final %s: %s", d, ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
    log.info("wrote %s", path)
    return path


def _write_setup(writer, info, summary: list[dict], hosts: list[str], transport, cut_record: dict) -> None:
    from .. import provenance
    from ..results.writer import utc_now

    cfg = info.config
    writer.write_provenance(
        **provenance.collect(MPI.Get_library_version().splitlines()[0].strip(), transport.size, hosts,
                             cfg.seed, cfg.to_yaml()),
        started=utc_now(), strategy=cfg.strategy, fake_labels=cfg.training.fake_labels)
    writer.write_array("domains", list(info.evaluators))
    writer.write_table("partition", {
        "client": [r["client"] for r in summary], "domain": [r["domain"] for r in summary],
        "size": [r["size"] for r in summary],
        "excluded_labels": [",".join(map(str, r["excluded_labels"])) for r in summary],
        "split": [r["split"] for r in summary]})
    if info.cuts:
        writer.write_array("cuts/cut_vectors", [info.cuts[c].as_tuple() for c in info.clients])
    if info.cuts or cut_record:
        writer.set_attrs("cuts", mode=("none" if not info.cuts else cfg.cuts if isinstance(cfg.cuts, str) else "fixed"))
    if cut_record:  # cuts: ga — costs, profiles, GA history, predicted latency (SPEC §5)
        writer.set_attrs("cuts", **cut_record["attrs"])
        for name, value in cut_record["arrays"].items():
            writer.write_array(f"cuts/{name}", value)
        writer.write_table("cuts/profiles", cut_record["profiles"])
    writer.set_attrs("run", iterations_per_round=info.iterations_per_round, server_threads=torch.get_num_threads(),
                     evaluators=[info.evaluators[d] for d in info.evaluators])
