"""``huscf-mpi train``: set-up, then the server or client loop depending on the rank.

Failure policy: set-up problems are agreed on collectively and raise :class:`SetupError`
on every rank (the CLI prints one line from rank 0 and exits 2). Any exception after set-up
is logged with its rank and traceback and aborts the whole MPI job (``MPI_Abort``), so a
crash on one rank never leaves the others waiting; the result file then stays at
``<path>.partial`` with status "running" or "failed", never looking complete.
"""
from __future__ import annotations

import logging
import socket
import time
import traceback

import torch
from mpi4py import MPI

from .. import provenance
from ..comm import MPITransport
from ..config import Config
from ..results.writer import ResultWriter, utc_now
from ..strategies import STRATEGIES
from .client import run_client
from .server import run_server
from ..errors import UsageError
from .setup import agree, build_run_info

log = logging.getLogger("huscf_mpi")


def train(config: Config, data_root: str | None = None, overwrite: bool = False,
          strategy: str = "huscf", poll_sleep_max: float = 1e-3):
    """Run one training job on ``MPI.COMM_WORLD``; returns the result path on rank 0, else None."""
    torch.set_num_threads(1)
    transport = MPITransport(MPI.COMM_WORLD, poll_sleep_max=poll_sleep_max)
    try:
        return _train(config, transport, data_root, overwrite, strategy)
    except UsageError:
        raise  # raised on every rank together (agreed at set-up); the CLI prints one line
    except BaseException as e:  # noqa: BLE001 - any crash must take the whole job down
        log.error("rank %d crashed: %s\n%s", transport.rank, e, traceback.format_exc())
        MPI.COMM_WORLD.Abort(1)


def _train(config, transport, data_root, overwrite, strategy):
    rank = transport.rank
    info, assignment, root, summary, plan = build_run_info(config, transport, data_root)
    client_cls, server_cls = STRATEGIES[strategy]
    writer, error = None, None
    if rank == 0:
        try:
            writer = ResultWriter(config.output_path, overwrite=overwrite)
        except (FileExistsError, OSError) as e:
            error = f"output {config.output_path}: {e}; pass --overwrite or set --output"
    hosts = transport.gather(socket.gethostname())
    agree(transport, error)
    if rank > 0:
        run_client(info, assignment, root, transport, client_cls)
        return None
    try:
        _write_setup(writer, info, summary, hosts, transport, plan.record)
        t0 = time.time()
        log.info("%d clients, %d iterations per round, %d rounds; writing %s", len(info.clients),
                 info.iterations_per_round, config.training.rounds, writer.partial_path)
        final = run_server(info, transport, server_cls, writer)
        writer.write_provenance(ended=utc_now(), wall_seconds=time.time() - t0)
    except BaseException as e:
        writer.close("failed", error=f"rank 0: {e!r}")
        raise
    path = writer.close("complete")
    for d, m in final.items():
        log.info("final %s: %s", d, ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
    log.info("wrote %s", path)
    return path


def _write_setup(writer: ResultWriter, info, summary: list[dict], hosts: list[str], transport, cut_record: dict) -> None:
    cfg = info.config
    writer.write_provenance(
        **provenance.collect(MPI.Get_library_version().splitlines()[0].strip(), transport.size, hosts,
                             cfg.seed, cfg.to_yaml()),
        started=utc_now(), strategy="huscf")
    writer.write_array("domains", list(info.evaluators))
    writer.write_table("partition", {
        "client": [r["client"] for r in summary], "domain": [r["domain"] for r in summary],
        "size": [r["size"] for r in summary],
        "excluded_labels": [",".join(map(str, r["excluded_labels"])) for r in summary],
        "split": [r["split"] for r in summary]})
    writer.write_array("cuts/cut_vectors", [info.cuts[c].as_tuple() for c in info.clients])
    writer.set_attrs("cuts", mode=cfg.cuts if isinstance(cfg.cuts, str) else "fixed")
    if cut_record:  # cuts: ga — costs, profiles, GA history, predicted latency (SPEC §5)
        writer.set_attrs("cuts", **cut_record["attrs"])
        for name, value in cut_record["arrays"].items():
            writer.write_array(f"cuts/{name}", value)
        writer.write_table("cuts/profiles", cut_record["profiles"])
    writer.set_attrs("run", iterations_per_round=info.iterations_per_round,
                     evaluators=[info.evaluators[d] for d in info.evaluators])
